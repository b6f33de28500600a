"""The default-rating job (DOMAIN.md rule 2): a call not rated within the window counts as
基本满意, flagged as a default (``source = "default"``), never as a real vote.

Each pass:

1. Calls stuck ``pending`` / ``in_progress`` for longer than ``survey_stale_after_seconds``
   (the survey process died, or the call ended without ever reaching the survey) become
   ``not_rated``, and are taken to have ended when their survey began, else then.
2. Each ``not_rated`` call whose window has passed gets the default rating and the status
   ``defaulted``, exactly once even with several processes: a conditional
   ``UPDATE … WHERE survey_status = 'not_rated'`` in the same transaction as the rating, and
   only the process whose update hit the row writes the rating. A call whose 电话邀评 (rule 3,
   callback_scheduler.invitations) is pending or under way waits for it: the default applies
   only if the invitation fails.

A call whose step sits in the survey's journal (the database was away during its survey; issue
8) or is still on its way to the database is never defaulted: its vote may be there.

The window runs from the end of the call, never from its start, so a long call is never
defaulted while it is still going on (issue 8 defect 10). A call with no recorded end counts as
ended when its survey began, else ``survey_stale_after_seconds`` after its start:

* ``minutes`` / ``natural_days``: that exact duration later;
* ``working_days``: the end of the N-th working day after the call's day (Beijing time,
  official calendar: holidays off, 调休 make-up days on).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from hotline.clock import as_utc, to_local, utcnow
from hotline.levels import DEFAULT_LEVEL
from service.context import AppContext
from storage.models import (
    Call,
    CallbackTask,
    Case,
    CaseStatus,
    Rating,
    RatingKind,
    RatingSource,
    SurveyStatus,
)
from storage.ratings import RatingInput, enqueue, project_no_for_call, save_rating

log = logging.getLogger("hotline.ivr.defaults")

BATCH = 500


@dataclass
class PassReport:
    stale: int = 0
    defaulted: int = 0
    cases_defaulted: int = 0

#: 一事一评 (per case) is an additional evaluation in the push format (DOMAIN.md)
CASE_ASSESS_NUMBER = 2


def reference_time(ctx: AppContext, call: Call) -> dt.datetime:
    """When the call's default-rating window starts: its end (issue 8: never while it runs)."""
    if call.ended_at is not None:
        return as_utc(call.ended_at)
    if call.survey_started_at is not None:  # the conversation was over when the survey began
        return as_utc(call.survey_started_at)
    return as_utc(call.started_at) + dt.timedelta(seconds=ctx.settings.survey_stale_after_seconds)


def window_end(ctx: AppContext, reference: dt.datetime) -> dt.datetime:
    """When the default-rating window of a call that ended at ``reference`` closes."""
    s = ctx.settings
    n = s.default_rating_window
    if s.default_rating_window_unit == "minutes":
        return reference + dt.timedelta(minutes=n)
    if s.default_rating_window_unit == "natural_days":
        return reference + dt.timedelta(days=n)
    last_day = ctx.workdays.add_working_days(to_local(reference, s.tz).date(), n)
    next_midnight = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), s.tz)
    return next_midnight.astimezone(dt.UTC)


def _earliest_possible_reference(ctx: AppContext, now: dt.datetime) -> dt.datetime:
    """A cheap SQL bound: N working days are never shorter than N natural days."""
    s = ctx.settings
    if s.default_rating_window_unit == "minutes":
        return now - dt.timedelta(minutes=s.default_rating_window)
    return now - dt.timedelta(days=s.default_rating_window)


