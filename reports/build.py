"""Assembling a report: the figures of one period and grouping, the department ranking with its
表扬/通报 flags, agent scores, the participation funnel, the 差评 reasons, the trend and the
台账. The one service function the CLI, the HTTP API and the scheduled documents share.

A department's own view (``Scope.departments``) holds only its own rows and its own rank: the
ranking is still computed over every department (a rank means nothing otherwise), but the
other departments' figures, names and flags are left out, and so are the totals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import utcnow
from hotline.settings import Settings
from reports import engine, loop
from reports.engine import Counts, Window
from reports.figures import BY_KEY, values
from reports.funnel import Funnel, funnel
from reports.periods import Period
from reports.ranking import Ranked, apply_flags, consecutive_bottom, rank
from reports.scores import AgentScore, score_agents

#: what a report may hold beyond its rows; the CLI table asks for little, documents for all
PARTS = frozenset({"ranking", "agents", "funnel", "reasons", "trend", "ledger"})


class ReportError(ValueError):
    """A report cannot be made as asked (a bad setting, an unknown figure); says why."""


@dataclass(frozen=True)
class Scope:
    """Whose figures: None = every department (supervisors); a department token's codes."""

    departments: frozenset[str] | None = None

    @property
    def limited(self) -> bool:
        return self.departments is not None


#: every department: what supervisors see
ALL = Scope()


@dataclass
class Row:
    key: str | None
    name: str
    counts: Counts
    values: dict[str, float | int | None]


@dataclass
class Reason:
    code: str
    label: str
    count: int


@dataclass
class Report:
    period: Period
    grouping: str
    generated_at: dt.datetime
    issuing_unit: str
    scope: Scope
    rows: list[Row]
    total: Row | None  # None in a department's own view
    ranking: list[Ranked] = field(default_factory=list)
    ranked_count: int = 0  # departments ranked (a department sees "rank n of m")
    department_names: dict[str, str] = field(default_factory=dict)
    reasons: dict[str | None, list[Reason]] = field(default_factory=dict)
    agents: list[AgentScore] = field(default_factory=list)
    funnel: Funnel | None = None
    trend: list[tuple[Period, dict[str, float | int | None]]] = field(default_factory=list)
    ledger: list[loop.LedgerRow] = field(default_factory=list)

    def name_of(self, code: str | None) -> str:
        if code is None:
            return "（未分配）"
        return self.department_names.get(code, code)


def check_settings(settings: Settings) -> None:
    unknown = [k for k in settings.report_ranking_order if k not in BY_KEY]
    if unknown or not settings.report_ranking_order:
        raise ReportError(
            f"setting report_ranking_order: unknown figure(s) {unknown}; known: "
            + ", ".join(BY_KEY)
        )


async def counts_by(
    session: AsyncSession, settings: Settings, window: Window, grouping: str, today: dt.date
) -> dict[str | None, Counts]:
    """Every count of every group: ratings, calls and 差评 items, merged."""
    ratings = await engine.rating_counts(session, window, grouping)
    parts: list[tuple[tuple[str, ...], Mapping[str | None, Counts]]] = [
        (engine.RATING_COUNTS, ratings)
    ]
    if grouping != "channel":
        parts.append((engine.CALL_COUNTS, await engine.call_counts(session, window, grouping)))
        found = await loop.loop_counts(session, window, grouping, tz=settings.tz, today=today)
        parts.append((loop.LOOP_COUNTS, found))
    # (without a grouping, each query answers one row even when it counts nothing)
    return engine.merge(*parts)


def _window(period: Period, settings: Settings, departments: frozenset[str] | None) -> Window:
    start, end = period.bounds(settings.tz)
    return Window(start, end, departments)


async def _ranking(
    session: AsyncSession, settings: Settings, period: Period, today: dt.date,
    current: Mapping[str | None, Counts] | None,
) -> list[Ranked]:
    """This period's ranking, the bottom of each earlier period it needs for the 通报 flag."""
    options = {
        "order": settings.report_ranking_order,
        "min_votes": settings.report_department_min_votes,
        "praise_count": settings.report_praise_count,
        "bottom_count": settings.report_bottom_count,
    }
    history: list[set[str]] = []
    ranked: list[Ranked] = []
    for p in period.history(settings.report_bottom_consecutive_periods):
        if p == period and current is not None:
            counts = current
        else:
            counts = await counts_by(session, settings, _window(p, settings, None),
                                     "department", today)
        rows = {k: values(c) for k, c in counts.items() if k is not None}
        ranked = rank(rows, **options)
        history.append({r.key for r in ranked if r.bottom})
    apply_flags(ranked, consecutive_bottom(history, settings.report_bottom_consecutive_periods))
    return ranked


