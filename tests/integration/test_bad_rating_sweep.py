"""The safety sweep of the 差评 loop (issue 10 "Every valid 差评 … opens exactly one 差评
item"), on SQLite and PostgreSQL: a valid 差评 saved outside the hook (no item) gets one from
the ``serve_bad_ratings`` worker's pass, exactly once however often the pass runs; a second
such 差评 on the same call joins it; good, invalid and already handled ratings are left alone
(DOMAIN.md rule 4: every 差评 goes to the 责任单位; rule 6: an invalid one is out)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select, update

from bad_ratings import sweep, worker
from hotline.clock import utcnow
from hotline.levels import Level
from service.context import AppContext
from storage.models import (
    AuditEntry,
    BadRatingEvent,
    BadRatingItem,
    Call,
    Rating,
    RatingKind,
    RatingSource,
)
from storage.ratings import AFTER_SAVE, RatingInput, project_no_for_call, save_rating
from tests.conftest import make_settings
from tests.helpers.callbacks import add_call


async def save_without_hook(ctx: AppContext, linkedid: str, level: Level, *, n: int = 1,
                            valid: bool = True) -> int:
    """A rating written as a tool without the loop's hook would write it."""
    hook = ctx.db.info.pop(AFTER_SAVE)
    try:
        async with ctx.db.transaction() as s:
            call = await s.scalar(select(Call).where(Call.linkedid == linkedid))
            assert call is not None
            rating = await save_rating(s, RatingInput(
                project_no=project_no_for_call(linkedid), kind=RatingKind.PER_CALL,
                source=RatingSource.MANUAL, level=level, assess_number=n, call_id=call.id,
                department_code="D1"))
            rating.valid = valid
            return rating.id
    finally:
        ctx.db.info[AFTER_SAVE] = hook


async def items(ctx: AppContext) -> list[BadRatingItem]:
    async with ctx.db.sessions() as s:
        return list(await s.scalars(select(BadRatingItem).order_by(BadRatingItem.id)))


async def test_a_bad_rating_saved_without_the_hook_gets_its_item_once(ctx: AppContext) -> None:
    for linkedid in ("SW-1", "SW-GOOD", "SW-VOID"):
        await add_call(ctx, linkedid)
    orphan = await save_without_hook(ctx, "SW-1", Level.VERY_DISSATISFIED)
    await save_without_hook(ctx, "SW-GOOD", Level.SATISFIED)
    await save_without_hook(ctx, "SW-VOID", Level.DISSATISFIED, valid=False)
    assert await items(ctx) == []  # the hook was not there: nothing opened

    for _ in range(3):  # the worker's pass, again and again: one item
        await worker.one_pass(ctx, None)
    [item] = await items(ctx)
    assert (item.first_rating_id, item.state, item.department_code) == (
        orphan, "pending_verification", "D1")
    assert item.verify_due is not None and item.rectify_due is not None
    async with ctx.db.sessions() as s:
        audit = list(await s.scalars(select(AuditEntry.action)))
    assert audit == ["bad_rating.open"]
    assert await sweep.sweep(ctx.db, policy=ctx.bad_rating_policy, now=utcnow()) == 0

    # a further 差评 on the same call, also without the hook, joins the open item
    later = await save_without_hook(ctx, "SW-1", Level.DISSATISFIED, n=2)
    assert await sweep.sweep(ctx.db, policy=ctx.bad_rating_policy, now=utcnow()) == 1
    [item] = await items(ctx)
    async with ctx.db.sessions() as s:
        events = list(await s.execute(select(BadRatingEvent.action, BadRatingEvent.rating_id)
                                      .order_by(BadRatingEvent.id)))
    assert [tuple(e) for e in events] == [("open", orphan), ("join", later)]
    assert await sweep.sweep(ctx.db, policy=ctx.bad_rating_policy, now=utcnow()) == 0


async def test_ratings_saved_through_the_hook_are_not_swept_again(ctx: AppContext) -> None:
    await add_call(ctx, "SW-2")
    async with ctx.db.transaction() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == "SW-2"))
        assert call is not None
        await save_rating(s, RatingInput(
            project_no=project_no_for_call("SW-2"), kind=RatingKind.PER_CALL,
            source=RatingSource.KEYPAD, level=Level.VERY_DISSATISFIED, call_id=call.id))
    assert len(await items(ctx)) == 1
    assert await sweep.sweep(ctx.db, policy=ctx.bad_rating_policy, now=utcnow()) == 0
    async with ctx.db.sessions() as s:
        assert list(await s.scalars(select(BadRatingEvent.action))) == ["open"]


async def test_the_sweep_looks_back_as_far_as_the_setting_says(
    tmp_path: Path, database_url: str
) -> None:
    """DOMAIN.md rule 4 (every 差评 reaches the 责任单位): an orphan 差评 70 days old is past
    the default 60-day look-back and is left to a person; with
    ``bad_rating_sweep_lookback_days`` = 90 the worker's pass hands it to the loop."""
    for days, opened in ((60, 0), (90, 1)):
        ctx = AppContext.create(make_settings(
            tmp_path / str(days), database_url=database_url,
            bad_rating_sweep_lookback_days=days))
        try:
            if days == 60:
                await add_call(ctx, "SW-OLD")
                old = await save_without_hook(ctx, "SW-OLD", Level.VERY_DISSATISFIED)
                async with ctx.db.transaction() as s:
                    await s.execute(update(Rating).where(Rating.id == old).values(
                        rated_at=utcnow() - dt.timedelta(days=70)))
            await worker.one_pass(ctx, None)
            assert len(await items(ctx)) == opened
        finally:
            await ctx.close()


async def test_the_timeline_rating_id_is_indexed(ctx: AppContext) -> None:
    """The sweep's 'no timeline row names it' test reads an index on both databases."""
    def names(conn: Any) -> set[str]:
        return {ix["name"] for ix in inspect(conn).get_indexes("bad_rating_events")}

    async with ctx.db.engine.connect() as conn:
        found = await conn.run_sync(names)
    assert "ix_bad_rating_events_rating_id" in found
