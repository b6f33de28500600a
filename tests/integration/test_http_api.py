"""The real application on a loopback port, on SQLite and PostgreSQL (the ``ctx`` fixture):
health, readiness, the OpenAPI document, token auth and roles, JSON errors, ``run()`` and the
``hotline token`` commands end to end."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from http_api import tokens
from http_api.app import build_app, run
from http_api.auth import public, requires
from http_api.bodies import read_json, respond
from http_api.keys import principal
from http_api.openapi import operation
from service import cli
from service.context import AppContext
from tests.conftest import make_settings
from tests.helpers.openapi import assert_valid_openapi

Client = TestClient[web.Request, web.Application]


# ------------------------------------------------------------------ test-only routes


class Note(BaseModel):
    text: str


@requires("supervisor")
@operation(summary="Test only: who am I (supervisor)", tags=["test"])
async def whoami(request: web.Request) -> web.Response:
    p = principal(request)
    return respond({"id": p.token_id, "name": p.name, "role": p.role})


@requires("agent", "reviewer")
@operation(summary="Test only: echo a note", request_body=Note, responses={200: Note})
async def echo_note(request: web.Request) -> web.Response:
    return respond(await read_json(request, Note))


@public
@operation(summary="Test only: fail")
async def explode(request: web.Request) -> web.Response:
    raise RuntimeError("secret detail")


def _test_routes(app: web.Application, ctx: AppContext) -> None:
    app.router.add_get("/test/whoami", whoami)
    app.router.add_post("/test/notes", echo_note)
    app.router.add_get("/test/explode", explode)


@pytest.fixture
async def client(ctx: AppContext) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(ctx, [_test_routes]), host="127.0.0.1")) as c:
        yield c


async def _token(ctx: AppContext, role: str, name: str = "tester") -> tuple[int, str]:
    async with ctx.db.transaction() as session:
        row, secret = await tokens.create_token(session, name=name, role=role)
        return row.id, secret


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ health and docs


async def test_healthz_and_readyz(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status == 200 and await resp.json() == {"status": "ok", "workers": {}}


async def test_openapi_document(client: Client) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert_valid_openapi(doc)
    assert {"/healthz", "/readyz", "/api/v1/openapi.json", "/test/whoami"} <= set(doc["paths"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    whoami_op = doc["paths"]["/test/whoami"]["get"]
    assert whoami_op["x-roles"] == ["supervisor"]
    assert {"401", "403"} <= set(whoami_op["responses"])
    note_op = doc["paths"]["/test/notes"]["post"]
    assert note_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Note"
    )


async def test_route_without_access_declaration_stops_the_start(ctx: AppContext) -> None:
    async def forgotten(request: web.Request) -> web.Response:
        return web.Response()

    def add(app: web.Application, ctx: AppContext) -> None:
        app.router.add_get("/test/forgotten", forgotten)

    runner = web.AppRunner(build_app(ctx, [add]))
    with pytest.raises(RuntimeError, match="GET /test/forgotten"):
        await runner.setup()
    await runner.cleanup()


# ------------------------------------------------------------------ authentication and roles


async def test_no_token_is_401(client: Client) -> None:
    resp = await client.get("/test/whoami")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_unknown_token_is_401(client: Client, ctx: AppContext) -> None:
    await _token(ctx, "supervisor")
    resp = await client.get("/test/whoami", headers=_bearer("hl_" + "A" * 43))
    assert resp.status == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_right_role_and_admin_pass_and_see_their_principal(
    client: Client, ctx: AppContext
) -> None:
    sup_id, sup = await _token(ctx, "supervisor", "班长")
    admin_id, admin = await _token(ctx, "admin", "ops")
    resp = await client.get("/test/whoami", headers=_bearer(sup))
    assert resp.status == 200
    assert await resp.json() == {"id": sup_id, "name": "班长", "role": "supervisor"}
    resp = await client.get("/test/whoami", headers=_bearer(admin))
    assert resp.status == 200
    assert (await resp.json())["id"] == admin_id


async def test_wrong_role_is_403(client: Client, ctx: AppContext) -> None:
    _, agent = await _token(ctx, "agent")
    resp = await client.get("/test/whoami", headers=_bearer(agent))
    assert resp.status == 403
    body = await resp.json()
    assert body["error"]["code"] == "forbidden"
    assert "supervisor" in body["error"]["message"]


async def test_revoked_token_stops_working_at_once(client: Client, ctx: AppContext) -> None:
    token_id, secret = await _token(ctx, "supervisor")
    assert (await client.get("/test/whoami", headers=_bearer(secret))).status == 200
    async with ctx.db.transaction() as session:
        await tokens.revoke_token(session, token_id)
    resp = await client.get("/test/whoami", headers=_bearer(secret))
    assert resp.status == 401
    assert (await resp.json())["error"]["message"] == "the token is unknown or revoked"


async def test_body_validation_behind_auth(client: Client, ctx: AppContext) -> None:
    _, reviewer = await _token(ctx, "reviewer")
    resp = await client.post("/test/notes", json={"text": "好"}, headers=_bearer(reviewer))
    assert resp.status == 200 and await resp.json() == {"text": "好"}
    resp = await client.post("/test/notes", json={"txt": "x"}, headers=_bearer(reviewer))
    assert resp.status == 422
    assert "'text'" in (await resp.json())["error"]["message"]
    # Auth comes first: an anonymous invalid body is a 401, not a 422.
    assert (await client.post("/test/notes", json={})).status == 401


async def test_errors_are_json(client: Client) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await client.put("/healthz")
    assert resp.status == 405 and (await resp.json())["error"]["code"] == "method_not_allowed"
    resp = await client.get("/test/explode")
    assert resp.status == 500
    assert resp.content_type == "application/json"
    assert "secret detail" not in await resp.text()


# ------------------------------------------------------------------ database unreachable


@pytest.fixture
async def down_ctx(tmp_path: Path) -> AsyncIterator[AppContext]:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_free_port()}/nothing"
    context = AppContext.create(make_settings(tmp_path, database_url=url))
    yield context
    await context.close()


async def test_readyz_503_when_database_unreachable(down_ctx: AppContext) -> None:
    async with TestClient(TestServer(build_app(down_ctx, [_test_routes]),
                                     host="127.0.0.1")) as client:
        assert (await client.get("/healthz")).status == 200  # alive, just not ready
        resp = await client.get("/readyz")
        assert resp.status == 503
        error = (await resp.json())["error"]
        assert error["code"] == "not_ready" and "database" in error["message"]
        resp = await client.get("/test/whoami", headers=_bearer("hl_x"))
        assert resp.status == 503


# ------------------------------------------------------------------ run() as the service does


async def test_run_serves_until_stopping_is_set(ctx: AppContext) -> None:
    port = _free_port()
    settings = ctx.settings.model_copy(update={"http_port": port})
    served = AppContext(settings=settings, db=ctx.db, vault=ctx.vault)
    stopping = asyncio.Event()
    task = asyncio.create_task(run(served, stopping))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(f"{url}/readyz") as resp:
                    assert resp.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("run() never started listening")
        stopping.set()
        await asyncio.wait_for(task, 15)
        assert task.exception() is None
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(f"{url}/healthz"):
                pass


# ------------------------------------------------------------------ the CLI end to end


def _cli_env(monkeypatch: pytest.MonkeyPatch, ctx: AppContext) -> None:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(ctx.settings.data_dir))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", ctx.settings.effective_database_url)


async def _hotline(*argv: str) -> int:
    # main() runs its own event loop (asyncio.run), so it must not run on the test's.
    return await asyncio.to_thread(cli.main, ["--config", os.devnull, *argv])


async def test_cli_token_create_list_revoke(
    client: Client,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli_env(monkeypatch, ctx)
    assert await _hotline("token", "create", "--role", "supervisor", "--name", "cli-made") == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("hl_") and "\n" not in secret
    assert "shown only once" in err

    resp = await client.get("/test/whoami", headers=_bearer(secret))
    assert resp.status == 200
    who: dict[str, Any] = await resp.json()
    assert who["name"] == "cli-made" and who["role"] == "supervisor"

    assert await _hotline("token", "list") == 0
    out, _ = capsys.readouterr()
    assert "cli-made" in out and "supervisor" in out
    assert secret not in out and tokens.hash_token(secret) not in out

    assert await _hotline("token", "revoke", str(who["id"])) == 0
    assert "revoked" in capsys.readouterr().out
    assert (await client.get("/test/whoami", headers=_bearer(secret))).status == 401

    assert await _hotline("token", "revoke", "999999") == 1
    assert "no token with id 999999" in capsys.readouterr().err


async def test_cli_without_schema_says_to_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings(tmp_path)  # clears the developer's HOTLINE_* variables
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "fresh"))
    monkeypatch.setenv(
        "HOTLINE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'empty.db'}"
    )
    assert await _hotline("token", "create", "--role", "agent", "--name", "x") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "hotline db upgrade" in err


async def test_readyz_503_when_the_calendar_ends_before_the_longest_deadline(
    tmp_path: Path, database_url: str,
) -> None:
    """Issue 8 defect 7: a 整改 deadline 800 natural days out cannot be on a known calendar."""
    ctx = AppContext.create(make_settings(tmp_path, database_url=database_url,
                                          rectification_days=800,
                                          rectification_days_unit="natural_days"))
    try:
        async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as client:
            resp = await client.get("/readyz")
            assert resp.status == 503
            assert "放假安排" in (await resp.json())["error"]["message"]
    finally:
        await ctx.close()
