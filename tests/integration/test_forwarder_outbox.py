"""storage.outbox on SQLite and PostgreSQL: claiming in order per case, leases, outcomes,
re-queuing and the monitoring figures."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, update

from forwarder.simulated import add_case_ratings
from hotline.clock import utcnow
from hotline.levels import Level
from service.context import AppContext
from storage import outbox
from storage.audit import audit_query
from storage.db import Database
from storage.models import OutboxEntry, OutboxStatus, RatingKind, RatingSource
from storage.ratings import RatingInput, enqueue, save_rating


async def _rating(ctx: AppContext, project: str, assess: int = 1, hold: float = 0) -> None:
    async with ctx.db.transaction() as s:
        await save_rating(
            s,
            RatingInput(project_no=project, kind=RatingKind.PER_CASE,
                        source=RatingSource.CALLBACK, level=Level.SATISFIED,
                        assess_number=assess),
            hold_until=utcnow() + dt.timedelta(seconds=hold) if hold else None,
        )


async def _statuses(db: Database) -> dict[str, str]:
    async with db.sessions() as s:
        rows = (await s.execute(
            select(OutboxEntry.project_no, OutboxEntry.assess_number, OutboxEntry.status)
        )).all()
    return {f"{p}:{a}": st for p, a, st in rows}


async def test_claim_takes_oldest_first_and_one_entry_per_case(ctx: AppContext) -> None:
    await add_case_ratings(ctx, 4, second_every=2)  # GD1 and GD3 have two entries each
    first = await outbox.claim(ctx.db, "w1", limit=10, lease=30)
    assert [f"{e.project_no}:{e.assess_number}" for e in first] == [
        "GD000001:1", "GD000002:1", "GD000003:1", "GD000004:1"
    ]
    assert all(e.status == OutboxStatus.INFLIGHT and e.claimed_by == "w1" for e in first)
    # the second entries wait for the first ones: in flight is not delivered
    assert await outbox.claim(ctx.db, "w2", limit=10, lease=30) == []
    by_key = {f"{e.project_no}:{e.assess_number}": e for e in first}
    assert await outbox.mark_delivered(ctx.db, by_key["GD000001:1"].id, "w1")
    assert await outbox.mark_retry(
        ctx.db, by_key["GD000003:1"].id, "w1", "HTTP 500", utcnow() - dt.timedelta(seconds=1)
    )
    second = await outbox.claim(ctx.db, "w2", limit=10, lease=30)
    # GD1:2 now follows its delivered predecessor; GD3:1 is due again, GD3:2 still waits
    assert sorted(f"{e.project_no}:{e.assess_number}" for e in second) == [
        "GD000001:2", "GD000003:1"
    ]


async def test_held_and_backing_off_entries_are_not_claimed(ctx: AppContext) -> None:
    await _rating(ctx, "HELD", hold=600)
    await _rating(ctx, "LATER")
    async with ctx.db.transaction() as s:
        await s.execute(
            update(OutboxEntry).where(OutboxEntry.project_no == "LATER")
            .values(next_attempt_at=utcnow() + dt.timedelta(minutes=5))
        )
    assert await outbox.claim(ctx.db, "w", limit=10, lease=30) == []
    figures = await outbox.counts(ctx.db)
    assert (figures.pending, figures.held, figures.inflight) == (2, 1, 0)


async def test_expired_lease_is_taken_over_and_the_old_holder_cannot_finish(
    ctx: AppContext,
) -> None:
    await _rating(ctx, "P1")
    [mine] = await outbox.claim(ctx.db, "crashed", limit=10, lease=30)
    assert await outbox.claim(ctx.db, "other", limit=10, lease=30) == []
    later = utcnow() + dt.timedelta(seconds=31)
    [taken] = await outbox.claim(ctx.db, "other", limit=10, lease=30, now=later)
    assert taken.id == mine.id and taken.claimed_by == "other"
    assert not await outbox.mark_delivered(ctx.db, mine.id, "crashed")
    held, _ = await outbox.renew(ctx.db, "crashed", [mine.id], 30)
    assert held == set()
    held, _ = await outbox.renew(ctx.db, "other", [mine.id], 30)
    assert held == {mine.id}
    assert await outbox.mark_delivered(ctx.db, mine.id, "other")
    assert (await _statuses(ctx.db)) == {"P1:1": OutboxStatus.DELIVERED}


async def test_dead_entry_holds_back_its_case_until_requeued(ctx: AppContext) -> None:
    await _rating(ctx, "C1", 1)
    await _rating(ctx, "C1", 2)
    [entry] = await outbox.claim(ctx.db, "w", limit=10, lease=30)
    assert await outbox.mark_dead(ctx.db, entry.id, "w", "HTTP 400: bad areaCode" + "x" * 5000)
    assert await outbox.claim(ctx.db, "w", limit=10, lease=30) == []
    [dead] = await outbox.dead_entries(ctx.db)
    assert dead.last_error is not None and dead.last_error.startswith("HTTP 400: bad areaCode")
    assert len(dead.last_error) <= outbox.MAX_ERROR
    assert dead.attempts == 1
    result = await outbox.retry(ctx.db, [entry.id, entry.id + 100], actor="li", role="admin")
    assert result.requeued == [entry.id] and result.not_found == [entry.id + 100]
    async with ctx.db.sessions() as s:  # a person's re-queue is audited (DEVELOPERS rule)
        [audit] = list(await s.scalars(audit_query(action="outbox.retry")))
    assert (audit.actor, audit.details) == ("li", {"ids": [entry.id]})
    [again] = await outbox.claim(ctx.db, "w", limit=10, lease=30)
    assert again.id == entry.id
    assert await outbox.mark_delivered(ctx.db, entry.id, "w")
    [second] = await outbox.claim(ctx.db, "w", limit=10, lease=30)
    assert second.assess_number == 2
    skipped = await outbox.retry(ctx.db, [entry.id], actor="li", role="admin")
    assert skipped.skipped == {entry.id: "delivered"}


async def test_retry_all_dead_and_release(ctx: AppContext) -> None:
    for p in ("A", "B", "C"):
        await _rating(ctx, p)
    claimed = await outbox.claim(ctx.db, "w", limit=10, lease=30)
    for e in claimed[:2]:
        await outbox.mark_dead(ctx.db, e.id, "w", "HTTP 422")
    assert await outbox.release(ctx.db, "w", [claimed[2].id]) == 1
    figures = await outbox.counts(ctx.db)
    assert (figures.pending, figures.dead, figures.inflight) == (1, 2, 0)
    assert figures.oldest_pending_age_seconds is not None
    assert 0 <= figures.oldest_pending_age_seconds < 60
    assert await outbox.retry_all_dead(ctx.db, actor="li", role="admin") == 2
    async with ctx.db.sessions() as s:
        [audit] = list(await s.scalars(audit_query(action="outbox.retry_all_dead")))
    assert (audit.actor, audit.details) == ("li", {"count": 2})
    assert (await outbox.counts(ctx.db)).pending == 3


async def test_an_update_after_sending_travels_as_a_new_entry(ctx: AppContext) -> None:
    await _rating(ctx, "U")
    [entry] = await outbox.claim(ctx.db, "w", limit=10, lease=30)
    await _rating(ctx, "U")  # the rating changes while its first version is in flight
    async with ctx.db.sessions() as s:
        entries = (await s.scalars(select(OutboxEntry).order_by(OutboxEntry.id))).all()
    assert [(e.id == entry.id, e.status) for e in entries] == [
        (True, OutboxStatus.INFLIGHT), (False, OutboxStatus.PENDING)
    ]
    assert await outbox.claim(ctx.db, "w2", limit=10, lease=30) == []  # waits for the first


async def test_invalidation_is_its_own_entry_after_the_rating(ctx: AppContext) -> None:
    await _rating(ctx, "V")
    [entry] = await outbox.claim(ctx.db, "w", limit=10, lease=30)
    await outbox.mark_delivered(ctx.db, entry.id, "w")
    async with ctx.db.transaction() as s:
        from storage.models import Rating

        rating = await s.scalar(select(Rating).where(Rating.project_no == "V"))
        assert rating is not None
        rating.valid, rating.invalid_reason = False, "恶意差评"
        await s.flush()
        await enqueue(s, rating, event="invalidation")
    [inv] = await outbox.claim(ctx.db, "w", limit=10, lease=30)
    assert inv.event == "invalidation" and inv.payload["valid"] is False


async def test_concurrent_claims_never_share_an_entry(database_url: str, ctx: AppContext) -> None:
    """Several claimers at once (separate connection pools on PostgreSQL, where SKIP LOCKED
    matters; serialised writers on SQLite)."""
    await add_case_ratings(ctx, 200)
    others = [Database(database_url) for _ in range(4)]
    try:
        async def claimer(db: Database, name: str) -> list[int]:
            got: list[int] = []
            while batch := await _claim_retrying(db, name):
                got += [e.id for e in batch]
            return got

        results = await asyncio.gather(*(claimer(db, f"w{i}") for i, db in enumerate(others)))
    finally:
        for db in others:
            await db.close()
    flat = [i for r in results for i in r]
    assert len(flat) == len(set(flat)) == 200


async def _claim_retrying(db: Database, name: str) -> list[OutboxEntry]:
    # SQLite may answer "database is locked" under contention; the worker's loop retries too
    from sqlalchemy.exc import OperationalError

    for _ in range(50):
        try:
            return await outbox.claim(db, name, limit=7, lease=30)
        except OperationalError:  # pragma: no cover - timing dependent
            await asyncio.sleep(0.01)
    pytest.fail("could not claim")
