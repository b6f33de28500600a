"""The pull feed ``GET /api/v1/ratings`` and the outbox figures ``GET /api/v1/outbox`` through
the real application, on SQLite and PostgreSQL: stable cursor, no gap, no repeat — also for entries
that commit late or are held — updates as new entries, roles, no identity fields."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from forwarder.simulated import add_call_rating, add_case_ratings
from hotline.clock import utcnow
from hotline.levels import Level
from http_api.app import build_app
from service.context import AppContext
from storage.db import Database
from storage.models import OutboxEntry, Rating, RatingKind, RatingSource
from storage.ratings import RatingInput, enqueue, save_rating
from storage.ratings import release_rating as release
from tests.conftest import Client, bearer, make_settings


class Reader:
    """An aggregation system that pulls: keeps its cursor, collects what it gets."""

    def __init__(self, client: Client, headers: dict[str, str], limit: int = 40) -> None:
        self.client, self.headers, self.limit = client, headers, limit
        self.cursor = "0"
        self.items: list[dict[str, Any]] = []

    async def page(self) -> dict[str, Any]:
        resp = await self.client.get(
            "/api/v1/ratings", params={"after": self.cursor, "limit": str(self.limit)},
            headers=self.headers,
        )
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        self.items += body["items"]
        self.cursor = body["next"]
        return body

    async def drain(self) -> None:
        while (await self.page())["has_more"]:
            pass

    @property
    def keys(self) -> list[str]:
        return [f"{i['project_no']}:{i['assess_number']}:{i['event']}" for i in self.items]


async def _case(ctx: AppContext, project: str, level: Level = Level.SATISFIED,
                hold: dt.datetime | None = None, comment: str | None = None) -> Rating:
    async with ctx.db.transaction() as s:
        return await save_rating(s, RatingInput(
            project_no=project, kind=RatingKind.PER_CASE, source=RatingSource.CALLBACK,
            level=level, comment_text=comment,
        ), hold_until=hold)


async def test_pages_through_everything_without_gap_or_repeat(
    ctx: AppContext, client: Client
) -> None:
    order = await add_case_ratings(ctx, 120, second_every=4)
    reader = Reader(client, await bearer(ctx, "aggregator"), limit=40)
    first = await reader.page()
    assert len(first["items"]) == 40 and first["has_more"]
    await reader.drain()
    expected = [f"{k}:rating" for keys in order.values() for k in keys]
    async with ctx.db.sessions() as s:
        by_id = [f"{e.project_no}:{e.assess_number}:rating"
                 for e in (await s.scalars(select(OutboxEntry).order_by(OutboxEntry.id))).all()]
    assert reader.keys == by_id and sorted(reader.keys) == sorted(expected)
    cursors = [int(i["cursor"]) for i in reader.items]
    assert cursors == sorted(set(cursors))
    # caught up: an empty page keeps the cursor
    last = reader.cursor
    body = await reader.page()
    assert body == {"items": [], "next": last, "has_more": False}
    item = reader.items[0]
    assert item["record"]["projectNo"] == item["project_no"]
    assert item["record"]["satisfaction"] == 4 and item["rating"]["level"] == 2
    assert "rating_id" not in item["rating"]


async def test_held_entries_are_served_once_ready(ctx: AppContext, client: Client) -> None:
    held = await _case(ctx, "HOLD", hold=utcnow() + dt.timedelta(minutes=10))
    await _case(ctx, "READY")
    reader = Reader(client, await bearer(ctx, "aggregator"))
    await reader.drain()
    assert reader.keys == ["READY:1:rating"]
    async with ctx.db.transaction() as s:
        await release(s, held.id)
    await reader.drain()
    assert reader.keys == ["READY:1:rating", "HOLD:1:rating"]


async def test_updates_appear_as_new_entries(ctx: AppContext, client: Client) -> None:
    await _case(ctx, "U1", Level.DISSATISFIED)
    reader = Reader(client, await bearer(ctx, "aggregator"))
    await reader.drain()
    # the comment arrives after the reader had the rating: rewritten in place, served again
    await _case(ctx, "U1", Level.DISSATISFIED, comment="办理太慢")
    await _case(ctx, "U2")
    await reader.drain()
    async with ctx.db.transaction() as s:
        rating = await s.scalar(select(Rating).where(Rating.project_no == "U1"))
        assert rating is not None
        rating.valid, rating.invalid_reason = False, "误评"
        await s.flush()
        await enqueue(s, rating, event="invalidation")
    await reader.drain()
    assert reader.keys == [
        "U1:1:rating", "U1:1:rating", "U2:1:rating", "U1:1:invalidation"
    ]
    first, updated, _, invalidation = reader.items
    assert "writingEvaluation" not in first["record"]
    assert updated["record"]["writingEvaluation"] == "办理太慢"
    assert invalidation["record"]["isValid"] == "0"
    assert invalidation["record"]["invalidReason"] == "误评"


async def test_entry_committing_late_is_not_skipped(postgres_url: str, tmp_path: Path) -> None:
    """PostgreSQL hands out ids at insert time, but they become visible at commit: an entry
    with a smaller id can appear after a larger one was already served."""
    ctx = AppContext.create(make_settings(tmp_path, database_url=postgres_url))
    try:
        async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as client:
            reader = Reader(client, await bearer(ctx, "aggregator"))
            async with ctx.db.transaction() as slow:
                early = await save_rating(slow, RatingInput(
                    project_no="SLOW", kind=RatingKind.PER_CASE,
                    source=RatingSource.CALLBACK, level=Level.SATISFIED,
                ))
                fast = await _case(ctx, "FAST")  # its own transaction, commits first
                await reader.drain()
                assert reader.keys == ["FAST:1:rating"]
            await reader.drain()
    finally:
        await ctx.close()
    assert early.id < fast.id
    assert reader.keys == ["FAST:1:rating", "SLOW:1:rating"]


async def test_concurrent_writers_and_a_reader(
    ctx: AppContext, client: Client, database_url: str
) -> None:
    """Writers commit in every interleaving while the reader pages: it ends with each entry
    exactly once."""
    writers = [Database(database_url) for _ in range(4)]
    reader = Reader(client, await bearer(ctx, "aggregator"), limit=7)
    done = asyncio.Event()

    async def write(db: Database, w: int) -> None:
        for n in range(40):
            async with db.transaction() as s:
                await save_rating(s, RatingInput(
                    project_no=f"W{w}-{n}", kind=RatingKind.PER_CASE,
                    source=RatingSource.CALLBACK, level=Level.SATISFIED,
                ))
                await asyncio.sleep(0.001 * (n % 3))  # keep some transactions open a while

    async def read() -> None:
        while not done.is_set():
            await reader.page()
            await asyncio.sleep(0.005)

    try:
        reading = asyncio.create_task(read())
        await asyncio.gather(*(write(db, w) for w, db in enumerate(writers)))
        done.set()
        await reading
        await reader.drain()
    finally:
        for db in writers:
            await db.close()
    assert len(reader.keys) == len(set(reader.keys)) == 160


async def test_feed_never_carries_identity_fields(tmp_path: Path, database_url: str) -> None:
    import tomllib

    from forwarder.profile import BUILTIN_DIR

    profile = tomllib.loads((BUILTIN_DIR / "default.toml").read_text(encoding="utf-8"))
    profile["fields"] |= {"mobile": "evaluator_phone", "certKey": "evaluator_phone_sha256"}
    path = tmp_path / "site.json"
    path.write_text(json.dumps(profile), encoding="utf-8")
    ctx = AppContext.create(make_settings(tmp_path, database_url=database_url,
                                          forwarder_profile_file=path))
    try:
        await add_call_rating(ctx, "3.1", Level.SATISFIED, caller="13812345678")
        async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as client:
            resp = await client.get("/api/v1/ratings", headers=await bearer(ctx, "aggregator"))
            text = await resp.text()
    finally:
        await ctx.close()
    body = json.loads(text)
    assert [i["project_no"] for i in body["items"]] == ["CALL-3.1"]
    assert "mobile" not in body["items"][0]["record"]
    assert "certKey" not in body["items"][0]["record"]
    assert "13812345678" not in text and "5678" not in text


async def test_roles_and_bad_queries(ctx: AppContext, client: Client) -> None:
    assert (await client.get("/api/v1/ratings")).status == 401
    agent = await bearer(ctx, "agent")
    assert (await client.get("/api/v1/ratings", headers=agent)).status == 403
    admin = await bearer(ctx, "admin")
    assert (await client.get("/api/v1/ratings", headers=admin)).status == 200
    aggregator = await bearer(ctx, "aggregator")
    for params in ({"after": "abc"}, {"after": "-1"}, {"limit": "0"}, {"limit": "1001"}):
        resp = await client.get("/api/v1/ratings", params=params, headers=aggregator)
        assert resp.status == 422, params
        assert (await resp.json())["error"]["code"] == "validation_failed"


async def test_outbox_figures_for_monitoring(ctx: AppContext, client: Client) -> None:
    await _case(ctx, "S1")
    await _case(ctx, "S2", hold=utcnow() + dt.timedelta(minutes=5))
    aggregator = await bearer(ctx, "aggregator")
    assert (await client.get("/api/v1/outbox", headers=aggregator)).status == 403
    resp = await client.get("/api/v1/outbox", headers=await bearer(ctx, "admin"))
    body = await resp.json()
    assert resp.status == 200
    assert {k: body[k] for k in ("pending", "held", "inflight", "delivered", "dead")} == {
        "pending": 2, "held": 1, "inflight": 0, "delivered": 0, "dead": 0
    }
    assert body["oldest_pending_age_seconds"] >= 0


async def test_openapi_documents_the_feed(ctx: AppContext, client: Client) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    feed = doc["paths"]["/api/v1/ratings"]["get"]
    assert feed["x-roles"] == ["aggregator"]
    assert {p["name"] for p in feed["parameters"]} == {"after", "limit"}
    assert doc["paths"]["/api/v1/outbox"]["get"]["x-roles"] == ["supervisor"]
    assert "/api/v1/outbox/status" not in doc["paths"]  # one endpoint for the figures
