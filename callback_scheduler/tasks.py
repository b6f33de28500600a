"""Tasks in the database: creating them, ending attempts, housekeeping, the manual list.

Functions work inside the caller's transaction (``async with ctx.db.transaction() as s``);
rows they change are locked first (``FOR UPDATE``; SQLite serialises writers anyway).
"""

from __future__ import annotations

import datetime as dt
import logging

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler.attempt import IVR_OUTCOMES
from callback_scheduler.lifecycle import (
    ACTIVE_ATTEMPT_STATUSES,
    OPEN_TASK_STATUSES,
    AttemptStatus,
    CampaignStatus,
    TaskPlan,
    TaskStatus,
    Unreachable,
    plan_after_attempt,
    plan_next,
)
from callback_scheduler.results import Answer, store_answer
from callback_scheduler.rules import CampaignRules, Outcome, resolve
from callback_scheduler.tables import SYSTEM_PREFIX
from hotline.privacy import ProtectedNumber
from service.context import AppContext
from storage.audit import record_audit
from storage.models import CallbackAttempt, CallbackTask, Campaign, Case, RatingSource

log = logging.getLogger("hotline.callback")

#: outcomes of a manual call recorded by a supervisor (``CallbackTask.outcome``)
MANUAL_REACHED = "manual_reached"
MANUAL_NOT_REACHED = "manual_not_reached"


def rules_for(campaign: Campaign, ctx: AppContext) -> CampaignRules:
    return resolve(campaign.rules, ctx.settings)


def is_system(campaign: Campaign) -> bool:
    return (campaign.created_by or "").startswith(SYSTEM_PREFIX)


def new_task(
    ctx: AppContext,
    campaign: Campaign,
    rules: CampaignRules,
    number: ProtectedNumber,
    *,
    now: dt.datetime,
    deadline: dt.datetime | None,
    case_id: int | None = None,
    call_id: int | None = None,
) -> CallbackTask:
    """A task due at the first call window from ``now`` — or straight on the manual list if
    no window is left before its deadline (never silently dropped, DOMAIN.md rule 5)."""
    plan = plan_next(
        now, deadline=deadline, rules=rules, workdays=ctx.workdays, tz=ctx.settings.tz
    )
    return CallbackTask(
        campaign_id=campaign.id,
        case_id=case_id,
        call_id=call_id,
        number_enc=number.encrypted,
        number_hash=number.digest,
        number_masked=number.masked,
        status=plan.status.value,
        priority=campaign.priority,
        attempts_made=0,
        max_attempts=rules.max_attempts,
        next_attempt_at=plan.next_attempt_at,
        deadline_at=deadline,
        outcome=plan.outcome,
        created_at=now,
        updated_at=now,
    )


def apply_plan(task: CallbackTask, plan: TaskPlan, now: dt.datetime) -> None:
    task.status = plan.status.value
    task.next_attempt_at = plan.next_attempt_at
    if plan.outcome is not None or plan.status is TaskStatus.PENDING:
        task.outcome = plan.outcome
    task.updated_at = now
    if plan.status is TaskStatus.UNREACHABLE:
        log.info("callback task unreachable: on the manual list",
                 extra={"task_id": task.id, "why": plan.outcome})


