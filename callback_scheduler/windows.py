"""When a citizen may be called (DOMAIN.md rule 8: evaluators must not be harassed).

Everything is decided in local (Beijing) time — windows, working days on the official
calendar, the campaign's dates — while every instant passed in or out is an aware UTC
datetime, as stored. Pure functions: the caller passes ``now``, so tests control the clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo

from callback_scheduler.rules import CampaignRules

#: how far ahead :func:`next_dial_time` looks before it gives up (a campaign with no end date
#: whose only windows fall on days that never come)
HORIZON_DAYS = 400


class WorkingDays(Protocol):
    def is_working_day(self, day: dt.date) -> bool: ...

    def add_working_days(self, start: dt.date, days: int) -> dt.date: ...


def _local(when: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    if when.tzinfo is None:
        raise ValueError("naive datetime: pass aware UTC instants")
    return when.astimezone(tz)


def _day_allowed(rules: CampaignRules, day: dt.date, workdays: WorkingDays) -> str | None:
    if rules.start_date and day < rules.start_date:
        return "before the campaign's start date"
    if rules.end_date and day > rules.end_date:
        return "after the campaign's end date"
    if rules.working_days_only and not workdays.is_working_day(day):
        return "not a working day"
    return None


def why_not_now(
    rules: CampaignRules, when: dt.datetime, workdays: WorkingDays, tz: ZoneInfo
) -> str | None:
    """None if a call may start at ``when``; otherwise the reason it may not."""
    local = _local(when, tz)
    reason = _day_allowed(rules, local.date(), workdays)
    if reason:
        return reason
    now = local.time().replace(tzinfo=None)
    if not any(start <= now < end for start, end in rules.parsed_windows):
        return "outside the call windows"
    return None


def next_dial_time(
    rules: CampaignRules,
    after: dt.datetime,
    workdays: WorkingDays,
    tz: ZoneInfo,
    *,
    not_after: dt.datetime | None = None,
) -> dt.datetime | None:
    """The earliest instant at or after ``after`` when a call may start (UTC), or None if
    there is none before ``not_after`` / the campaign's end date."""
    local = _local(after, tz)
    day = local.date()
    if rules.start_date and day < rules.start_date:
        day = rules.start_date
    for _ in range(HORIZON_DAYS):
        if rules.end_date and day > rules.end_date:
            return None
        if _day_allowed(rules, day, workdays) is None:
            for start, end in rules.parsed_windows:
                opens = dt.datetime.combine(day, start, tzinfo=tz)
                closes = dt.datetime.combine(day, end, tzinfo=tz)
                candidate = max(opens, local)
                if candidate < closes:
                    result = candidate.astimezone(dt.UTC)
                    if not_after is not None and result > not_after:
                        return None
                    return result
        day += dt.timedelta(days=1)
        if not_after is not None and dt.datetime.combine(day, dt.time(), tzinfo=tz) > not_after:
            return None
    return None


def end_of_day(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The first instant after local ``day`` (a deadline "by the end of day" is before it)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC)


def local_date(when: dt.datetime, tz: ZoneInfo) -> dt.date:
    return _local(when, tz).date()


def task_deadline(
    rules: CampaignRules, created: dt.datetime, workdays: WorkingDays, tz: ZoneInfo
) -> dt.datetime | None:
    """When a campaign task stops being dialled: the campaign's end date and/or its deadline
    in working days from creation, whichever comes first."""
    limits: list[dt.datetime] = []
    if rules.end_date:
        limits.append(end_of_day(rules.end_date, tz))
    if rules.deadline_working_days:
        due = workdays.add_working_days(local_date(created, tz), rules.deadline_working_days)
        limits.append(end_of_day(due, tz))
    return min(limits) if limits else None
