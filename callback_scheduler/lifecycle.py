"""Statuses of campaigns, tasks and attempts, and the pure decisions that move them.

A task is never silently dropped (DOMAIN.md rule 5): it ends reached (``completed``), handed
to a person (``unreachable``, the manual follow-up list, then ``manual_done``), or
``cancelled`` with its campaign.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from callback_scheduler.rules import RETRYABLE, CampaignRules, Outcome
from callback_scheduler.windows import WorkingDays, next_dial_time
from hotline.statuses import (  # one place for the values storage shares; re-exported here
    ACTIVE_ATTEMPT_STATUSES as ACTIVE_ATTEMPT_STATUSES,
)
from hotline.statuses import (
    OPEN_TASK_STATUSES as OPEN_TASK_STATUSES,
)
from hotline.statuses import (
    AttemptStatus as AttemptStatus,
)
from hotline.statuses import (
    CampaignStatus as CampaignStatus,
)
from hotline.statuses import (
    TaskStatus as TaskStatus,
)


class CampaignAction(StrEnum):
    START = "start"  # also resumes a paused campaign
    PAUSE = "pause"
    CANCEL = "cancel"
    FINISH = "finish"


_CAMPAIGN_MOVES: dict[tuple[CampaignStatus, CampaignAction], CampaignStatus] = {
    (CampaignStatus.DRAFT, CampaignAction.START): CampaignStatus.RUNNING,
    (CampaignStatus.DRAFT, CampaignAction.CANCEL): CampaignStatus.CANCELLED,
    (CampaignStatus.RUNNING, CampaignAction.PAUSE): CampaignStatus.PAUSED,
    (CampaignStatus.RUNNING, CampaignAction.CANCEL): CampaignStatus.CANCELLED,
    (CampaignStatus.RUNNING, CampaignAction.FINISH): CampaignStatus.FINISHED,
    (CampaignStatus.PAUSED, CampaignAction.START): CampaignStatus.RUNNING,
    (CampaignStatus.PAUSED, CampaignAction.CANCEL): CampaignStatus.CANCELLED,
    (CampaignStatus.PAUSED, CampaignAction.FINISH): CampaignStatus.FINISHED,
}

#: the standing 差评回访 campaign may only be paused and resumed: 回访率 must reach 100%
SYSTEM_ACTIONS = frozenset({CampaignAction.START, CampaignAction.PAUSE})


class TransitionError(ValueError):
    """The campaign cannot do that from its current status."""


def campaign_after(
    status: str, action: str, *, system: bool = False
) -> CampaignStatus:
    """The status after ``action``; raises TransitionError naming the current status."""
    current, act = CampaignStatus(status), CampaignAction(action)
    if system and act not in SYSTEM_ACTIONS:
        raise TransitionError(f"the standing 差评回访 campaign cannot be told to {act}")
    if act is CampaignAction.START and current is CampaignStatus.RUNNING:
        return current  # idempotent: starting a running campaign changes nothing
    if act is CampaignAction.PAUSE and current is CampaignStatus.PAUSED:
        return current
    try:
        return _CAMPAIGN_MOVES[(current, act)]
    except KeyError:
        raise TransitionError(f"a {current} campaign cannot {act}") from None


def accepts_tasks(status: str) -> bool:
    return CampaignStatus(status) in (
        CampaignStatus.DRAFT, CampaignStatus.RUNNING, CampaignStatus.PAUSED
    )


class Unreachable(StrEnum):
    """Why a task went to the manual list (``CallbackTask.outcome``)."""

    MAX_ATTEMPTS = "max_attempts"
    DEADLINE = "deadline"  # its deadline passed before it was reached
    NO_WINDOW = "no_window"  # no call window left before the deadline or the end date
    DO_NOT_CALL = "do_not_call"  # the number is on the do-not-call list
    CAMPAIGN_ENDED = "campaign_ended"  # the campaign finished with the task still open


@dataclass(frozen=True)
class TaskPlan:
    """What to do with a task: its new status, next attempt time and outcome note."""

    status: TaskStatus
    next_attempt_at: dt.datetime | None = None
    outcome: str | None = None


def plan_after_attempt(
    outcome: Outcome,
    *,
    attempts_made: int,
    max_attempts: int,
    now: dt.datetime,
    deadline: dt.datetime | None,
    rules: CampaignRules,
    workdays: WorkingDays,
    tz: ZoneInfo,
) -> TaskPlan:
    """After an attempt ended with ``outcome`` (``attempts_made`` counts it, unless skipped):
    done, another try after the outcome's retry delay inside a window, or the manual list."""
    if outcome is Outcome.RATED:
        return TaskPlan(TaskStatus.COMPLETED, outcome=outcome.value)
    if outcome is Outcome.DO_NOT_CALL:
        return TaskPlan(TaskStatus.COMPLETED, outcome=outcome.value)
    if outcome is Outcome.SKIPPED:
        return plan_next(now, deadline=deadline, rules=rules, workdays=workdays, tz=tz)
    if outcome not in RETRYABLE:  # pragma: no cover - every Outcome is handled above
        raise ValueError(f"unhandled outcome {outcome}")
    if attempts_made >= max_attempts:
        return TaskPlan(TaskStatus.UNREACHABLE, outcome=Unreachable.MAX_ATTEMPTS.value)
    earliest = now + rules.retry_delay(outcome)
    return plan_next(earliest, deadline=deadline, rules=rules, workdays=workdays, tz=tz)


def plan_next(
    earliest: dt.datetime,
    *,
    deadline: dt.datetime | None,
    rules: CampaignRules,
    workdays: WorkingDays,
    tz: ZoneInfo,
) -> TaskPlan:
    """Pending until the first window at or after ``earliest``; the manual list if the
    deadline has passed or no window is left before it."""
    if deadline is not None and earliest >= deadline:
        return TaskPlan(TaskStatus.UNREACHABLE, outcome=Unreachable.DEADLINE.value)
    when = next_dial_time(rules, earliest, workdays, tz, not_after=deadline)
    if when is None or (deadline is not None and when >= deadline):
        return TaskPlan(TaskStatus.UNREACHABLE, outcome=Unreachable.NO_WINDOW.value)
    return TaskPlan(TaskStatus.PENDING, next_attempt_at=when)
