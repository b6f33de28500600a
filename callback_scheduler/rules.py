"""What a campaign may do: its call windows, dates, attempts, retry delays and caps.

A campaign stores its rules as JSON (``Campaign.rules``). A user campaign stores the complete
rules it was created with, so a later change of the settings does not change a campaign that
is already running; the standing 差评回访 campaign stores nothing and follows the settings.
Either way :func:`resolve` is the one place that turns stored JSON into :class:`CampaignRules`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hotline.settings import DEFAULT_CALLBACK_RETRY_MINUTES, Settings


class Outcome(StrEnum):
    """How one dial attempt ended."""

    RATED = "rated"  # answered, and the citizen's rating was stored
    ANSWERED_NO_RATING = "answered_no_rating"  # answered, hung up before rating
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    FAILED = "failed"  # any other failure (bad number, trunk down ...)
    UNKNOWN = "unknown"  # lost in an AMI disconnect and not found again
    DO_NOT_CALL = "do_not_call"  # answered and asked not to be called again
    SKIPPED = "skipped"  # the last check before dialling said no: nobody was called


#: outcomes after which the task may be tried again (each has a retry delay)
RETRYABLE: frozenset[Outcome] = frozenset(Outcome(name) for name in DEFAULT_CALLBACK_RETRY_MINUTES)


class CampaignKind(StrEnum):
    CASE_FOLLOWUP = "case_followup"  # 差评回访 (DOMAIN.md rule 5)
    RATING_INVITE = "rating_invite"  # 电话邀评 of calls not rated (rule 3)
    SATISFACTION_FOLLOWUP = "satisfaction_followup"  # 满意度回访 of closed cases


class RulesError(ValueError):
    """Campaign rules that cannot work; the message names the field."""


Window = tuple[dt.time, dt.time]


#: a window may end at "24:00": the end of the day
END_OF_DAY = "24:00"


def parse_window(text: str) -> Window:
    """``"09:00-12:00"`` → (09:00, 12:00); the end is exclusive; ``24:00`` ends the day."""
    try:
        start_s, end_s = (part.strip() for part in text.strip().split("-"))
        start = dt.time.fromisoformat(start_s)
        end = dt.time.max if end_s == END_OF_DAY else dt.time.fromisoformat(end_s)
    except ValueError as exc:
        raise ValueError(f"window {text!r} is not HH:MM-HH:MM") from exc
    if start >= end:
        raise ValueError(f"window {text!r} ends before it starts")
    return start, end


#: a retry at most a month later (a larger delay overflowed the date arithmetic)
MAX_RETRY_MINUTES = 31 * 24 * 60


class CampaignRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    windows: list[str] = Field(min_length=1)
    working_days_only: bool = True
    start_date: dt.date | None = None  # Beijing dates, inclusive
    end_date: dt.date | None = None
    max_attempts: int = Field(ge=1, le=10)
    retry_minutes: dict[str, int]
    # upper bounds keep date arithmetic finite: a huge value was an OverflowError, a 500
    calls_per_minute: int = Field(ge=1, le=10_000)
    max_concurrent: int | None = Field(default=None, ge=1, le=10_000)  # None: only the caps
    caller_id: str = Field(pattern=r"^\+?[0-9]{1,20}$")  # digits: it goes into an AMI header
    trunk: str
    # a task must be reached within this many working days of its creation (None: end_date)
    deadline_working_days: int | None = Field(default=None, ge=1, le=365)

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        parsed = sorted(parse_window(w) for w in value)
        for (_, end), (start, _) in itertools.pairwise(parsed):
            if start < end:
                raise ValueError("call windows overlap")
        return [f"{s:%H:%M}-{END_OF_DAY if e == dt.time.max else f'{e:%H:%M}'}"
                for s, e in parsed]

    @field_validator("retry_minutes")
    @classmethod
    def _retry(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(DEFAULT_CALLBACK_RETRY_MINUTES)
        if unknown:
            raise ValueError(f"no retry delay can be set for {sorted(unknown)}")
        if any(not 0 <= v <= MAX_RETRY_MINUTES for v in value.values()):
            raise ValueError(f"retry delays must be 0 to {MAX_RETRY_MINUTES} minutes")
        return {**DEFAULT_CALLBACK_RETRY_MINUTES, **value}

    @model_validator(mode="after")
    def _dates(self) -> CampaignRules:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self

    @property
    def parsed_windows(self) -> list[Window]:
        return [parse_window(w) for w in self.windows]

    def retry_delay(self, outcome: Outcome) -> dt.timedelta:
        return dt.timedelta(minutes=self.retry_minutes[outcome.value])


def defaults(settings: Settings) -> dict[str, Any]:
    """The rules a campaign gets for every field it does not set."""
    return {
        "windows": list(settings.callback_windows),
        "working_days_only": settings.callback_working_days_only,
        "max_attempts": settings.callback_max_attempts,
        "retry_minutes": dict(settings.callback_retry_minutes),
        "calls_per_minute": settings.callback_calls_per_minute,
        "caller_id": settings.callback_caller_id,
        "trunk": settings.callback_default_trunk,
    }


def resolve(stored: dict[str, Any] | None, settings: Settings) -> CampaignRules:
    """Stored (possibly partial) rules over the settings' defaults; raises RulesError."""
    stored = dict(stored or {})
    if "retry_minutes" in stored:  # a partial map keeps the other outcomes' defaults
        stored["retry_minutes"] = {**settings.callback_retry_minutes, **stored["retry_minutes"]}
    try:
        rules = CampaignRules.model_validate({**defaults(settings), **stored})
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "rules"
        raise RulesError(f"{where}: {err['msg']}") from exc
    trunks = {t.name for t in settings.callback_trunks}
    if rules.trunk not in trunks:
        raise RulesError(f"trunk: {rules.trunk!r} is not a configured trunk ({', '.join(trunks)})")
    return rules


def stored_form(rules: CampaignRules) -> dict[str, Any]:
    """JSON to keep in ``Campaign.rules``."""
    return rules.model_dump(mode="json")