async def mark_stale(ctx: AppContext, now: dt.datetime) -> int:
    cutoff = now - dt.timedelta(seconds=ctx.settings.survey_stale_after_seconds)
    async with ctx.db.transaction() as s:
        result = await s.execute(
            update(Call)
            .where(
                or_(
                    and_(
                        Call.survey_status == SurveyStatus.IN_PROGRESS,
                        func.coalesce(Call.survey_started_at, Call.started_at) < cutoff,
                    ),
                    and_(
                        Call.survey_status == SurveyStatus.PENDING,
                        func.coalesce(Call.ended_at, Call.started_at) < cutoff,
                    ),
                )
            )
            .values(survey_status=SurveyStatus.NOT_RATED, updated_at=now,
                    # a survey begins after the conversation: its start bounds the call's end
                    ended_at=func.coalesce(Call.ended_at, Call.survey_started_at, now))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def invitation_open(now: dt.datetime) -> ColumnElement[bool]:
    """The call has a 电话邀评 (rule 3) under way, or still pending before its deadline: the
    default waits for it (issue 10). A pending one past its deadline no longer holds the
    default back, even if no scheduler runs to expire it."""
    return exists().where(
        CallbackTask.call_id == Call.id,
        or_(CallbackTask.status == "dialing",
            and_(CallbackTask.status == "pending",
                 or_(CallbackTask.deadline_at.is_(None), CallbackTask.deadline_at > now))),
    )


async def default_call(ctx: AppContext, call_id: int, now: dt.datetime) -> bool:
    """Give one not-rated call its default rating; False if someone else got there first."""
    async with ctx.db.transaction() as s:
        claimed = await s.execute(
            update(Call)
            .where(Call.id == call_id, Call.survey_status == SurveyStatus.NOT_RATED,
                   ~invitation_open(now))
            .values(survey_status=SurveyStatus.DEFAULTED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return False
        call = await s.get(Call, call_id)
        assert call is not None
        project_no = project_no_for_call(call.linkedid)
        if await s.scalar(select(Rating.id).where(Rating.project_no == project_no,
                                                  Rating.assess_number == 1)):
            # a real vote exists (status out of step): keep the vote, never overwrite it
            call.survey_status = SurveyStatus.RATED
            return False
        case_id = None
        if call.case_number:
            case_id = await s.scalar(select(Case.id).where(Case.case_number == call.case_number))
        await save_rating(
            s,
            RatingInput(
                project_no=project_no,
                kind=RatingKind.PER_CALL,
                source=RatingSource.DEFAULT,
                level=DEFAULT_LEVEL,
                call_id=call.id,
                case_id=case_id,
                case_number=call.case_number,
                agent_id=call.agent_id,
                department_code=call.department_code,
                rated_at=now,
            ),
        )
    return True


def _case_call_open(now: dt.datetime) -> ColumnElement[bool]:
    """The case's 一事一评 call is under way or still pending before its deadline."""
    return exists().where(
        CallbackTask.case_id == Case.id,
        or_(CallbackTask.status == "dialing",
            and_(CallbackTask.status == "pending",
                 or_(CallbackTask.deadline_at.is_(None), CallbackTask.deadline_at > now))),
    )


async def default_cases(ctx: AppContext, now: dt.datetime) -> int:
    """Rule 2 for cases (issue 10): a closed case without a 差评 that was offered a 一事一评 call
    (it has a task) and has no 一事一评 rating once its window has passed gets the default
    基本满意 as its evaluation (assessNumber 2). Never while its call is pending or under way;
    a 差评 case is never defaulted (its 回访 is mandatory, rule 5). Exactly once: the rating's
    unique key (project_no, assess_number) lets only one process insert it."""
    bound = _earliest_possible_reference(ctx, now)
    done = 0
    async with ctx.db.sessions() as s:
        cases = (await s.scalars(
            select(Case)
            .where(
                Case.status == CaseStatus.CLOSED,
                Case.has_bad_rating.is_(False),
                Case.closed_at <= bound,
                exists().where(CallbackTask.case_id == Case.id),
                ~_case_call_open(now),
                ~exists().where(Rating.project_no == Case.case_number,
                                Rating.assess_number == CASE_ASSESS_NUMBER),
            )
            .order_by(Case.id)
            .limit(BATCH)
        )).all()
    for case in cases:
        if case.closed_at is None or window_end(ctx, as_utc(case.closed_at)) > now:
            continue
        try:
            async with ctx.db.transaction() as s:
                if await s.scalar(select(Rating.id).where(
                        Rating.project_no == case.case_number,
                        Rating.assess_number == CASE_ASSESS_NUMBER)):
                    continue  # rated meanwhile: the vote stands
                s.add(Rating(project_no=case.case_number, assess_number=CASE_ASSESS_NUMBER,
                             kind=RatingKind.PER_CASE, source=RatingSource.DEFAULT,
                             level=int(DEFAULT_LEVEL), case_id=case.id,
                             department_code=case.department_code, rated_at=now))
                await s.flush()  # another process's insert makes this one fail, not both
                rating = await s.scalar(select(Rating).where(
                    Rating.project_no == case.case_number,
                    Rating.assess_number == CASE_ASSESS_NUMBER))
                assert rating is not None
                await enqueue(s, rating, case_number=case.case_number)
            done += 1
        except IntegrityError:
            continue
    return done


async def run_once(ctx: AppContext, now: dt.datetime | None = None) -> PassReport:
    """One pass over all due calls (paged by id, so calls not yet due are never re-read)."""
    now = now or utcnow()
    report = PassReport(stale=await mark_stale(ctx, now))
    bound = _earliest_possible_reference(ctx, now)
    reference = func.coalesce(Call.ended_at, Call.survey_started_at, Call.started_at)
    held = ctx.survey_journal.held_linkedids()
    last_id = 0
    while True:
        async with ctx.db.sessions() as s:
            calls = (
                await s.scalars(
                    select(Call)
                    .where(Call.survey_status == SurveyStatus.NOT_RATED, reference <= bound,
                           Call.id > last_id)
                    .order_by(Call.id)
                    .limit(BATCH)
                )
            ).all()
        for call in calls:
            if call.linkedid in held:
                continue
            if window_end(ctx, reference_time(ctx, call)) <= now and await default_call(
                ctx, call.id, now
            ):
                report.defaulted += 1
        if len(calls) < BATCH:
            break
        last_id = calls[-1].id
    report.cases_defaulted = await default_cases(ctx, now)
    if report.stale or report.defaulted or report.cases_defaulted:
        log.info("default ratings", extra={"stale": report.stale, "defaulted": report.defaulted,
                                           "cases_defaulted": report.cases_defaulted})
    return report


async def run(ctx: AppContext, stopping: asyncio.Event) -> None:
    """The worker: a pass every ``default_rating_interval_seconds`` until the service stops."""
    interval = ctx.settings.default_rating_interval_seconds
    while not stopping.is_set():
        try:
            await run_once(ctx)
        except Exception:
            log.exception("default-rating pass failed; retrying next interval")
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval)
        except TimeoutError:
            pass
