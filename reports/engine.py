"""The aggregation engine: the counts of ``reports.figures.COUNTS`` per group, computed by the
database (SQL ``SUM(CASE …)`` grouped by the grouping column), never by loading rows.

Every query is bounded by a time range on an indexed column (``ratings.rated_at``,
``calls.started_at``; migration 0007 adds covering indexes so the common groupings read the
index alone on PostgreSQL), and written in SQLAlchemy Core that runs unchanged on SQLite and
PostgreSQL. The 差评 loop counts live in ``reports.loop``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.levels import Level
from storage.models import Call, Case, Rating, RatingKind, RatingSource, SurveyStatus

Grouping = Literal["total", "department", "agent", "queue", "channel"]
GROUPINGS: tuple[str, ...] = ("total", "department", "agent", "queue", "channel")

GROUPING_LABELS: dict[str, str] = {
    "total": "全部",
    "department": "部门",
    "agent": "坐席（工号）",
    "queue": "队列",
    "channel": "渠道",
}

CHANNEL_LABELS: dict[str, str] = {
    RatingSource.KEYPAD: "按键评价",
    RatingSource.CALLBACK: "回访",
    RatingSource.MANUAL: "人工",
    RatingSource.DEFAULT: "默认",
}

#: the counts that come from the calls table: they have no channel (a call is not a rating)
CALL_COUNTS = ("served", "handed")
RATING_COUNTS = (
    "rated", "per_call_rated", "per_call_real", "keypad", "keypad_bad", "defaults", "real",
    "good", "satisfied", "bad", "invalid",
)

Counts = dict[str, int | None]


@dataclass(frozen=True)
class Window:
    """What to count: the UTC range ``[start, end)`` and, for a department's own view, the
    departments it may see (None: all)."""

    start: dt.datetime
    end: dt.datetime
    departments: frozenset[str] | None = None


def _n(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _rating_group(grouping: str) -> Any:
    return {
        "department": Rating.department_code,
        "agent": Rating.agent_id,
        "queue": Call.queue,
        "channel": Rating.source,
    }.get(grouping)


def _call_group(grouping: str) -> Any:
    return {
        "department": Call.department_code,
        "agent": Call.agent_id,
        "queue": Call.queue,
    }.get(grouping)


async def grouped_counts(
    session: AsyncSession, query: Any, group: Any, names: tuple[str, ...]
) -> dict[str | None, Counts]:
    """Run ``query`` (its columns: ``group`` when not None, then one per name), grouped by
    ``group``: one ``Counts`` per group, or the one under ``None`` when ungrouped."""
    if group is not None:
        query = query.group_by(group)
    result: dict[str | None, Counts] = {}
    for row in await session.execute(query):
        key = row[0] if group is not None else None
        numbers = row[1:] if group is not None else row
        result[key] = {k: int(v) for k, v in zip(names, numbers, strict=True)}
    return result


async def rating_counts(
    session: AsyncSession, window: Window, grouping: str
) -> dict[str | None, Counts]:
    valid = Rating.valid.is_(True)
    real = and_(valid, Rating.source != RatingSource.DEFAULT)
    per_call = Rating.kind == RatingKind.PER_CALL
    keypad = and_(valid, Rating.source == RatingSource.KEYPAD)
    columns = [
        _n(valid),
        _n(and_(valid, per_call)),
        _n(and_(real, per_call)),
        _n(keypad),
        _n(and_(keypad, Rating.level >= int(Level.DISSATISFIED))),
        _n(and_(valid, Rating.source == RatingSource.DEFAULT)),
        _n(real),
        _n(and_(real, Rating.level <= int(Level.SATISFIED))),
        _n(and_(real, Rating.level <= int(Level.BASICALLY_SATISFIED))),
        _n(and_(real, Rating.level >= int(Level.DISSATISFIED))),
        _n(Rating.valid.is_(False)),
    ]
    group = _rating_group(grouping)
    query = select(*([group] if group is not None else []), *columns).where(
        Rating.rated_at >= window.start, Rating.rated_at < window.end
    )
    if grouping == "queue":
        query = query.outerjoin(Call, Call.id == Rating.call_id)
    if window.departments is not None:
        query = query.where(Rating.department_code.in_(window.departments))
    return await grouped_counts(session, query, group, RATING_COUNTS)


async def call_counts(
    session: AsyncSession, window: Window, grouping: str
) -> dict[str | None, Counts]:
    """服务量 and 转评价量; the channel grouping has none (a call is rated on one channel or
    several, or none)."""
    if grouping == "channel":
        return {}
    group = _call_group(grouping)
    query = select(
        *([group] if group is not None else []),
        func.count(),
        _n(Call.survey_started_at.is_not(None)),
    ).where(
        Call.started_at >= window.start,
        Call.started_at < window.end,
        Call.agent_id.is_not(None),
        Call.survey_status != SurveyStatus.ABANDONED,
    )
    if window.departments is not None:
        query = query.where(Call.department_code.in_(window.departments))
    return await grouped_counts(session, query, group, CALL_COUNTS)


def merge(*parts: tuple[tuple[str, ...], Mapping[str | None, Counts]]) -> dict[str | None, Counts]:
    """One ``Counts`` per group from several queries, each given as (the counts it makes, its
    result). A group a query found no rows for gets 0 for that query's counts; a count no
    query makes stays missing (``None`` figures: not applicable to the grouping)."""
    keys: set[str | None] = set()
    for _, found in parts:
        keys.update(found)
    merged: dict[str | None, Counts] = {}
    for key in keys:
        counts: Counts = {}
        for names, found in parts:
            row = found.get(key)
            for name in names:
                counts[name] = row[name] if row is not None else 0
        merged[key] = counts
    return merged


async def reason_counts(
    session: AsyncSession, window: Window
) -> dict[str | None, dict[str, int]]:
    """What the 差评 are about: per department, each ``evalDetail`` reason code and how many
    real 差评 gave it (a 差评 with two reasons counts for both). The database groups by the
    stored code list; splitting the few distinct lists is left to Python."""
    real_bad = and_(
        Rating.valid.is_(True),
        Rating.source != RatingSource.DEFAULT,
        Rating.level >= int(Level.DISSATISFIED),
    )
    query = (
        select(Rating.department_code, Rating.reason_codes, func.count())
        .where(Rating.rated_at >= window.start, Rating.rated_at < window.end, real_bad)
        .group_by(Rating.department_code, Rating.reason_codes)
    )
    if window.departments is not None:
        query = query.where(Rating.department_code.in_(window.departments))
    found: dict[str | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for department, codes, count in await session.execute(query):
        for code in (codes or "").split(",") if codes else ["(未填)"]:
            found[department][code.strip()] += int(count)
    return {k: dict(v) for k, v in found.items()}


async def department_names(session: AsyncSession, codes: Iterable[str | None]) -> dict[str, str]:
    """The names the 工单 system gave the departments (on their cases)."""
    wanted = sorted({c for c in codes if c})
    if not wanted:
        return {}
    query = (
        select(Case.department_code, func.max(Case.department_name))
        .where(Case.department_code.in_(wanted), Case.department_name.is_not(None))
        .group_by(Case.department_code)
    )
    return {code: name for code, name in await session.execute(query) if name}
