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


def package_years() -> set[int]:
    """The years the installed ``chinesecalendar`` knows (it publishes each year's schedule
    once the State Council has)."""
    return {day.year for day in chinese_calendar.holidays}


class WorkdayCalendar:
    def __init__(self, overrides_file: Path | None = None) -> None:
        self._off: set[dt.date] = set()
        self._on: set[dt.date] = set()
        self.package_years = package_years()
        #: years an override file gives the official schedule of (``years = [...]``, or any
        #: year it lists a holiday in: each year's 放假安排 has 元旦 at least)
        self.override_years: set[int] = set()
        for path in (BUILTIN_OVERRIDES, overrides_file):
            if path is not None and path.exists():
                self._load(path)

    def _load(self, path: Path) -> None:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        self.override_years.update(int(y) for y in data.get("years", []))
        self.override_years.update(_as_date(day).year for day in data.get("holidays", []))
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

    def covers(self, day: dt.date) -> bool:
        """Whether ``day``'s year has its official schedule here; outside it every weekday
        counts as a working day, holidays included (issue 8 defect 7)."""
        return day.year in self.package_years or day.year in self.override_years

    def covered_until(self, today: dt.date) -> dt.date | None:
        """The last day of the run of covered years starting with ``today``'s; None if
        today's year itself is not covered."""
        if not self.covers(today):
            return None
        year = today.year
        while self.covers(dt.date(year + 1, 1, 1)):
            year += 1
        return dt.date(year, 12, 31)

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
