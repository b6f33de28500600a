"""Agent scores for 考核 (seed 000: window staff assessed on satisfaction with at least 20 %
weight): pure functions.

An agent's score out of 100 is the weighted sum of its parts, each scored 0..100. The
satisfaction part is the agent's 满意率 × 100 (real votes only, reports.figures); the other
parts are named in the setting ``report_agent_score_parts`` and their scores come from
elsewhere (quality inspection, attendance …), given per agent (``hotline report agents
--part-scores FILE``). Without them the total is not known and only the satisfaction points
are shown. An agent with fewer real votes than ``report_agent_min_votes`` is not ranked: a few
votes say nothing about a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SATISFACTION_PART = "满意度"


@dataclass
class AgentScore:
    agent_id: str
    votes: int
    satisfaction_rate: float | None
    satisfaction_points: float | None  # weight × 满意率 × 100
    parts: dict[str, float | None] = field(default_factory=dict)  # the other parts' scores
    total: float | None = None  # known only when every part has a score
    rank: int | None = None  # None: fewer votes than the minimum


def score_agents(
    rows: Mapping[str, Mapping[str, float | int | None]],
    *,
    satisfaction_weight: float,
    other_parts: Mapping[str, float],
    min_votes: int,
    part_scores: Mapping[str, Mapping[str, float]] | None = None,
) -> list[AgentScore]:
    """Score and rank agents (``rows``: 工号 → figure values). Ranked by total, or by the
    satisfaction points while totals are unknown; equal scores share a rank. Ranked agents
    first (best first), then the others by 工号."""
    part_scores = part_scores or {}
    scores: list[AgentScore] = []
    for agent, values in rows.items():
        rate = values.get("satisfaction_rate")
        points = None if rate is None else round(satisfaction_weight * float(rate) * 100, 2)
        given = part_scores.get(agent, {})
        parts = {name: given.get(name) for name in other_parts}
        total = None
        if other_parts and points is not None and all(v is not None for v in parts.values()):
            total = round(
                points + sum(other_parts[n] * float(v) for n, v in parts.items() if v is not None),
                2,
            )
        scores.append(AgentScore(
            agent_id=agent,
            votes=int(values.get("real") or 0),
            satisfaction_rate=None if rate is None else float(rate),
            satisfaction_points=points,
            parts=parts,
            total=total,
        ))
    eligible = [s for s in scores if s.votes >= min_votes and s.satisfaction_points is not None]
    with_totals = bool(other_parts) and all(s.total is not None for s in eligible)

    def measure(s: AgentScore) -> float:
        value = s.total if with_totals else s.satisfaction_points
        return float(value or 0.0)

    eligible.sort(key=lambda s: (-measure(s), s.agent_id))
    for position, s in enumerate(eligible, start=1):
        before = eligible[position - 2] if position > 1 else None
        same = before is not None and measure(before) == measure(s)
        s.rank = before.rank if same and before is not None else position
    others = sorted((s for s in scores if s not in eligible), key=lambda s: s.agent_id)
    return eligible + others
