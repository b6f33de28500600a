"""Calls, ratings and closed 差评 cases in a test database, on the scheduler's Beijing clock
(``bj``, ``NOW``): the 回访, campaign, case and 差评 tests build their data with these."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from callback_scheduler import tasks
from callback_scheduler.cases import (
    Closed,
    NewCase,
    close_case,
    create_case,
)
from callback_scheduler.rules import Outcome
from hotline.clock import BEIJING
from hotline.levels import Level
from service.context import AppContext
from storage.models import (
    Call,
    CallbackTask,
    RatingKind,
    RatingSource,
    SurveyStatus,
)
from storage.ratings import RatingInput, project_no_for_call, save_rating
from tests.conftest import make_settings


def bj(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> dt.datetime:
    """A Beijing wall-clock time as the aware UTC instant the scheduler works with."""
    return dt.datetime(y, mo, d, h, mi, tzinfo=BEIJING).astimezone(dt.UTC)


NOW = bj(2025, 9, 30, 10, 0)  # a Tuesday morning, inside the first call window
NUMBER = "13800138000"


async def context(tmp_path: Path, url: str, **overrides: Any) -> AppContext:
    return AppContext.create(make_settings(tmp_path, database_url=url, **overrides))


async def add_call(ctx: AppContext, linkedid: str, *, number: str | None = NUMBER,
                   status: str = SurveyStatus.RATED, started: dt.datetime = NOW,
                   department: str | None = "D1") -> int:
    protected = ctx.vault.protect(number) if number else None
    async with ctx.db.transaction() as s:
        # a call whose survey is over has ended (mark_not_rated and the save set ended_at)
        ended = started if status not in (SurveyStatus.PENDING, SurveyStatus.IN_PROGRESS) else None
        call = Call(linkedid=linkedid, started_at=started, ended_at=ended, survey_status=status,
                    department_code=department, agent_id="A007",
                    caller_enc=protected.encrypted if protected else None,
                    caller_hash=protected.digest if protected else None,
                    caller_masked=protected.masked if protected else None)
        s.add(call)
        await s.flush()
        return call.id


async def rate_call(ctx: AppContext, linkedid: str, level: Level) -> None:
    async with ctx.db.transaction() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == linkedid))
        assert call is not None
        await save_rating(s, RatingInput(
            project_no=project_no_for_call(linkedid), kind=RatingKind.PER_CALL,
            source=RatingSource.KEYPAD, level=level, call_id=call.id))


async def closed_bad_case(ctx: AppContext, case_number: str, *, number: str | None = NUMBER,
                          now: dt.datetime = NOW) -> Closed:
    """A case whose call got a 差评, closed at ``now``."""
    linkedid = f"L-{case_number}"
    await add_call(ctx, linkedid, number=number)
    await rate_call(ctx, linkedid, Level.DISSATISFIED)
    async with ctx.db.transaction() as s:
        await create_case(s, ctx, NewCase(case_number, "D1", "住建局", number, linkedid), now)
        return await close_case(s, ctx, case_number, rectification_result="已整改",
                                bad_rating=None, now=now)


async def task_of(ctx: AppContext, task_id: int) -> CallbackTask:
    async with ctx.db.sessions() as s:
        task = await s.get(CallbackTask, task_id)
        assert task is not None
        return task


async def settle_open_tasks(ctx: AppContext) -> None:
    """End every open task (as if reached), so the same cases may go into another campaign:
    a case open in one campaign is never queued in a second (DOMAIN.md rule 8)."""
    async with ctx.db.transaction() as s:
        await s.execute(update(CallbackTask)
                        .where(CallbackTask.status.in_(["pending", "dialing"]))
                        .values(status="completed"))


async def finish(ctx: AppContext, attempt_id: int, outcome: Outcome, now: dt.datetime) -> None:
    async with ctx.db.transaction() as s:
        await tasks.finish_attempt(s, ctx, attempt_id, outcome, now=now)