async def finish_attempt(
    session: AsyncSession,
    ctx: AppContext,
    attempt_id: int,
    outcome: Outcome,
    *,
    now: dt.datetime,
    reason: int | None = None,
    cause: int | None = None,
) -> Outcome | None:
    """Record how an attempt ended and decide its task's next step. Idempotent: an attempt
    already ended is left alone (returns None). An IVR result stored during the call wins
    over "answered, no rating" (the AMI Hangup may be seen before the IVR's write)."""
    attempt = await session.get(CallbackAttempt, attempt_id, with_for_update=True)
    if attempt is None or attempt.status == AttemptStatus.ENDED:
        return None
    ivr = attempt.outcome  # set by the IVR while the call was under way, if at all
    if ivr in {o.value for o in IVR_OUTCOMES}:
        # the IVR ran, so the citizen answered, whatever AMI let us see (events lost in a
        # disconnect, a Hangup read before the IVR's write)
        outcome = Outcome(ivr)
    attempt.status = AttemptStatus.ENDED.value
    attempt.reason = reason if reason is not None else attempt.reason
    attempt.hangup_cause = cause if cause is not None else attempt.hangup_cause
    attempt.ended_at = now
    attempt.updated_at = now
    attempt.outcome = outcome.value
    task = await session.get(CallbackTask, attempt.task_id, with_for_update=True)
    assert task is not None
    if outcome is Outcome.SKIPPED:
        task.attempts_made = max(0, task.attempts_made - 1)  # nobody was called
    if task.status != TaskStatus.DIALING:
        # already decided elsewhere (manual result, IVR result after a retry was planned)
        return outcome
    campaign = await session.get(Campaign, task.campaign_id)
    assert campaign is not None
    plan = plan_after_attempt(
        outcome,
        attempts_made=task.attempts_made,
        max_attempts=task.max_attempts,
        now=now,
        deadline=task.deadline_at,
        rules=rules_for(campaign, ctx),
        workdays=ctx.workdays,
        tz=ctx.settings.tz,
    )
    if plan.status is TaskStatus.PENDING and campaign.status == CampaignStatus.CANCELLED:
        plan = TaskPlan(TaskStatus.CANCELLED)
    elif plan.status is TaskStatus.PENDING and campaign.status == CampaignStatus.FINISHED:
        plan = TaskPlan(TaskStatus.UNREACHABLE, outcome=Unreachable.CAMPAIGN_ENDED.value)
    apply_plan(task, plan, now)
    if outcome is not Outcome.SKIPPED:
        task.outcome = plan.outcome or outcome.value
    log.info("callback attempt ended", extra={
        "attempt_id": attempt_id, "task_id": task.id, "outcome": outcome.value,
        "task_status": task.status,
    })
    return outcome


async def set_attempt_status(ctx: AppContext, attempt_id: int, status: AttemptStatus) -> None:
    """Where a call under way stands (answered / lost), for whoever reconciles it later."""
    async with ctx.db.transaction() as session:
        await session.execute(
            update(CallbackAttempt)
            .where(CallbackAttempt.id == attempt_id,
                   CallbackAttempt.status != AttemptStatus.ENDED)
            .values(status=status.value)
        )


async def record_ivr_result(
    session: AsyncSession,
    ctx: AppContext,
    attempt_id: int,
    answer: Answer | None,
    outcome: Outcome,
    *,
    now: dt.datetime,
    hold_until: dt.datetime | None = None,
) -> CallbackTask:
    """The follow-up IVR's result for a call under way (or just ended): store the rating
    (when there is one) and mark the task reached. Safe to call after ``finish_attempt``."""
    if outcome not in IVR_OUTCOMES:
        raise ValueError(f"the IVR cannot report {outcome}")
    attempt = await session.get(CallbackAttempt, attempt_id, with_for_update=True)
    if attempt is None:
        raise LookupError(f"no callback attempt {attempt_id}")
    task = await session.get(CallbackTask, attempt.task_id, with_for_update=True)
    assert task is not None
    if answer is not None:
        await store_answer(session, task, answer, source=RatingSource.CALLBACK, now=now,
                           hold_until=hold_until, rectification_due=ctx.rectification_due(now))
    current = attempt.outcome
    if current != Outcome.RATED.value:  # "rated" beats "do_not_call" once a rating exists
        attempt.outcome = outcome.value
    if task.status not in (TaskStatus.MANUAL_DONE, TaskStatus.CANCELLED) and (
        attempt.status == AttemptStatus.ENDED or task.status != TaskStatus.DIALING
    ):
        # the Hangup was handled first and planned a retry: the citizen was reached after all
        task.status = TaskStatus.COMPLETED.value
        task.next_attempt_at = None
        task.outcome = outcome.value if current != Outcome.RATED.value else current
    task.updated_at = now
    return task


