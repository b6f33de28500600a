"""Working-day calendar (DOMAIN.md rule 4: 15 working days on the official calendar)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hotline.workdays import WorkdayCalendar, add_working_days, working_days_between

D = dt.date


def test_rule4_national_day_2025_holidays_are_off() -> None:
    cal = WorkdayCalendar()
    for day in range(1, 9):  # 2025-10-01 .. 10-08 国庆+中秋
        assert not cal.is_working_day(D(2025, 10, day)), day
    assert cal.is_working_day(D(2025, 10, 9))


def test_rule4_make_up_weekend_days_are_working_days() -> None:
    cal = WorkdayCalendar()
    assert D(2025, 9, 28).weekday() == 6 and cal.is_working_day(D(2025, 9, 28))
    assert D(2025, 10, 11).weekday() == 5 and cal.is_working_day(D(2025, 10, 11))
    assert D(2026, 2, 14).weekday() == 5 and cal.is_working_day(D(2026, 2, 14))
    assert D(2026, 9, 20).weekday() == 6 and cal.is_working_day(D(2026, 9, 20))


def test_rule4_spring_festival_2026() -> None:
    cal = WorkdayCalendar()
    assert not cal.is_working_day(D(2026, 2, 17))  # 春节
    assert cal.is_working_day(D(2026, 2, 28))  # 调休 Saturday


def test_rule4_add_15_working_days_over_national_day_2025() -> None:
    # 2025-09-30 (Tue) + 15 working days: Oct 1-8 off, Oct 11 (Sat) on.
    # Working days: 9,10,11,13,14,15,16,17,20,21,22,23,24,27,28 -> Oct 28.
    assert add_working_days(D(2025, 9, 30), 15) == D(2025, 10, 28)
    assert working_days_between(D(2025, 9, 30), D(2025, 10, 28)) == 15


def test_rule4_add_working_days_over_spring_festival_2026() -> None:
    # 2026-02-13 (Fri) + 1 working day is the 调休 Saturday 2026-02-14.
    assert add_working_days(D(2026, 2, 13), 1) == D(2026, 2, 14)
    # After it, 春节 runs to 2026-02-23 (Mon); the next working day is 02-24.
    assert add_working_days(D(2026, 2, 14), 1) == D(2026, 2, 24)


def test_working_days_between_is_antisymmetric_and_zero_for_same_day() -> None:
    assert working_days_between(D(2026, 3, 2), D(2026, 3, 2)) == 0
    assert working_days_between(D(2026, 3, 9), D(2026, 3, 2)) == -5
    assert working_days_between(D(2026, 3, 2), D(2026, 3, 9)) == 5


def test_override_file_covers_an_unknown_year(tmp_path: Path) -> None:
    overrides = tmp_path / "o.toml"
    overrides.write_text("holidays = [2031-01-01]\nworkdays = [2031-01-04]\n")
    cal = WorkdayCalendar(overrides)
    assert not cal.is_working_day(D(2031, 1, 1))  # Wednesday made a holiday
    assert cal.is_working_day(D(2031, 1, 4))  # Saturday made a working day
    assert cal.is_working_day(D(2031, 1, 2))  # unknown year: weekdays work
    assert not cal.is_working_day(D(2031, 1, 5))
