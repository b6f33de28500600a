"""The 工单 system's changes to a case that touch its 差评 item (issue 10 ``workorder`` role):
updating the case's department reassigns its open item; reopening a closed case cancels its
pending 回访. Both are audited."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bad_ratings import machine, store
from bad_ratings.deadlines import Policy
from bad_ratings.machine import Action, Command
from bad_ratings.service import Actor
from storage.audit import record_audit
from storage.models import BadRatingItem, CallbackTask, Case, CaseStatus


class CaseNotFound(LookupError):
    pass


class CaseNotClosed(ValueError):
    pass


async def _case(session: AsyncSession, case_number: str) -> Case:
    case = await session.scalar(
        select(Case).where(Case.case_number == case_number).with_for_update()
    )
    if case is None:
        raise CaseNotFound(f"no case {case_number!r}")
    return case


async def _open_items(session: AsyncSession, case: Case) -> list[BadRatingItem]:
    links = [BadRatingItem.case_id == case.id]
    if case.call_id is not None:
        links.append(BadRatingItem.call_id == case.call_id)
    rows = await session.scalars(select(BadRatingItem).where(or_(*links)).with_for_update())
    return [r for r in rows if store.is_open(r)]


async def update_case(
    session: AsyncSession, actor: Actor, case_number: str, *, department_code: str | None,
    department_name: str | None, policy: Policy, now: dt.datetime,
) -> Case:
    case = await _case(session, case_number)
    before = {"department_code": case.department_code, "department_name": case.department_name}
    if department_code is not None:
        case.department_code = department_code
    if department_name is not None:
        case.department_name = department_name
    after = {"department_code": case.department_code, "department_name": case.department_name}
    if after == before:
        return case
    await record_audit(session, actor=actor.name, role=actor.role, action="case.update",
                       subject_type="case", subject_id=case.case_number, at=now,
                       details={"before": before, "after": after})
    if department_code is not None:
        for row in await _open_items(session, case):
            if row.department_code == department_code:
                continue
            cmd = Command(Action.ASSIGN, actor.role, department_code=department_code,
                          note=f"case {case.case_number} reassigned")
            decision = machine.decide(store.as_machine_item(row), cmd, now, policy)
            await store.apply(session, row, decision, cmd, actor=actor.name, now=now)
    return case


async def reopen_case(
    session: AsyncSession, actor: Actor, case_number: str, *, reason: str, now: dt.datetime,
) -> Case:
    case = await _case(session, case_number)
    if case.status != CaseStatus.CLOSED:
        raise CaseNotClosed(f"case {case_number!r} is not closed")
    case.status = CaseStatus.OPEN
    case.closed_at = None
    # the 回访 was for the closed case; it is asked again when the case closes again
    cancelled = 0
    for task in await session.scalars(
        select(CallbackTask).where(CallbackTask.case_id == case.id,
                                   CallbackTask.status == "pending")
    ):
        task.status = "cancelled"
        task.outcome = "cancelled"
        cancelled += 1
    await record_audit(session, actor=actor.name, role=actor.role, action="case.reopen",
                       subject_type="case", subject_id=case.case_number, at=now,
                       details={"reason": reason, "callbacks_cancelled": cancelled})
    return case
