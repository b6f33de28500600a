"""The service knows how far its working-day calendar reaches (issue 8 defect 7; DOMAIN.md
rule 4: deadlines in working days of the official calendar)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hotline.calendar_coverage import coverage
from hotline.workdays import WorkdayCalendar, package_years
from service import cli
from tests.conftest import make_settings

LAST = max(package_years())  # the last year the installed chinesecalendar knows
NEXT = LAST + 1


def test_rule4_package_years_are_covered_and_the_next_one_is_not() -> None:
    cal = WorkdayCalendar()
    assert cal.covers(dt.date(LAST, 6, 1)) and not cal.covers(dt.date(NEXT, 1, 1))
    assert cal.covered_until(dt.date(LAST, 6, 1)) == dt.date(LAST, 12, 31)
    assert cal.covered_until(dt.date(NEXT, 1, 2)) is None


def test_rule4_an_override_year_extends_the_coverage(tmp_path: Path) -> None:
    f = tmp_path / "overrides.toml"
    f.write_text(f"holidays = [{NEXT}-01-01]\nworkdays = []\n", encoding="utf-8")
    cal = WorkdayCalendar(f)
    assert cal.covered_until(dt.date(LAST, 12, 20)) == dt.date(NEXT, 12, 31)
    assert not cal.is_working_day(dt.date(NEXT, 1, 1))
    explicit = tmp_path / "years.toml"
    explicit.write_text(f"years = [{NEXT}, {NEXT + 1}]\n", encoding="utf-8")
    assert WorkdayCalendar(explicit).covered_until(dt.date(LAST, 1, 5)) == dt.date(
        NEXT + 1, 12, 31)


def test_rule4_longest_deadline_past_the_calendar_is_a_problem(tmp_path: Path) -> None:
    """15 working days (整改, rule 4) from mid-December run into a year not covered."""
    settings = make_settings(tmp_path)
    cal = WorkdayCalendar()
    early = coverage(settings, cal, dt.date(LAST, 6, 1))
    assert early.ok and early.problem is None
    late = coverage(settings, cal, dt.date(LAST, 12, 20))
    assert not late.ok and late.needed_until.year == NEXT
    assert late.problem is not None and f"放假安排 of {NEXT}" in late.problem
    f = tmp_path / "overrides.toml"
    f.write_text(f"years = [{NEXT}]\n", encoding="utf-8")
    assert coverage(settings, WorkdayCalendar(f), dt.date(LAST, 12, 20)).ok


def test_calendar_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    make_settings(tmp_path)  # clears the developer's HOTLINE_* variables
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["calendar", "check", "--today", f"{LAST}-06-01"]) == 0
    assert "ok" in capsys.readouterr().out
    assert cli.main(["calendar", "check", "--today", f"{LAST}-12-20"]) == 1
    out = capsys.readouterr().out
    assert f"covered until:  {LAST}-12-31" in out and "NOT COVERED" in out
