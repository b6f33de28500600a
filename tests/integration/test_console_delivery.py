"""The console's 推送 endpoints on the real application, SQLite and PostgreSQL: the outbox
figures, the dead letters, and their re-queue — a person's change, so it is audited."""

from __future__ import annotations

from forwarder.simulated import add_case_ratings
from service.context import AppContext
from storage import outbox
from storage.audit import audit_query
from tests.conftest import Client, bearer


async def _two_dead(ctx: AppContext) -> list[int]:
    await add_case_ratings(ctx, 3)
    claimed = await outbox.claim(ctx.db, "w", limit=10, lease=30)
    for entry in claimed[:2]:
        assert await outbox.mark_dead(ctx.db, entry.id, "w", "HTTP 422: bad areaCode")
    return [e.id for e in claimed[:2]]


async def test_figures_and_dead_letters_for_supervisors_only(
    client: Client, ctx: AppContext
) -> None:
    dead = await _two_dead(ctx)
    assert (await client.get("/api/v1/outbox", headers=await bearer(ctx, "agent"))).status == 403
    auth = await bearer(ctx, "supervisor")
    figures = await (await client.get("/api/v1/outbox", headers=auth)).json()
    assert (figures["dead"], figures["inflight"]) == (2, 1)
    letters = await (await client.get("/api/v1/outbox/dead", headers=auth)).json()
    assert sorted(d["id"] for d in letters) == dead
    assert all(d["last_error"] == "HTTP 422: bad areaCode" for d in letters)


async def test_retry_requeues_and_is_audited(client: Client, ctx: AppContext) -> None:
    first, second = await _two_dead(ctx)
    auth = await bearer(ctx, "supervisor")
    resp = await client.post("/api/v1/outbox/retry", json={"ids": [first]}, headers=auth)
    assert resp.status == 200 and (await resp.json()) == {"requeued": 1}
    resp = await client.post("/api/v1/outbox/retry", json={"all_dead": True}, headers=auth)
    assert (await resp.json()) == {"requeued": 1}
    assert (await outbox.counts(ctx.db)).dead == 0
    async with ctx.db.sessions() as s:
        rows = sorted(await s.scalars(audit_query(subject_type="outbox")), key=lambda r: r.id)
    assert [(r.action, r.role, r.details) for r in rows] == [
        ("outbox.retry", "supervisor", {"ids": [first]}),
        ("outbox.retry_all_dead", "supervisor", {"count": 1}),
    ]
    assert {r.actor for r in rows} == {"supervisor-x"}
    assert await outbox.dead_entries(ctx.db) == [] and second not in rows[0].details["ids"]
