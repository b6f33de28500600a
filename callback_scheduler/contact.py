"""One contact policy for every campaign (DOMAIN.md rule 8, "不得骚扰"; issue 10): whatever
campaign a task belongs to, a citizen (a number hash) has at most one call in progress, at
most ``callback_citizen_max_calls_per_day`` calls a Beijing day and at most
``callback_citizen_max_calls_per_week`` calls in any 7 days.

The decision is pure (:func:`hold_until`); :func:`load_of` reads what it needs from the
attempts table. The claim calls both inside its claiming transaction, which runs one at a
time across every process (callback_scheduler.claims), and counts the calls it claims itself
as it goes: two schedulers can never both dial one number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler.lifecycle import ACTIVE_ATTEMPT_STATUSES
from callback_scheduler.rules import Outcome
from storage.models import CallbackAttempt, CallbackTask

#: a number with a call in progress is looked at again this much later (a 回访 call lasts a
#: few minutes; the ring time plus a short call)
BUSY_RECHECK = dt.timedelta(minutes=10)
WEEK = dt.timedelta(days=7)


@dataclass(frozen=True)
class ContactLimits:
    per_day: int
    per_week: int


@dataclass
class CitizenLoad:
    """One citizen's calls: in progress now, and the start times of calls in the last week."""

    in_progress: int = 0
    started: list[dt.datetime] = field(default_factory=list)

    def add_call(self, when: dt.datetime) -> None:
        self.in_progress += 1
        self.started.append(when)


def hold_until(
    load: CitizenLoad, limits: ContactLimits, now: dt.datetime, tz: ZoneInfo
) -> dt.datetime | None:
    """None: this citizen may be called now. Else the earliest time another call may go."""
    if load.in_progress:
        return now + BUSY_RECHECK
    week = sorted(t for t in load.started if t > now - WEEK)
    if len(week) >= limits.per_week:
        # the oldest calls must leave the 7 days first
        return week[len(week) - limits.per_week] + WEEK
    local_today = now.astimezone(tz).date()
    today = [t for t in week if t.astimezone(tz).date() == local_today]
    if len(today) >= limits.per_day:
        tomorrow = dt.datetime.combine(local_today + dt.timedelta(days=1), dt.time(), tz)
        return tomorrow.astimezone(dt.UTC)
    return None


async def load_of(
    session: AsyncSession, hashes: Iterable[str], now: dt.datetime
) -> dict[str, CitizenLoad]:
    """Every citizen's calls across all campaigns, from the attempts (a skipped attempt
    dialled nobody and does not count)."""
    wanted = set(hashes)
    loads = {h: CitizenLoad() for h in wanted}
    if not wanted:
        return loads
    active = [a.value for a in ACTIVE_ATTEMPT_STATUSES]
    rows = await session.execute(
        select(CallbackTask.number_hash, CallbackAttempt.status, CallbackAttempt.started_at)
        .select_from(CallbackAttempt)
        .join(CallbackTask, CallbackTask.id == CallbackAttempt.task_id)
        .where(
            CallbackTask.number_hash.in_(wanted),
            (CallbackAttempt.started_at > now - WEEK)
            | CallbackAttempt.status.in_(active),
            func.coalesce(CallbackAttempt.outcome, "") != Outcome.SKIPPED.value,
        )
    )
    for number_hash, status, started_at in rows:
        load = loads[number_hash]
        if status in active:
            load.in_progress += 1
        load.started.append(started_at)
    return loads
