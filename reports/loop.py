"""The 差评 loop counts (reports.figures, ``loop=True``) and the 差评 台账, read from the 差评
items of ``bad_ratings`` (issue 10; its tables are not changed here).

An item is counted in the period of the Beijing date it was opened, with its state at the
time the report is made; an item with several 整改 rounds counts once, by its latest round
(its 整改 is done when the latest round's is, its 回访 is the one after the latest 整改).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, and_, cast, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bad_ratings.machine import FINDING_LABELS as MACHINE_FINDING_LABELS
from bad_ratings.machine import LABELS, Action, Finding, State
from hotline.levels import Level
from reports.engine import Counts, Window, _n, grouped_counts
from storage.models import BadRatingEvent, BadRatingItem, Call, Rating

# The item states, findings and labels are bad_ratings.machine's (one place for each fact);
# the plain values are what the SQL compares with.
PENDING = State.PENDING.value
IN_REVIEW = State.IN_REVIEW.value
RECTIFYING = State.RECTIFYING.value
RECTIFIED = State.RECTIFIED.value
FOLLOWUP = State.FOLLOWUP.value
CLOSED = State.CLOSED.value
INVALID = State.INVALID.value
DONE_STATES = (RECTIFIED, FOLLOWUP, CLOSED)  # the latest round's 整改 is done
STANDING_STATES = (RECTIFYING, *DONE_STATES)  # the 差评 stands: it needs 整改
# 误评, 恶意: an answer without 整改
SET_ASIDE_FINDINGS = (Finding.MISTAKEN.value, Finding.MALICIOUS.value)
APPEAL_ACTION = Action.APPEAL.value

STATE_LABELS: dict[str, str] = {state.value: label for state, label in LABELS.items()}
FINDING_LABELS: dict[str, str] = {f.value: label for f, label in MACHINE_FINDING_LABELS.items()}

LOOP_COUNTS = (
    "items", "verified", "to_rectify", "rectified", "rectified_on_time", "replied", "overdue",
    "callback_due", "called_back", "callback_satisfied", "appeals", "review_changed",
)


def local_date(column: Any, dialect: str, tz: ZoneInfo, at: dt.datetime) -> Any:
    """The Beijing date of a stored UTC time, in SQL. SQLite has no time zones, so it shifts
    by the zone's offset at ``at`` (China has kept +08:00 since 1991)."""
    if dialect == "postgresql":
        return cast(func.timezone(tz.key, column), Date)
    offset = at.astimezone(tz).utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    return func.date(column, f"{minutes:+d} minutes")


def _group(grouping: str) -> Any:
    return {
        "department": BadRatingItem.department_code,
        "agent": BadRatingItem.agent_id,
        "queue": Call.queue,
    }.get(grouping)


