"""``hotline calendar check``: how far the working-day calendar reaches (issue 8 defect 7)."""

from __future__ import annotations

import argparse
import datetime as dt

from hotline import clock
from hotline.calendar_coverage import coverage
from hotline.settings import Settings
from hotline.workdays import calendar


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("calendar", help="the official working-day calendar")
    inner = p.add_subparsers(dest="calendar_command", metavar="ACTION", required=True)
    check = inner.add_parser(
        "check", help="show which years are covered; exit 1 if a deadline computed today "
        "would run past them")
    check.add_argument("--today", type=dt.date.fromisoformat, default=None,
                       help="check as of this date (YYYY-MM-DD; default: today, Beijing time)")
    check.set_defaults(handler=_check)


def _check(settings: Settings, args: argparse.Namespace) -> int:
    today = args.today or clock.local_today(settings.tz)
    workdays = calendar(settings.workday_overrides_file)
    c = coverage(settings, workdays, today)
    years = ", ".join(str(y) for y in c.package_years[-3:])
    print(f"chinesecalendar package: {c.package_years[0]}..{c.package_years[-1]} "
          f"(latest {years})")
    extra = ", ".join(str(y) for y in c.override_years) or "none"
    print(f"override file ({settings.workday_overrides_file or 'built-in only'}): {extra}")
    print(f"covered until:  {c.covered_until or 'not even today'}")
    print(f"needed until:   {c.needed_until} (today {today} + the longest deadline)")
    if c.ok:
        print("ok")
        return 0
    print(f"NOT COVERED: {c.problem}")
    return 1
