"""Case (工单) events from the hotline's work-order system: created, and closed (办结).

Closing a case that carries a 差评 creates its 回访 task in the standing campaign, due within
``callback_deadline_working_days`` working days of the closing (DOMAIN.md rules 4, 5). The
citizen's number is stored only protected (encrypted, keyed hash, mask: rule 8).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler import case_rating
from callback_scheduler.campaigns import standing_campaign
from callback_scheduler.lifecycle import TaskStatus
from callback_scheduler.tasks import new_task, rules_for
from callback_scheduler.windows import end_of_day, local_date
from hotline.privacy import ProtectedNumber
from service.context import AppContext
from storage.models import Call, CallbackTask, Case, CaseStatus, Rating

log = logging.getLogger("hotline.callback")


class CaseError(ValueError):
    """The event cannot be applied as sent (unknown call ...); 422 in the API."""


class CaseConflict(CaseError):
    """The case exists with different data; 409 in the API."""


class CaseNotFound(LookupError):
    pass


@dataclass(frozen=True)
class NewCase:
    case_number: str
    department_code: str | None = None
    department_name: str | None = None
    citizen_number: str | None = None  # never logged
    call_linkedid: str | None = None


@dataclass(frozen=True)
class Closed:
    case: Case
    task: CallbackTask | None
    already_closed: bool
    callback: str  # what happens about the 回访, for the caller


async def create_case(
    session: AsyncSession, ctx: AppContext, data: NewCase, now: dt.datetime
) -> tuple[Case, bool]:
    """The case, and whether it was created. Sending the same event again returns the
    existing case (the work-order system may retry); different data is a CaseConflict."""
    call = None
    if data.call_linkedid:
        call = await session.scalar(select(Call).where(Call.linkedid == data.call_linkedid))
        if call is None:
            raise CaseError("call_linkedid names no call known to the service")
    digest = ctx.vault.digest(data.citizen_number) if data.citizen_number else None
    existing = await session.scalar(select(Case).where(Case.case_number == data.case_number))
    if existing is not None:
        return _same_or_conflict(existing, data, digest, call), False
    protected = ctx.vault.protect(data.citizen_number) if data.citizen_number else None
    case = Case(
        case_number=data.case_number,
        department_code=data.department_code,
        department_name=data.department_name,
        citizen_enc=protected.encrypted if protected else None,
        citizen_hash=protected.digest if protected else None,
        citizen_masked=protected.masked if protected else None,
        call_id=call.id if call else None,
        status=CaseStatus.OPEN,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(case)
    except IntegrityError:  # created concurrently by a retry of the same event
        existing = await session.scalar(select(Case).where(Case.case_number == data.case_number))
        assert existing is not None
        return _same_or_conflict(existing, data, digest, call), False
    if call is not None:
        call.case_number = call.case_number or data.case_number
        call.department_code = call.department_code or data.department_code
    log.info("case created", extra={"case_number": data.case_number})
    return case, True


def _same_or_conflict(
    case: Case, data: NewCase, digest: str | None, call: Call | None
) -> Case:
    differs = [
        name
        for name, old, new in (
            ("department_code", case.department_code, data.department_code),
            ("department_name", case.department_name, data.department_name),
            ("citizen_number", case.citizen_hash, digest),
            ("call_linkedid", case.call_id, call.id if call else None),
        )
        if new is not None and old != new
    ]
    if differs:
        raise CaseConflict(f"case {case.case_number} exists with a different {', '.join(differs)}")
    return case


async def carries_bad_rating(session: AsyncSession, case: Case) -> bool:
    """A valid 差评 (不满意, 非常不满意) rating the case or one of its calls."""
    linked = [Rating.case_id == case.id,
              Rating.call_id.in_(select(Call.id).where(Call.case_number == case.case_number))]
    if case.call_id is not None:
        linked.append(Rating.call_id == case.call_id)
    return bool(await session.scalar(
        select(exists().where(and_(Rating.valid.is_(True), Rating.level >= 4, or_(*linked))))
    ))


async def get_case(session: AsyncSession, case_number: str, *, lock: bool = False) -> Case:
    stmt = select(Case).where(Case.case_number == case_number)
    if lock:
        stmt = stmt.with_for_update()
    case = await session.scalar(stmt)
    if case is None:
        raise CaseNotFound(f"no case {case_number}")
    return case


async def callback_task_of(session: AsyncSession, case: Case) -> CallbackTask | None:
    """The case's task in the standing 差评回访 campaign, if any."""
    campaign = await standing_campaign(session, case.updated_at)
    return await session.scalar(
        select(CallbackTask).where(CallbackTask.campaign_id == campaign.id,
                                   CallbackTask.case_id == case.id)
    )


async def close_case(
    session: AsyncSession,
    ctx: AppContext,
    case_number: str,
    *,
    rectification_result: str | None,
    bad_rating: bool | None,
    now: dt.datetime,
    closed_at: dt.datetime | None = None,
) -> Closed:
    """Close (办结) the case; for a 差评 schedule its 回访. Closing twice changes nothing.

    ``bad_rating`` lets the work-order system report a 差评 given elsewhere (web, app); the
    service's own ratings of the case and its calls count in any case."""
    case = await get_case(session, case_number, lock=True)
    if case.status == CaseStatus.CLOSED:
        task = await callback_task_of(session, case)
        return Closed(case, task, already_closed=True, callback="case was already closed")
    closed_at = closed_at or now
    bad = bool(bad_rating) or case.has_bad_rating or await carries_bad_rating(session, case)
    case.status = CaseStatus.CLOSED
    case.closed_at = closed_at
    case.rectification_result = rectification_result
    case.has_bad_rating = bad
    case.updated_at = now
    if not bad:
        # 一事一评 for every closed case in scope, not only 差评 ones (issue 10)
        rating_call = await case_rating.schedule(session, ctx, case, now)
        if rating_call is not None:
            return Closed(case, rating_call, already_closed=False,
                          callback="no 差评: 一事一评 call scheduled")
        return Closed(case, None, already_closed=False, callback="no 差评: no 回访 needed")
    case.rectification_due = case.rectification_due or ctx.rectification_due(closed_at)
    settings = ctx.settings
    case.callback_due = ctx.workdays.add_working_days(
        local_date(closed_at, settings.tz), settings.callback_deadline_working_days
    )
    if not case.citizen_enc:
        # not reachable by phone: a person must arrange the 回访 another way
        case.needs_attention = True
        log.warning("closed 差评 case has no citizen number", extra={"case_number": case_number})
        return Closed(case, None, already_closed=False,
                      callback="no citizen number: flagged for the supervisor")
    campaign = await standing_campaign(session, now)
    rules = rules_for(campaign, ctx)
    number = ProtectedNumber(case.citizen_enc, case.citizen_hash or "", case.citizen_masked or "")
    task = new_task(ctx, campaign, rules, number, now=now,
                    deadline=end_of_day(case.callback_due, settings.tz), case_id=case.id)
    session.add(task)
    await session.flush()
    log.info("回访 task created", extra={
        "case_number": case_number, "task_id": task.id, "task_status": task.status})
    note = ("回访 scheduled" if task.status == TaskStatus.PENDING
            else "no call window before the deadline: on the manual list")
    return Closed(case, task, already_closed=False, callback=note)
