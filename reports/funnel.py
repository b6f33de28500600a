"""The participation funnel per agent (or queue): calls served → handed to the survey → rated
by keypad → 差评, and the outliers against the team. Pure functions.

Why: an agent assessed on satisfaction (reports.scores) gains by handing only happy callers to
the survey. Such an agent reaches the survey on a much smaller share of calls than colleagues,
which the 满意率 itself cannot show. An agent is flagged when its hand-off share (handed ÷
served) or its rated share (keypad ratings ÷ served) is below ``ratio`` × the team median
(setting ``report_funnel_outlier_ratio``, default 0.5); agents with fewer than
``report_funnel_min_served`` calls are neither flagged nor counted in the median.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

HANDOFF_LOW = "handoff_low"
RATED_LOW = "rated_low"

FLAG_LABELS = {
    HANDOFF_LOW: "转评价比例远低于团队中位数",
    RATED_LOW: "按键评价比例远低于团队中位数",
}


@dataclass
class FunnelRow:
    key: str
    served: int
    handed: int
    rated: int
    bad: int
    flags: list[str] = field(default_factory=list)

    @property
    def handoff_share(self) -> float | None:
        return self.handed / self.served if self.served else None

    @property
    def rated_share(self) -> float | None:
        return self.rated / self.served if self.served else None

    @property
    def bad_share(self) -> float | None:
        return self.bad / self.rated if self.rated else None


@dataclass
class Funnel:
    rows: list[FunnelRow]
    median_handoff_share: float | None
    median_rated_share: float | None


def funnel(
    counts: Mapping[str, Mapping[str, int | None]], *, ratio: float, min_served: int
) -> Funnel:
    """``counts``: agent (or queue) → its counts (served, handed, keypad, keypad_bad)."""
    rows = [
        FunnelRow(
            key=key,
            served=int(c.get("served") or 0),
            handed=int(c.get("handed") or 0),
            rated=int(c.get("keypad") or 0),
            bad=int(c.get("keypad_bad") or 0),
        )
        for key, c in sorted(counts.items())
    ]
    team = [r for r in rows if r.served >= max(min_served, 1)]
    med_handoff = statistics.median(r.handoff_share or 0.0 for r in team) if team else None
    med_rated = statistics.median(r.rated_share or 0.0 for r in team) if team else None
    for r in team:
        if med_handoff and (r.handoff_share or 0.0) < ratio * med_handoff:
            r.flags.append(HANDOFF_LOW)
        if med_rated and (r.rated_share or 0.0) < ratio * med_rated:
            r.flags.append(RATED_LOW)
    return Funnel(rows=rows, median_handoff_share=med_handoff, median_rated_share=med_rated)
