"""The database adapter of 差评 items: load an item for the machine, apply a decision (fields,
timeline row, audit row, webhook events) in the caller's transaction, list and filter."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bad_ratings import machine, upstream, webhooks
from bad_ratings.deadlines import DueStatus, Policy
from bad_ratings.machine import OPEN_STATES, Command, Decision, State
from storage.audit import record_audit
from storage.models import BadRatingEvent, BadRatingItem, CallbackTask, Case, Rating
from storage.ratings import enqueue

SUBJECT = "bad_rating"


def as_machine_item(row: BadRatingItem) -> machine.Item:
    return machine.Item(
        state=State(row.state),
        round=row.round,
        department_code=row.department_code,
        opened_at=row.opened_at,
        verify_due=row.verify_due,
        rectify_due=row.rectify_due,
        extension_status=row.extension_status,
        extension_due=row.extension_due,
        review_origin=row.review_origin,
        review_return_state=State(row.review_return_state) if row.review_return_state else None,
    )


def running_due(row: BadRatingItem) -> dt.date | None:
    """The deadline the item is working against now (核实 or 整改); None when none runs."""
    if row.state == State.PENDING:
        return row.verify_due
    if row.state == State.RECTIFYING:
        return row.rectify_due
    return None


def due_status(row: BadRatingItem, policy: Policy, now: dt.datetime) -> DueStatus | None:
    return policy.due_status(running_due(row), now)


async def get_item(
    session: AsyncSession, item_id: int, *, lock: bool = False
) -> BadRatingItem | None:
    return await session.get(BadRatingItem, item_id, with_for_update=lock)


async def timeline(session: AsyncSession, item_id: int) -> list[BadRatingEvent]:
    return list(await session.scalars(
        select(BadRatingEvent).where(BadRatingEvent.item_id == item_id).order_by(BadRatingEvent.id)
    ))


async def apply(
    session: AsyncSession,
    row: BadRatingItem,
    decision: Decision,
    cmd: Command,
    *,
    actor: str,
    now: dt.datetime,
    rating_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> BadRatingEvent:
    """Write ``decision`` onto ``row`` with its timeline row, audit row, webhook events and,
    where the profile wants them, its 整改 / 反馈 record for the province."""
    before = row.state
    round_before = row.round  # a 反馈 that starts a new round belongs to the one it ends
    for name, value in decision.changes.items():
        setattr(row, name, value)
    row.state = decision.to_state.value
    if cmd.action == machine.Action.SUPERVISE:
        row.supervised_by = actor
        row.supervise_count = (row.supervise_count or 0) + 1
    details = {k: v for k, v in _jsonable(decision.changes).items() if v is not None}
    details.update(data or {})
    event = BadRatingEvent(
        item_id=row.id, round=row.round, at=now, actor=actor, role=cmd.role,
        action=cmd.action.value, from_state=before, to_state=row.state, rating_id=rating_id,
        note=cmd.note, data=details,
    )
    session.add(event)
    await session.flush()
    await record_audit(
        session, actor=actor, role=cmd.role, action=f"bad_rating.{cmd.action.value}",
        subject_type=SUBJECT, subject_id=row.id, at=now,
        details={"from": before, "to": row.state, "round": row.round, "note": cmd.note,
                 **details},
    )
    for name in decision.events:
        await webhooks.emit(session, name, f"{name}:{row.id}:{row.round}:{event.id}",
                            item_payload(row, now, actor=actor), subject_id=row.id, now=now)
    if decision.invalidate_rating:
        await invalidate_ratings(session, row, reason=cmd.note or "", by=actor, now=now)
    if decision.cancel_followup:
        await cancel_followups(session, row)
    await upstream.queue(session, row, cmd.action, round_=round_before)
    return event


async def invalidate_ratings(
    session: AsyncSession, row: BadRatingItem, *, reason: str, by: str, now: dt.datetime
) -> None:
    """复核 found the 差评 invalid: every 差评 of this round is marked invalid (kept for audit,
    out of the statistics) and the invalidation goes upstream as its own record (rule 6)."""
    ids = {row.latest_rating_id, row.first_rating_id} | {
        e.rating_id for e in await timeline(session, row.id)
        if e.rating_id is not None and e.round == row.round
    }
    for rating in await session.scalars(select(Rating).where(Rating.id.in_(ids))):
        if not rating.valid or rating.level < 4:
            continue
        rating.valid = False
        rating.invalid_reason = reason
        rating.reviewed_by = by
        rating.reviewed_at = now
        await session.flush()
        await enqueue(session, rating, case_number=row.case_number, event="invalidation")


async def cancel_followups(session: AsyncSession, row: BadRatingItem) -> None:
    """The pending 回访 of the item's case is no longer wanted (invalid, returned, reopened).
    A per-call item reaches the case the 工单 system opened from that call later."""
    case_ids = {row.case_id} if row.case_id is not None else set()
    if row.call_id is not None:
        case_ids |= set(await session.scalars(select(Case.id).where(Case.call_id == row.call_id)))
    if not case_ids:
        return
    await session.execute(
        update(CallbackTask)
        .where(CallbackTask.case_id.in_(case_ids), CallbackTask.status == "pending")
        .values(status="cancelled", outcome="cancelled")
    )


def item_payload(
    row: BadRatingItem, now: dt.datetime, *, actor: str | None = None
) -> dict[str, Any]:
    """What a webhook says about an item: never the citizen's number (rule 8)."""
    return {
        "item_id": row.id, "round": row.round, "state": row.state,
        "department_code": row.department_code, "case_number": row.case_number,
        "project_no": row.project_no, "agent_id": row.agent_id,
        "verify_due": _iso(row.verify_due), "rectify_due": _iso(row.rectify_due),
        "actor": actor, "at": now.isoformat(),
    }


