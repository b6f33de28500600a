"""Pacing: how many calls may start now (DOMAIN.md rule 8, and the trunk's capacity).

Caps: simultaneous calls overall (every scheduler process together), per trunk, per
campaign, and calls started per minute per campaign. The claiming transaction loads the
current :class:`Load` from the database under a lock, then asks :meth:`Pacer.admit` for each
candidate; an admitted call is counted at once, so one claim round cannot overshoot either.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    overall: int
    per_trunk: dict[str, int]


@dataclass
class Load:
    """Calls under way (active attempts) and calls started in the last minute."""

    overall: int = 0
    per_trunk: Counter[str] = field(default_factory=Counter)
    per_campaign: Counter[int] = field(default_factory=Counter)
    started_last_minute: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class Request:
    campaign_id: int
    trunk: str
    campaign_max_concurrent: int | None
    calls_per_minute: int


class Pacer:
    def __init__(self, limits: Limits, load: Load) -> None:
        self.limits = limits
        self.load = load

    def refusal(self, req: Request) -> str | None:
        """Why this call may not start now, or None."""
        load = self.load
        if load.overall >= self.limits.overall:
            return "overall simultaneous-call cap reached"
        trunk_cap = self.limits.per_trunk.get(req.trunk)
        if trunk_cap is None:
            return f"trunk {req.trunk!r} is not configured"
        if load.per_trunk[req.trunk] >= trunk_cap:
            return f"trunk {req.trunk} is full"
        if (
            req.campaign_max_concurrent is not None
            and load.per_campaign[req.campaign_id] >= req.campaign_max_concurrent
        ):
            return "campaign simultaneous-call cap reached"
        if load.started_last_minute[req.campaign_id] >= req.calls_per_minute:
            return "campaign calls-per-minute reached"
        return None

    def admit(self, req: Request) -> bool:
        """Count the call if it may start; False (and nothing counted) if not."""
        if self.refusal(req) is not None:
            return False
        self.load.overall += 1
        self.load.per_trunk[req.trunk] += 1
        self.load.per_campaign[req.campaign_id] += 1
        self.load.started_last_minute[req.campaign_id] += 1
        return True

    @property
    def full(self) -> bool:
        """Nothing at all can start: stop looking at candidates."""
        return self.load.overall >= self.limits.overall
