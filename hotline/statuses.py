"""Status values shared by storage and the flows: one place for each, so a column's values and
the code that moves them cannot disagree. storage/models.py and the flows re-export them.
"""

from __future__ import annotations

from enum import StrEnum


# ----------------------------------------------------------------------------- calls and ratings
class SurveyStatus:
    """Where a call stands with its 一次一评 (DOMAIN.md rule 1: never lost)."""

    PENDING = "pending"  # known, survey not reached yet
    IN_PROGRESS = "in_progress"
    RATED = "rated"
    NOT_RATED = "not_rated"  # hung up before rating or pressed nothing
    DEFAULTED = "defaulted"  # window passed: a default 基本满意 rating was made
    # left the queue before any agent answered: kept (rule 1: never lost, and visible for
    # 邀评), but no service was given, so it is never defaulted to 基本满意
    ABANDONED = "abandoned"


#: statuses after which the call needs no survey any more
SURVEY_RESOLVED = (SurveyStatus.RATED, SurveyStatus.DEFAULTED)
#: statuses a "not rated" outcome may overwrite (never a rating)
SURVEY_UNRESOLVED = (SurveyStatus.PENDING, SurveyStatus.IN_PROGRESS, SurveyStatus.NOT_RATED)


class RatingSource:
    KEYPAD = "keypad"
    CALLBACK = "callback"
    DEFAULT = "default"
    MANUAL = "manual"


class RatingKind:
    PER_CALL = "per_call"  # 一次一评
    PER_CASE = "per_case"  # 一事一评


class CaseStatus:
    OPEN = "open"
    CLOSED = "closed"


# ----------------------------------------------------------------------------- delivery
class OutboxStatus:
    PENDING = "pending"
    INFLIGHT = "inflight"
    DELIVERED = "delivered"
    DEAD = "dead"


# ----------------------------------------------------------------------------- 回访 / 邀评
class CampaignStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    PENDING = "pending"  # waiting for next_attempt_at
    DIALING = "dialing"  # an attempt is under way
    COMPLETED = "completed"  # reached: rated, or asked not to be called again
    UNREACHABLE = "unreachable"  # on the manual follow-up list
    MANUAL_DONE = "manual_done"  # a person recorded the result of a manual call
    CANCELLED = "cancelled"  # its campaign was cancelled


OPEN_TASK_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.DIALING})


class AttemptStatus(StrEnum):
    DIALING = "dialing"  # claimed; Originate sent or about to be
    ANSWERED = "answered"  # the citizen picked up; the follow-up IVR runs
    LOST = "lost"  # AMI dropped: outcome unknown until reconciled
    ENDED = "ended"  # outcome recorded


ACTIVE_ATTEMPT_STATUSES = frozenset(
    {AttemptStatus.DIALING, AttemptStatus.ANSWERED, AttemptStatus.LOST}
)