@dataclass(frozen=True)
class Filters:
    state: str | None = None
    department: str | None = None
    overdue: bool | None = None
    due_soon: bool | None = None  # 即将超期: running deadline today or within due_soon_days
    due_before: dt.date | None = None
    agent: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    unassigned: bool | None = None


def list_query(filters: Filters, policy: Policy, now: dt.datetime) -> Select[tuple[BadRatingItem]]:
    q = select(BadRatingItem)
    if filters.state:
        q = q.where(BadRatingItem.state == filters.state)
    if filters.department:
        q = q.where(BadRatingItem.department_code == filters.department)
    if filters.unassigned:
        q = q.where(BadRatingItem.department_code.is_(None))
    if filters.agent:
        q = q.where(BadRatingItem.agent_id == filters.agent)
    if filters.since:
        q = q.where(BadRatingItem.opened_at >= filters.since)
    if filters.until:
        q = q.where(BadRatingItem.opened_at < filters.until)
    verifying = (BadRatingItem.state == State.PENDING.value)
    rectifying = (BadRatingItem.state == State.RECTIFYING.value)
    if filters.due_before:
        q = q.where(or_(verifying & (BadRatingItem.verify_due < filters.due_before),
                        rectifying & (BadRatingItem.rectify_due < filters.due_before)))
    if filters.overdue is not None:
        today = policy.local_date(now)
        late = or_(verifying & (BadRatingItem.verify_due < today),
                   rectifying & (BadRatingItem.rectify_due < today))
        q = q.where(late if filters.overdue else ~late)
    if filters.due_soon is not None:
        today = policy.local_date(now)
        limit = policy.due_soon_limit(today)
        soon = or_(verifying & BadRatingItem.verify_due.between(today, limit),
                   rectifying & BadRatingItem.rectify_due.between(today, limit))
        q = q.where(soon if filters.due_soon else ~soon)
    return q


async def open_items_due(session: AsyncSession) -> list[BadRatingItem]:
    """Items with a running deadline (the watcher computes 即将超期 / 超期 on these)."""
    return list(await session.scalars(
        select(BadRatingItem).where(
            BadRatingItem.state.in_([State.PENDING.value, State.RECTIFYING.value])
        ).order_by(BadRatingItem.id)
    ))


def is_open(row: BadRatingItem) -> bool:
    return State(row.state) in OPEN_STATES


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        out[key] = value.isoformat() if isinstance(value, dt.date | dt.datetime) else value
    return out