# ------------------------------------------------------------------------ housekeeping
async def expire_deadlines(session: AsyncSession, now: dt.datetime) -> int:
    """Pending tasks past their deadline go to the manual list."""
    result = await session.execute(
        update(CallbackTask)
        .where(
            CallbackTask.status == TaskStatus.PENDING,
            CallbackTask.deadline_at.is_not(None),
            CallbackTask.deadline_at <= now,
        )
        .values(status=TaskStatus.UNREACHABLE.value, outcome=Unreachable.DEADLINE.value,
                next_attempt_at=None, updated_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def orphaned_attempts(
    session: AsyncSession, ctx: AppContext, now: dt.datetime
) -> list[CallbackAttempt]:
    """Attempts still active long after any call could have ended: their scheduler died.
    The caller reconciles them (AMI, when it has one) and ends them."""
    s = ctx.settings
    limit = now - dt.timedelta(
        seconds=s.callback_ring_seconds + s.callback_response_grace_seconds
        + s.callback_max_call_seconds
    )
    rows = await session.scalars(
        select(CallbackAttempt)
        .where(CallbackAttempt.status.in_([a.value for a in ACTIVE_ATTEMPT_STATUSES]),
               CallbackAttempt.started_at < limit)
        .order_by(CallbackAttempt.id)
    )
    return list(rows)


async def finish_campaigns(session: AsyncSession, ctx: AppContext, now: dt.datetime) -> int:
    """A campaign past its end date finishes (open tasks to the manual list); one whose tasks
    are all decided finishes too. The standing 差评回访 campaign never finishes."""
    campaigns = await session.scalars(
        select(Campaign).where(
            Campaign.status.in_([CampaignStatus.RUNNING.value, CampaignStatus.PAUSED.value])
        ).with_for_update()
    )
    today = now.astimezone(ctx.settings.tz).date()
    done = 0
    for campaign in campaigns:
        if is_system(campaign):
            continue
        rules = rules_for(campaign, ctx)
        past_end = rules.end_date is not None and today > rules.end_date
        open_tasks = await session.scalar(
            select(func.count()).select_from(CallbackTask).where(
                CallbackTask.campaign_id == campaign.id,
                CallbackTask.status.in_([t.value for t in OPEN_TASK_STATUSES]),
            )
        )
        any_tasks = await session.scalar(
            select(func.count()).select_from(CallbackTask)
            .where(CallbackTask.campaign_id == campaign.id)
        )
        all_decided = campaign.status == CampaignStatus.RUNNING and any_tasks and not open_tasks
        if not (past_end or all_decided):
            continue
        dialing = await session.scalar(
            select(func.count()).select_from(CallbackTask).where(
                CallbackTask.campaign_id == campaign.id,
                CallbackTask.status == TaskStatus.DIALING,
            )
        )
        if dialing:
            continue  # let the calls under way end first
        await session.execute(
            update(CallbackTask)
            .where(CallbackTask.campaign_id == campaign.id,
                   CallbackTask.status == TaskStatus.PENDING)
            .values(status=TaskStatus.UNREACHABLE.value,
                    outcome=Unreachable.CAMPAIGN_ENDED.value, next_attempt_at=None,
                    updated_at=now)
        )
        campaign.status = CampaignStatus.FINISHED.value
        campaign.updated_at = now
        done += 1
        log.info("campaign finished", extra={"campaign_id": campaign.id})
    return done


# ------------------------------------------------------------------ the manual list
class ManualItem(BaseModel):
    """A task a person must follow up; also the API's response item."""

    model_config = ConfigDict(frozen=True)

    task_id: int
    campaign_id: int | None
    campaign_name: str
    case_number: str | None
    department_name: str | None
    number_masked: str
    attempts_made: int
    why: str | None
    last_outcome: str | None
    deadline_at: dt.datetime | None


async def manual_list(
    session: AsyncSession, *, campaign_id: int | None = None, limit: int = 1000
) -> list[ManualItem]:
    """Tasks a person must follow up (status unreachable), oldest deadline first. Numbers are
    masked; a supervisor reveals one number at a time (:func:`reveal_number`)."""
    last_outcome = (
        select(CallbackAttempt.outcome)
        .where(CallbackAttempt.task_id == CallbackTask.id,
               CallbackAttempt.status == AttemptStatus.ENDED)
        .order_by(CallbackAttempt.attempt_no.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = (
        select(CallbackTask, Campaign.name, Case.case_number, Case.department_name, last_outcome)
        .join(Campaign, Campaign.id == CallbackTask.campaign_id)
        .outerjoin(Case, Case.id == CallbackTask.case_id)
        .where(CallbackTask.status == TaskStatus.UNREACHABLE)
        .order_by(CallbackTask.deadline_at.is_(None), CallbackTask.deadline_at, CallbackTask.id)
        .limit(limit)
    )
    if campaign_id is not None:
        stmt = stmt.where(CallbackTask.campaign_id == campaign_id)
    rows = await session.execute(stmt)
    return [
        ManualItem(
            task_id=task.id, campaign_id=task.campaign_id, campaign_name=name,
            case_number=case_number, department_name=dept, number_masked=task.number_masked,
            attempts_made=task.attempts_made, why=task.outcome, last_outcome=last,
            deadline_at=task.deadline_at,
        )
        for task, name, case_number, dept, last in rows
    ]


class TaskNotFound(LookupError):
    """No callback task with this id."""


class ManualError(ValueError):
    """A manual result that cannot be recorded (task under way, already done ...)."""


async def record_manual(
    session: AsyncSession,
    ctx: AppContext,
    task_id: int,
    *,
    reached: bool,
    answer: Answer | None,
    note: str | None,
    by: str,
    now: dt.datetime,
) -> CallbackTask:
    """A supervisor's manual call: counts toward 回访率 when the citizen was reached."""
    task = await session.get(CallbackTask, task_id, with_for_update=True)
    if task is None:
        raise TaskNotFound(f"no callback task {task_id}")
    if task.status == TaskStatus.DIALING:
        raise ManualError("a call to this citizen is under way; record the result after it")
    if task.status not in (TaskStatus.PENDING, TaskStatus.UNREACHABLE):
        raise ManualError(f"the task is already {task.status}")
    if answer is not None and not reached:
        raise ManualError("a rating needs the citizen to have been reached")
    if answer is not None:
        await store_answer(session, task, answer, source=RatingSource.MANUAL, now=now,
                           rectification_due=ctx.rectification_due(now))
    task.status = TaskStatus.MANUAL_DONE.value
    task.outcome = MANUAL_REACHED if reached else MANUAL_NOT_REACHED
    task.next_attempt_at = None
    note_text = (note or "").strip()
    task.manual_note = f"[{by}] {note_text}".strip() if note_text or by else None
    task.updated_at = now
    await record_audit(session, actor=by, role="supervisor", action="callback.manual_result",
                       subject_type="callback_task", subject_id=task.id, at=now, details={
                           "reached": reached, "level": int(answer.level) if answer else None,
                           "resolved": answer.resolved if answer else None,
                           "rating_id": task.result_rating_id, "note": note_text or None})
    log.info("manual callback result recorded",
             extra={"task_id": task.id, "reached": reached, "by": by})
    return task


async def reveal_number(
    session: AsyncSession, ctx: AppContext, task_id: int, by: str, *, reason: str,
    role: str = "supervisor",
) -> str:
    """The clear number for a manual call (DOMAIN.md rule 8: shown only where needed, and
    each showing is logged and audited with its reason — without the number; issue 10)."""
    if not reason or not reason.strip():
        raise ValueError("a reason is required to reveal a number")
    task = await session.get(CallbackTask, task_id)
    if task is None:
        raise TaskNotFound(f"no callback task {task_id}")
    await record_audit(session, actor=by, role=role, action="number.reveal",
                       subject_type="callback_task", subject_id=task_id,
                       details={"reason": reason.strip(), "masked": task.number_masked})
    log.info("callback number revealed for a manual call", extra={"task_id": task_id, "by": by})
    return ctx.vault.reveal(task.number_enc)

