"""How far the working-day calendar must reach, and whether it does (issue 8 defect 7).

From ``chinesecalendar``'s last year on, every public holiday would silently count as a working
day: 回访 calls on 春节, 15-working-day deadlines short. Every deadline the service computes
today must end inside a year whose official schedule is known, so the horizon is today plus
the longest of them (整改, 回访, the default-rating window). Readiness, the startup warning and
``hotline calendar check`` all ask :func:`coverage`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hotline.settings import Settings
from hotline.workdays import WorkdayCalendar


@dataclass(frozen=True)
class Coverage:
    today: dt.date
    needed_until: dt.date  # the latest deadline computed today can end
    covered_until: dt.date | None  # the last day with the official schedule
    package_years: tuple[int, ...]
    override_years: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return self.covered_until is not None and self.covered_until >= self.needed_until

    @property
    def problem(self) -> str | None:
        if self.ok:
            return None
        known = "nothing" if self.covered_until is None else f"{self.covered_until}"
        return (f"the working-day calendar reaches {known}, but deadlines computed today run "
                f"to {self.needed_until}: add the official 放假安排 of {self.needed_until.year} "
                "to the workday_overrides_file (README: 'The working-day calendar')")


def needed_until(settings: Settings, workdays: WorkdayCalendar, today: dt.date) -> dt.date:
    """Today plus the longest deadline the service computes (working days counted as if
    every weekday worked beyond the calendar: the horizon is only ever an estimate)."""
    s = settings
    ends = [workdays.add_working_days(today, s.callback_deadline_working_days)]
    if s.rectification_days_unit == "working_days":
        ends.append(workdays.add_working_days(today, s.rectification_days))
    else:
        ends.append(today + dt.timedelta(days=s.rectification_days))
    if s.default_rating_window_unit == "working_days":
        ends.append(workdays.add_working_days(today, s.default_rating_window))
    elif s.default_rating_window_unit == "natural_days":
        ends.append(today + dt.timedelta(days=s.default_rating_window))
    return max(ends)


def coverage(settings: Settings, workdays: WorkdayCalendar, today: dt.date) -> Coverage:
    return Coverage(
        today=today,
        needed_until=needed_until(settings, workdays, today),
        covered_until=workdays.covered_until(today),
        package_years=tuple(sorted(workdays.package_years)),
        override_years=tuple(sorted(workdays.override_years)),
    )
