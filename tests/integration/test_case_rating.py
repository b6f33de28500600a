"""一事一评 for every closed case, not only 差评 cases, with rule 2's default for cases too
(DOMAIN.md "Kinds of rating", rules 2 and 3; issue 10 "Evaluation coverage"), on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select

from callback_scheduler import tasks
from callback_scheduler.case_rating import in_scope
from callback_scheduler.cases import NewCase, close_case, create_case
from callback_scheduler.claims import claim
from callback_scheduler.results import Answer
from callback_scheduler.rules import Outcome
from callback_scheduler.tables import SYSTEM_CASE_RATING
from hotline.levels import Level
from ivr import defaults
from service.context import AppContext
from storage.models import Campaign, OutboxEntry, Rating
from tests.conftest import make_settings
from tests.helpers.callbacks import NOW, NUMBER, closed_bad_case, context, finish, task_of

CLOSES = NOW + dt.timedelta(days=7)  # the default window: 7 natural days


async def close_good(ctx: AppContext, case_number: str, number: str = NUMBER) -> Any:
    async with ctx.db.transaction() as s:
        await create_case(s, ctx, NewCase(case_number, "D1", "住建局", number), NOW)
        return await close_case(s, ctx, case_number, rectification_result="已办结",
                                bad_rating=None, now=NOW)


async def test_rule3_every_closed_case_gets_its_case_rating_call(ctx: AppContext) -> None:
    closed = await close_good(ctx, "GD-G1")
    assert closed.task is not None and closed.callback == "no 差评: 一事一评 call scheduled"
    task = await task_of(ctx, closed.task.id)
    async with ctx.db.sessions() as s:
        campaign = await s.get(Campaign, task.campaign_id)
    assert campaign is not None and campaign.created_by == SYSTEM_CASE_RATING
    assert (task.status, task.next_attempt_at, task.deadline_at) == ("pending", NOW, CLOSES)


async def test_case_rating_scope_bad_only_and_sample(tmp_path: Path, database_url: str) -> None:
    ctx = await context(tmp_path, database_url, case_rating_scope="bad_only")
    try:
        assert (await close_good(ctx, "GD-B1")).task is None
        bad = await closed_bad_case(ctx, "GD-B2", number="13900139000")
        assert bad.task is not None and "回访" in bad.callback  # the 差评 回访 as before
    finally:
        await ctx.close()
    half = make_settings(tmp_path, case_rating_scope="sample", case_rating_sample_percent=50)
    picked = [in_scope(half, f"GD-{i}") for i in range(400)]
    assert 150 < sum(picked) < 250  # about half ...
    assert picked == [in_scope(half, f"GD-{i}") for i in range(400)]  # ... always the same
    none = make_settings(tmp_path, case_rating_scope="sample", case_rating_sample_percent=0)
    assert not any(in_scope(none, f"GD-{i}") for i in range(100))


async def test_rule2_a_case_not_rated_gets_its_default_only_after_its_call_failed(
    ctx: AppContext,
) -> None:
    closed = await close_good(ctx, "GD-G2")
    assert closed.task is not None
    [attempt] = await claim(ctx, scheduler_id="s", now=NOW, want=1)
    # the window has passed but the call is under way: no default yet
    assert (await defaults.run_once(ctx, CLOSES + dt.timedelta(minutes=1))).cases_defaulted == 0
    await finish(ctx, attempt.attempt_id, Outcome.NO_ANSWER, CLOSES + dt.timedelta(minutes=2))
    report = await defaults.run_once(ctx, CLOSES + dt.timedelta(minutes=3))
    again = await defaults.run_once(ctx, CLOSES + dt.timedelta(minutes=4))
    assert (report.cases_defaulted, again.cases_defaulted) == (1, 0)
    async with ctx.db.sessions() as s:
        rating = await s.scalar(select(Rating).where(Rating.project_no == "GD-G2"))
        entries = (await s.scalars(select(OutboxEntry).where(
            OutboxEntry.project_no == "GD-G2"))).all()
        assert await tasks.manual_list(s) == []  # the default is the fallback, not a person
    assert rating is not None
    assert (rating.kind, rating.source, rating.level, rating.assess_number) == (
        "per_case", "default", 3, 2)
    assert [e.assess_number for e in entries] == [2]


async def test_rule2_a_rated_case_or_a_bad_case_is_never_defaulted(ctx: AppContext) -> None:
    closed = await close_good(ctx, "GD-G3")
    [attempt] = await claim(ctx, scheduler_id="s", now=NOW, want=1)
    async with ctx.db.transaction() as s:
        await tasks.record_ivr_result(s, ctx, attempt.attempt_id,
                                      Answer(Level.VERY_SATISFIED, resolved=True),
                                      Outcome.RATED, now=NOW)
    await finish(ctx, attempt.attempt_id, Outcome.ANSWERED_NO_RATING, NOW)
    assert closed.task is not None
    await closed_bad_case(ctx, "GD-B3", number="13900139000")
    report = await defaults.run_once(ctx, CLOSES + dt.timedelta(days=30))
    assert report.cases_defaulted == 0
    async with ctx.db.sessions() as s:
        rating = await s.scalar(select(Rating).where(Rating.project_no == "GD-G3"))
    assert rating is not None and (rating.source, rating.level) == ("callback", 1)