async def loop_counts(
    session: AsyncSession, window: Window, grouping: str, *, tz: ZoneInfo, today: dt.date
) -> dict[str | None, Counts]:
    """The loop counts per group; ``today`` (local) decides what is overdue. The channel
    grouping has none (an item is not a channel's)."""
    if grouping == "channel":
        return {}
    item = BadRatingItem
    dialect = session.bind.dialect.name
    valid = item.state != INVALID
    done = and_(item.state.in_(DONE_STATES), item.rectified_at.is_not(None))
    done_on = local_date(item.rectified_at, dialect, tz, window.start)
    on_time = and_(done, or_(item.rectify_due.is_(None), done_on <= item.rectify_due))
    late = and_(done, item.rectify_due.is_not(None), done_on > item.rectify_due)
    open_late = and_(
        valid,
        not_(item.state.in_(DONE_STATES)),
        or_(
            and_(item.state == PENDING, item.verify_due < today),
            and_(item.state == RECTIFYING, item.rectify_due < today),
        ),
    )
    called = and_(done, item.followup_at.is_not(None), item.followup_at >= item.rectified_at)
    appeals = (
        select(func.count())
        .where(BadRatingEvent.item_id == item.id, BadRatingEvent.action == APPEAL_ACTION)
        .correlate(item)
        .scalar_subquery()
    )
    group = _group(grouping)
    query = select(
        *([group] if group is not None else []),
        _n(valid),
        _n(and_(valid, item.verified_at.is_not(None))),
        _n(item.state.in_(STANDING_STATES)),
        _n(done),
        _n(on_time),
        _n(and_(valid, or_(item.rectification_reply.is_not(None),
                           item.verification.in_(SET_ASIDE_FINDINGS)))),
        _n(or_(late, open_late)),
        _n(done),
        _n(called),
        # satisfied at the 回访 = not a 差评 level (Level.is_bad, in SQL)
        _n(and_(called, item.followup_level < int(Level.DISSATISFIED))),
        func.coalesce(func.sum(appeals), 0),
        _n(item.state == INVALID),
    ).where(item.opened_at >= window.start, item.opened_at < window.end)
    if grouping == "queue":
        query = query.outerjoin(Call, Call.id == item.call_id)
    if window.departments is not None:
        query = query.where(item.department_code.in_(window.departments))
    return await grouped_counts(session, query, group, LOOP_COUNTS)


@dataclass
class LedgerRow:
    """One line of the 差评 台账 (seed 001 "做好差评整改回访台账")."""

    item_id: int
    case_number: str | None
    department_code: str | None
    agent_id: str | None
    rated_at: dt.datetime
    level: int
    reason_codes: list[str]
    state: str
    round: int
    verification: str | None
    verified_at: dt.datetime | None
    rectify_due: dt.date | None
    rectification_reply: str | None
    rectified_at: dt.datetime | None
    followup_at: dt.datetime | None
    followup_solved: bool | None
    followup_level: int | None
    appeals: int
    overdue: bool

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)

    @property
    def verification_label(self) -> str:
        return FINDING_LABELS.get(self.verification or "", "")


async def ledger(
    session: AsyncSession, window: Window, *, tz: ZoneInfo, today: dt.date
) -> list[LedgerRow]:
    """Every item opened in the window, oldest first, with its first 差评's level and reasons."""
    item = BadRatingItem
    appeals = (
        select(func.count())
        .where(BadRatingEvent.item_id == item.id, BadRatingEvent.action == APPEAL_ACTION)
        .correlate(item)
        .scalar_subquery()
    )
    query = (
        select(item, Rating.rated_at, Rating.level, Rating.reason_codes, appeals)
        .join(Rating, Rating.id == item.first_rating_id)
        .where(item.opened_at >= window.start, item.opened_at < window.end)
        .order_by(item.opened_at, item.id)
    )
    if window.departments is not None:
        query = query.where(item.department_code.in_(window.departments))
    rows = []
    for it, rated_at, level, reasons, appeal_count in await session.execute(query):
        done = it.state in DONE_STATES and it.rectified_at is not None
        due = it.rectify_due
        if done and due is not None and it.rectified_at is not None:
            overdue = it.rectified_at.astimezone(tz).date() > due
        elif it.state == RECTIFYING and due is not None:
            overdue = due < today
        elif it.state == PENDING and it.verify_due is not None:
            overdue = it.verify_due < today
        else:
            overdue = False
        rows.append(LedgerRow(
            item_id=it.id,
            case_number=it.case_number,
            department_code=it.department_code,
            agent_id=it.agent_id,
            rated_at=rated_at,
            level=level,
            reason_codes=reasons.split(",") if reasons else [],
            state=it.state,
            round=it.round,
            verification=it.verification,
            verified_at=it.verified_at,
            rectify_due=due,
            rectification_reply=it.rectification_reply,
            rectified_at=it.rectified_at,
            followup_at=it.followup_at,
            followup_solved=it.followup_solved,
            followup_level=it.followup_level,
            appeals=int(appeal_count),
            overdue=overdue,
        ))
    return rows
