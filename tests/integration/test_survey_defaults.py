"""The default-rating job (DOMAIN.md rule 2) on SQLite and PostgreSQL: a call not rated within
the window becomes 基本满意 with source "default", exactly once, with the window measured in
minutes, natural days or official working days."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from hotline.clock import BEIJING
from hotline.levels import DEFAULT_LEVEL, Level
from ivr import defaults
from service.context import AppContext
from storage.models import Call, OutboxEntry, Rating, RatingSource, SurveyStatus
from storage.ratings import RatingInput, project_no_for_call, save_rating

NOW = dt.datetime(2026, 3, 20, 4, 0, tzinfo=dt.UTC)


def with_settings(ctx: AppContext, **changes: Any) -> AppContext:
    """The same database with other policy settings."""
    settings = ctx.settings.model_copy(update=changes)
    return AppContext(settings=settings, db=ctx.db, vault=ctx.vault)


async def add_call(ctx: AppContext, linkedid: str, status: str, *, ended: dt.datetime | None,
                   started: dt.datetime | None = None, survey_started: dt.datetime | None = None,
                   **kw: Any) -> int:
    async with ctx.db.transaction() as s:
        call = Call(linkedid=linkedid, survey_status=status, ended_at=ended,
                    started_at=started or (ended or NOW) - dt.timedelta(minutes=5),
                    survey_started_at=survey_started, **kw)
        s.add(call)
        await s.flush()
        return call.id


async def state(ctx: AppContext, linkedid: str) -> tuple[str, Rating | None]:
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == linkedid))
        assert call is not None
        rating = await s.scalar(select(Rating).where(Rating.project_no == f"CALL-{linkedid}"))
        return call.survey_status, rating


async def test_not_rated_call_past_the_window_gets_a_flagged_default(ctx: AppContext) -> None:
    """Rule 2: not rated within the window (default 7 natural days) → 基本满意, flagged default."""
    await add_call(ctx, "d.1", SurveyStatus.NOT_RATED, ended=NOW - dt.timedelta(days=7, minutes=1),
                   agent_id="A1024", department_code="D1", case_number="GD1")
    report = await defaults.run_once(ctx, NOW)
    assert report.defaulted == 1
    status, rating = await state(ctx, "d.1")
    assert status == SurveyStatus.DEFAULTED
    assert rating is not None and rating.is_default
    assert (rating.level, rating.source, rating.kind) == (int(DEFAULT_LEVEL), "default", "per_call")
    assert (rating.agent_id, rating.department_code) == ("A1024", "D1")
    assert rating.rated_at == NOW
    async with ctx.db.sessions() as s:
        entry = await s.scalar(select(OutboxEntry))
    assert entry is not None and entry.payload["source"] == "default"
    assert entry.payload["case_number"] == "GD1"


async def test_within_the_window_nothing_happens(ctx: AppContext) -> None:
    await add_call(ctx, "d.2", SurveyStatus.NOT_RATED, ended=NOW - dt.timedelta(days=6, hours=23))
    assert (await defaults.run_once(ctx, NOW)).defaulted == 0
    assert await state(ctx, "d.2") == (SurveyStatus.NOT_RATED, None)


@pytest.mark.parametrize(
    "status", [SurveyStatus.RATED, SurveyStatus.DEFAULTED, SurveyStatus.ABANDONED]
)
async def test_rated_defaulted_and_abandoned_calls_are_left_alone(
    ctx: AppContext, status: str
) -> None:
    """Rule 2 defaults services not rated; a caller who left the queue before any agent had no
    service, so the abandoned call stays abandoned and gets no invented 基本满意."""
    await add_call(ctx, "d.3", status, ended=NOW - dt.timedelta(days=30))
    assert (await defaults.run_once(ctx, NOW)).defaulted == 0
    assert await state(ctx, "d.3") == (status, None)


async def test_exactly_once_with_two_processes(ctx: AppContext) -> None:
    """Two job processes (separate engines) racing over the same calls make one rating each."""
    for i in range(20):
        await add_call(ctx, f"race.{i}", SurveyStatus.NOT_RATED, ended=NOW - dt.timedelta(days=8))
    other = AppContext.create(ctx.settings)
    try:
        reports = await asyncio.gather(
            defaults.run_once(ctx, NOW), defaults.run_once(other, NOW),
            defaults.run_once(ctx, NOW),
        )
    finally:
        await other.close()
    assert sum(r.defaulted for r in reports) == 20
    async with ctx.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Rating)) == 20
        assert await s.scalar(select(func.count()).select_from(OutboxEntry)) == 20
    assert (await defaults.run_once(ctx, NOW)).defaulted == 0


async def test_a_real_vote_is_never_overwritten(ctx: AppContext) -> None:
    """Status out of step with a keypad rating: the vote stays, the status is corrected."""
    call_id = await add_call(ctx, "d.4", SurveyStatus.NOT_RATED, ended=NOW - dt.timedelta(days=9))
    async with ctx.db.transaction() as s:
        await save_rating(s, RatingInput(project_no=project_no_for_call("d.4"), kind="per_call",
                                         source=RatingSource.KEYPAD, level=Level.SATISFIED,
                                         call_id=call_id))
    assert (await defaults.run_once(ctx, NOW)).defaulted == 0
    status, rating = await state(ctx, "d.4")
    assert status == SurveyStatus.RATED
    assert rating is not None and (rating.level, rating.source) == (2, "keypad")


async def test_minutes_window(ctx: AppContext) -> None:
    """Seed 000: a 10-minute on-site window."""
    job = with_settings(ctx, default_rating_window=10, default_rating_window_unit="minutes")
    await add_call(job, "m.1", SurveyStatus.NOT_RATED, ended=NOW - dt.timedelta(minutes=11))
    await add_call(job, "m.2", SurveyStatus.NOT_RATED, ended=NOW - dt.timedelta(minutes=9))
    assert (await defaults.run_once(job, NOW)).defaulted == 1
    assert (await state(job, "m.1"))[0] == SurveyStatus.DEFAULTED
    assert (await state(job, "m.2"))[0] == SurveyStatus.NOT_RATED


async def test_working_days_window_across_national_day(ctx: AppContext) -> None:
    """Seed 001: 5 working days, on the official calendar. A call on Tue 2025-09-30 (Beijing):
    1-8 October is the National Day holiday, Sat 11 October a 调休 working day, so the 5th
    working day is Tue 14 October and the default comes only after it ends — not on 5 October
    as 5 natural days would give."""
    job = with_settings(ctx, default_rating_window=5, default_rating_window_unit="working_days")
    ended = dt.datetime(2025, 9, 30, 10, 0, tzinfo=BEIJING)
    await add_call(job, "w.1", SurveyStatus.NOT_RATED, ended=ended.astimezone(dt.UTC))
    assert defaults.window_end(job, ended) == dt.datetime(2025, 10, 15, tzinfo=BEIJING)
    for when in (dt.datetime(2025, 10, 6, 12, 0), dt.datetime(2025, 10, 14, 23, 59)):
        now = when.replace(tzinfo=BEIJING).astimezone(dt.UTC)
        assert (await defaults.run_once(job, now)).defaulted == 0
    now = dt.datetime(2025, 10, 15, 0, 1, tzinfo=BEIJING).astimezone(dt.UTC)
    assert (await defaults.run_once(job, now)).defaulted == 1
    assert (await state(job, "w.1"))[0] == SurveyStatus.DEFAULTED


async def test_stuck_survey_becomes_not_rated_then_defaulted(ctx: AppContext) -> None:
    """A survey process that died leaves in_progress; a call that never reached the survey
    leaves pending. After survey_stale_after_seconds both count as not rated (rule 1)."""
    old = NOW - dt.timedelta(days=8)
    await add_call(ctx, "s.1", SurveyStatus.IN_PROGRESS, ended=None, started=old,
                   survey_started=old)
    await add_call(ctx, "s.2", SurveyStatus.PENDING, ended=old)
    await add_call(ctx, "s.3", SurveyStatus.IN_PROGRESS, ended=None,
                   started=NOW - dt.timedelta(minutes=20),
                   survey_started=NOW - dt.timedelta(minutes=2))
    await add_call(ctx, "s.4", SurveyStatus.PENDING, ended=None,
                   started=NOW - dt.timedelta(minutes=30))
    report = await defaults.run_once(ctx, NOW)
    assert (report.stale, report.defaulted) == (2, 2)
    assert (await state(ctx, "s.1"))[0] == SurveyStatus.DEFAULTED
    assert (await state(ctx, "s.2"))[0] == SurveyStatus.DEFAULTED
    assert (await state(ctx, "s.3"))[0] == SurveyStatus.IN_PROGRESS
    assert (await state(ctx, "s.4"))[0] == SurveyStatus.PENDING


async def test_recently_stuck_call_waits_for_its_own_window(ctx: AppContext) -> None:
    start = NOW - dt.timedelta(hours=2)
    await add_call(ctx, "s.5", SurveyStatus.IN_PROGRESS, ended=None, started=start,
                   survey_started=start)
    report = await defaults.run_once(ctx, NOW)
    assert (report.stale, report.defaulted) == (1, 0)
    assert (await state(ctx, "s.5"))[0] == SurveyStatus.NOT_RATED


async def test_worker_runs_passes_until_stopped(ctx: AppContext) -> None:
    job = with_settings(ctx, default_rating_interval_seconds=0.05)
    await add_call(job, "r.1", SurveyStatus.NOT_RATED,
                   ended=dt.datetime.now(dt.UTC) - dt.timedelta(days=8))
    stopping = asyncio.Event()
    worker = asyncio.create_task(defaults.run(job, stopping))
    for _ in range(100):
        if (await state(job, "r.1"))[0] == SurveyStatus.DEFAULTED:
            break
        await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.wait_for(worker, 5)
    assert (await state(job, "r.1"))[0] == SurveyStatus.DEFAULTED
