"""Due dates of a 差评 item on the official calendar (DOMAIN.md rule 4, hotline.workdays).

核实 is due ``bad_rating_verify_days`` and 整改 ``rectification_days`` after the 差评 (or after
the start of a later round), counted from its Beijing date, in working days (seeds 000, 001) or
natural days (seed 002), setting ``rectification_days_unit``. An item is 即将超期 when its due
date is at most ``bad_rating_due_soon_days`` days away and 超期 the day after its due date.
Pure: a policy and dates in, dates out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from hotline.workdays import WorkdayCalendar


class DueStatus(StrEnum):
    ON_TIME = "on_time"
    DUE_SOON = "due_soon"  # 即将超期
    OVERDUE = "overdue"  # 超期


@dataclass(frozen=True)
class Policy:
    calendar: WorkdayCalendar
    tz: ZoneInfo
    verify_days: int = 2
    rectify_days: int = 15
    working_days: bool = True  # False: seed 002's natural days
    due_soon_days: int = 2
    appeal_days: int = 5  # always working days (a staff member's right, not a citizen's wait)

    def local_date(self, at: dt.datetime) -> dt.date:
        return at.astimezone(self.tz).date()

    def _add(self, start: dt.date, days: int) -> dt.date:
        if self.working_days:
            return self.calendar.add_working_days(start, days)
        return start + dt.timedelta(days=days)

    def _between(self, start: dt.date, end: dt.date) -> int:
        if self.working_days:
            return self.calendar.working_days_between(start, end)
        return (end - start).days

    def verify_due(self, since: dt.datetime) -> dt.date:
        return self._add(self.local_date(since), self.verify_days)

    def rectify_due(self, since: dt.datetime) -> dt.date:
        return self._add(self.local_date(since), self.rectify_days)

    def appeal_open(self, rated_at: dt.datetime, now: dt.datetime) -> bool:
        """申诉 is allowed until ``appeal_days`` working days after the 差评's date."""
        last = self.calendar.add_working_days(self.local_date(rated_at), self.appeal_days)
        return self.local_date(now) <= last

    def due_status(self, due: dt.date | None, now: dt.datetime) -> DueStatus | None:
        if due is None:
            return None
        today = self.local_date(now)
        if today > due:
            return DueStatus.OVERDUE
        if self._between(today, due) <= self.due_soon_days:
            return DueStatus.DUE_SOON
        return DueStatus.ON_TIME
