"""Working days on the official Chinese calendar (DOMAIN.md rule 4).

Public holidays are off and 调休 make-up weekend days are on. The data comes from the
``chinesecalendar`` package; a small TOML override file (setting ``workday_overrides_file``,
format in ``workday_overrides.toml`` beside this module) covers years it does not know yet and
takes precedence over it.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from functools import lru_cache
from pathlib import Path

import chinese_calendar

BUILTIN_OVERRIDES = Path(__file__).with_name("workday_overrides.toml")


class WorkdayCalendar:
    def __init__(self, overrides_file: Path | None = None) -> None:
        self._off: set[dt.date] = set()
        self._on: set[dt.date] = set()
        for path in (BUILTIN_OVERRIDES, overrides_file):
            if path is not None and path.exists():
                self._load(path)

    def _load(self, path: Path) -> None:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for day in data.get("holidays", []):
            self._off.add(_as_date(day))
            self._on.discard(_as_date(day))
        for day in data.get("workdays", []):
            self._on.add(_as_date(day))
            self._off.discard(_as_date(day))

    def is_working_day(self, day: dt.date) -> bool:
        if day in self._on:
            return True
        if day in self._off:
            return False
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            # A year neither the package nor the overrides know: weekdays work.
            return day.weekday() < 5

    def add_working_days(self, start: dt.date, days: int) -> dt.date:
        """The date ``days`` working days after ``start`` (``start`` itself not counted)."""
        if days < 0:
            raise ValueError("days must not be negative")
        day = start
        remaining = days
        while remaining:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start
        while day < end:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


@lru_cache(maxsize=8)
def calendar(overrides_file: Path | None = None) -> WorkdayCalendar:
    return WorkdayCalendar(overrides_file)


def add_working_days(start: dt.date, days: int, overrides_file: Path | None = None) -> dt.date:
    return calendar(overrides_file).add_working_days(start, days)


def working_days_between(start: dt.date, end: dt.date, overrides_file: Path | None = None) -> int:
    return calendar(overrides_file).working_days_between(start, end)