def _reason_labels(settings: Settings) -> dict[str, str]:
    return {r.code: r.label for r in settings.survey_reasons}


async def build_report(
    session: AsyncSession,
    settings: Settings,
    period: Period,
    grouping: str = "department",
    *,
    scope: Scope = ALL,
    parts: Iterable[str] = PARTS,
    part_scores: Mapping[str, Mapping[str, float]] | None = None,
    now: dt.datetime | None = None,
) -> Report:
    check_settings(settings)
    if grouping not in engine.GROUPINGS:
        raise ReportError(f"unknown grouping {grouping!r}; one of {', '.join(engine.GROUPINGS)}")
    wanted = set(parts)
    if unknown := wanted - PARTS:
        raise ReportError(f"unknown report part(s) {sorted(unknown)}")
    now = now or utcnow()
    today = now.astimezone(settings.tz).date()
    window = _window(period, settings, scope.departments)

    counts = await counts_by(session, settings, window, grouping, today)
    if grouping == "total":
        counts = {None: counts.get(None, {})}
    total_counts = None
    if not scope.limited:
        total_counts = (await counts_by(session, settings, window, "total", today)).get(None)

    report = Report(
        period=period, grouping=grouping, generated_at=now,
        issuing_unit=settings.report_issuing_unit, scope=scope, rows=[], total=None,
    )
    if "ranking" in wanted or grouping == "department":
        unscoped = counts if grouping == "department" and not scope.limited else None
        ranking = await _ranking(session, settings, period, today, unscoped)
        report.ranked_count = sum(1 for r in ranking if r.rank is not None)
        if scope.limited:
            ranking = [r for r in ranking if r.key in (scope.departments or ())]
        report.ranking = ranking
    codes: set[str | None] = {r.key for r in report.ranking}
    if grouping == "department":
        codes |= set(counts)
    report.department_names = await engine.department_names(session, codes)

    def label(key: str | None) -> str:
        if grouping == "department":
            return report.name_of(key)
        if grouping == "channel":
            return engine.CHANNEL_LABELS.get(key or "", key or "")
        if grouping == "total":
            return "合计"
        return key or "（无）"

    order = {r.key: i for i, r in enumerate(report.ranking)}
    keys = sorted(counts, key=lambda k: (order.get(k, len(order)), k is None, k or ""))
    report.rows = [Row(k, label(k), counts[k], values(counts[k])) for k in keys]
    if total_counts is not None:
        report.total = Row(None, "合计", total_counts, values(total_counts))

    if "reasons" in wanted:
        labels = _reason_labels(settings)
        found = await engine.reason_counts(session, window)
        report.reasons = {
            dept: sorted(
                (Reason(code, labels.get(code, code), n) for code, n in by_code.items()),
                key=lambda r: (-r.count, r.code),
            )
            for dept, by_code in found.items()
        }
    if "agents" in wanted or "funnel" in wanted:
        agent_counts = (
            counts if grouping == "agent"
            else await counts_by(session, settings, window, "agent", today)
        )
        agent_counts = {k: c for k, c in agent_counts.items() if k is not None}
        if "agents" in wanted:
            report.agents = score_agents(
                {k: values(c) for k, c in agent_counts.items()},
                satisfaction_weight=settings.report_agent_satisfaction_weight,
                other_parts=settings.report_agent_score_parts,
                min_votes=settings.report_agent_min_votes,
                part_scores=part_scores,
            )
        if "funnel" in wanted:
            source = counts if grouping == "queue" else agent_counts
            report.funnel = funnel(
                {k: c for k, c in source.items() if k is not None},
                ratio=settings.report_funnel_outlier_ratio,
                min_served=settings.report_funnel_min_served,
            )
    if "trend" in wanted:
        for p in period.history(settings.report_trend_periods):
            w = _window(p, settings, scope.departments)
            c = (await counts_by(session, settings, w, "total", today)).get(None, {})
            report.trend.append((p, values(c)))
    if "ledger" in wanted:
        report.ledger = await loop.ledger(session, window, tz=settings.tz, today=today)
    return report
