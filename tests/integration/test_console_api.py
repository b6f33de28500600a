"""The console's server side on the real app, SQLite and PostgreSQL: password login with an
HttpOnly SameSite session cookie, CSRF on every change, lock-out, logout, the first admin,
session users going through the same role checks as tokens, the rating search's scope, the
voice comment, the live stream, and the built files served with the SPA fallback."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from console import users
from console.sessions import COOKIE, CSRF_HEADER
from http_api.app import build_app
from service.context import AppContext
from storage.audit import audit_query
from storage.models import ConsoleUser, Rating
from tests.conftest import make_settings

Client = TestClient[web.Request, web.Application]
PASSWORD = "correct-horse-battery"


@pytest.fixture
async def console_ctx(tmp_path: Path, database_url: str) -> AsyncIterator[AppContext]:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=app>console</div>")
    (dist / "assets" / "app-1234.js").write_text("console.log(1)")
    settings = make_settings(tmp_path, database_url=database_url, console_dist_dir=dist,
                             console_max_failed_logins=3)
    context = AppContext.create(settings)
    yield context
    await context.close()


@pytest.fixture
async def client(console_ctx: AppContext) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(console_ctx), host="127.0.0.1")) as c:
        yield c


async def _user(ctx: AppContext, username: str, role: str, **kw: object) -> None:
    async with ctx.db.transaction() as s:
        await users.create_user(s, username=username, password=PASSWORD, role=role, **kw)  # type: ignore[arg-type]


async def _login(client: Client, username: str, password: str = PASSWORD) -> str:
    resp = await client.post("/api/v1/session", json={"username": username,
                                                      "password": password})
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["csrf_token"])


async def test_first_start_creates_the_admin_once(console_ctx: AppContext,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    async with TestClient(TestServer(build_app(console_ctx), host="127.0.0.1")) as client:
        await _first_admin_checks(client, console_ctx, capsys.readouterr().err)


async def _first_admin_checks(client: Client, console_ctx: AppContext, printed: str) -> None:
    async with console_ctx.db.sessions() as s:
        admins = list(await s.scalars(select(ConsoleUser)))
    assert [(u.username, u.role) for u in admins] == [("admin", "admin")]
    password = printed.split("password: ")[1].split()[0]
    await _login(client, "admin", password)
    async with console_ctx.db.transaction() as s:  # a second start creates nothing
        assert await users.ensure_first_admin(s) is None


async def test_login_sets_an_httponly_samesite_cookie_and_logout_ends_it(
    client: Client, console_ctx: AppContext
) -> None:
    await _user(console_ctx, "wang", "supervisor")
    resp = await client.post("/api/v1/session", json={"username": "wang",
                                                      "password": PASSWORD})
    assert resp.status == 200
    cookie = resp.headers["Set-Cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS it is set
    body = await resp.json()
    csrf = body["csrf_token"]
    assert body["role"] == "supervisor" and len(csrf) > 20
    me = await client.get("/api/v1/session")
    assert (await me.json())["csrf_token"] == csrf
    # a session user passes the same role check as a supervisor token
    assert (await client.get("/api/v1/campaigns")).status == 200
    assert (await client.get("/api/v1/users")).status == 403  # admin only
    # logout without the CSRF token is refused; with it, the session ends
    assert (await client.delete("/api/v1/session")).status == 403
    assert (await client.delete("/api/v1/session", headers={CSRF_HEADER: csrf})).status == 204
    assert (await client.get("/api/v1/campaigns")).status == 401


async def test_a_state_change_without_the_csrf_token_is_refused(
    client: Client, console_ctx: AppContext
) -> None:
    await _user(console_ctx, "wang", "supervisor")
    csrf = await _login(client, "wang")
    campaign = {"name": "十月差评回访", "kind": "satisfaction_followup"}
    refused = await client.post("/api/v1/campaigns", json=campaign)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "csrf_failed"
    wrong = await client.post("/api/v1/campaigns", json=campaign,
                              headers={CSRF_HEADER: "x" * 43})
    assert wrong.status == 403
    ok = await client.post("/api/v1/campaigns", json=campaign, headers={CSRF_HEADER: csrf})
    assert ok.status == 201


async def test_repeated_failures_lock_the_account(client: Client,
                                                  console_ctx: AppContext) -> None:
    await _user(console_ctx, "li", "supervisor")
    for _ in range(2):
        resp = await client.post("/api/v1/session", json={"username": "li", "password": "no"})
        assert resp.status == 401
    third = await client.post("/api/v1/session", json={"username": "li", "password": "no"})
    assert third.status == 429 and (await third.json())["error"]["code"] == "locked"
    right = await client.post("/api/v1/session", json={"username": "li",
                                                       "password": PASSWORD})
    assert right.status == 429  # locked: even the right password waits
    unknown = await client.post("/api/v1/session", json={"username": "nobody",
                                                         "password": "x"})
    assert unknown.status == 401


async def test_admin_manages_users_and_tokens(client: Client, console_ctx: AppContext) -> None:
    await _user(console_ctx, "root", "admin")
    csrf = await _login(client, "root")
    h = {CSRF_HEADER: csrf}
    created = await client.post("/api/v1/users", headers=h, json={
        "username": "zhujian", "role": "supervisor", "departments": ["11440100MB2C91234X"]})
    assert created.status == 201
    body = await created.json()
    assert len(body["password"]) >= 12
    uid = body["user"]["id"]
    patched = await client.patch(f"/api/v1/users/{uid}", headers=h, json={"role": "reviewer"})
    assert (await patched.json())["role"] == "reviewer"
    token = await client.post("/api/v1/tokens", headers=h, json={"name": "crm", "role": "agent"})
    assert token.status == 201 and (await token.json())["secret"].startswith("hl_")
    settings = await (await client.get("/api/v1/settings")).json()
    assert settings["ami_secret"] == "******" and settings["http_port"] == 8080


async def _rating(ctx: AppContext, n: int, level: int, *, agent: str, dept: str,
                  recording: str | None = None) -> int:
    async with ctx.db.transaction() as s:
        r = Rating(project_no=f"CALL-{n}", assess_number=1, kind="per_call", source="keypad",
                   level=level, reason_codes="2" if level >= 4 else None, agent_id=agent,
                   department_code=dept, comment_recording=recording,
                   rated_at=dt.datetime.now(dt.UTC))
        s.add(r)
        await s.flush()
        return r.id


async def test_rating_search_and_its_scope(client: Client, console_ctx: AppContext) -> None:
    await _rating(console_ctx, 1, 5, agent="A1001", dept="D1")
    await _rating(console_ctx, 2, 1, agent="A1002", dept="D2")
    await _user(console_ctx, "sup", "supervisor")
    await _login(client, "sup")
    page = await (await client.get("/api/v1/ratings/search?bad=true")).json()
    assert page["total"] == 1
    item = page["items"][0]
    assert (item["level_label"], item["bad"]) == ("非常不满意", True)
    assert item["reasons"] == [{"code": "2", "label": "办理效率"}]
    both = await (await client.get("/api/v1/ratings/search?level=1&level=5")).json()
    assert both["total"] == 2
    # an agent sees only its own ratings, whatever it asks for
    await _user(console_ctx, "a2", "agent", agent_id="A1002")
    await _login(client, "a2")
    own = await (await client.get("/api/v1/ratings/search?agent=A1001")).json()
    assert own["total"] == 0
    own = await (await client.get("/api/v1/ratings/search")).json()
    assert [i["agent_id"] for i in own["items"]] == ["A1002"]


async def test_voice_comment_audio_is_served_from_the_recordings_only(
    client: Client, console_ctx: AppContext
) -> None:
    folder = console_ctx.settings.effective_prompts_dir / "recordings"
    folder.mkdir(parents=True)
    (folder / "1700.5.wav").write_bytes(b"RIFF....WAVE")
    good = await _rating(console_ctx, 1, 5, agent="A", dept="D",
                         recording="hotline/recordings/1700.5.wav")
    evil = await _rating(console_ctx, 2, 5, agent="A", dept="D",
                         recording="hotline/recordings/../../phone.key")
    await _user(console_ctx, "sup", "supervisor")
    await _login(client, "sup")
    resp = await client.get(f"/api/v1/ratings/{good}/comment")
    assert resp.status == 200 and resp.content_type == "audio/wav"
    assert await resp.read() == b"RIFF....WAVE"
    assert (await client.get(f"/api/v1/ratings/{evil}/comment")).status == 404


async def test_live_stream_sends_new_ratings(client: Client, console_ctx: AppContext) -> None:
    await _user(console_ctx, "sup", "supervisor")
    await _login(client, "sup")
    resp = await client.get("/api/v1/ratings/live")
    assert resp.content_type == "text/event-stream"
    await resp.content.readuntil(b"\n\n")  # the retry line
    rid = await _rating(console_ctx, 9, 4, agent="A", dept="D")
    event = (await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)).decode()
    assert f"id: {rid}" in event and "event: rating" in event and '"bad": true' in event
    resp.close()


async def test_the_built_console_is_served_with_the_spa_fallback(client: Client) -> None:
    index = await client.get("/")
    assert index.status == 200 and "console" in await index.text()
    assert "frame-ancestors 'none'" in index.headers["Content-Security-Policy"]
    deep = await client.get("/ratings/123?x=1")
    assert deep.status == 200 and "console" in await deep.text()
    asset = await client.get("/assets/app-1234.js")
    assert asset.status == 200 and "immutable" in asset.headers["Cache-Control"]
    assert (await client.get("/assets/missing.js")).status == 404
    api = await client.get("/api/v1/nothing-here")
    assert api.status == 404 and (await api.json())["error"]["code"] == "not_found"
    assert (await client.post("/healthz")).status == 405


def test_user_commands_create_and_reset(console_ctx: AppContext,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from service import cli

    os.environ["HOTLINE_DATABASE_URL"] = console_ctx.settings.effective_database_url
    os.environ["HOTLINE_DATA_DIR"] = str(console_ctx.settings.data_dir)
    try:
        assert cli.main(["user", "create", "chen", "--role", "agent", "--agent", "A1009"]) == 0
        first = capsys.readouterr().out.rsplit(" ", 1)[1].strip()
        assert cli.main(["user", "reset-password", "chen"]) == 0
        second = capsys.readouterr().out.rsplit(" ", 1)[1].strip()
        assert first != second and len(second) >= 12
        assert cli.main(["user", "list"]) == 0
        listing = capsys.readouterr().out
        assert "chen" in listing and "agent" in listing
        assert cli.main(["user", "reset-password", "nobody"]) == 1

        async def audited() -> list[tuple[str, str, str | None]]:
            ctx = AppContext.create(console_ctx.settings)
            try:
                async with ctx.db.sessions() as s:
                    rows = await s.scalars(audit_query(subject_type="console_user"))
                    return sorted((r.action, r.actor, r.details.get("username")) for r in rows)
            finally:
                await ctx.close()

        # a change from the shell is audited like the same change from the console
        assert asyncio.run(audited()) == [("user.create", "cli", "chen"),
                                          ("user.reset_password", "cli", "chen")]
    finally:
        os.environ.pop("HOTLINE_DATABASE_URL")
        os.environ.pop("HOTLINE_DATA_DIR")


async def test_changing_ones_own_password_is_audited(client: Client,
                                                     console_ctx: AppContext) -> None:
    """DEVELOPERS.md: every state change a person makes is audited; a wrong current password
    changes nothing and leaves no row."""
    await _user(console_ctx, "zhao", "supervisor")
    csrf = await _login(client, "zhao")
    wrong = await client.post("/api/v1/session/password", headers={CSRF_HEADER: csrf},
                              json={"old_password": "nope", "new_password": "n3w-horse-battery"})
    assert wrong.status == 403
    ok = await client.post("/api/v1/session/password", headers={CSRF_HEADER: csrf},
                           json={"old_password": PASSWORD, "new_password": "n3w-horse-battery"})
    assert ok.status == 204, await ok.text()
    async with console_ctx.db.sessions() as s:
        rows = list(await s.scalars(audit_query(action="user.change_password")))
    assert [(r.actor, r.role, r.details) for r in rows] == [
        ("zhao", "supervisor", {"username": "zhao"})]
    assert "n3w-horse-battery" not in str(rows[0].details)
