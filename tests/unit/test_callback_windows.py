"""DOMAIN.md rule 8 (evaluators must not be harassed): callbacks only inside the Beijing-time
call windows, on working days of the official calendar (holidays off, 调休 days on), and
within the campaign's dates. The clock is a parameter: every instant here is chosen."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from callback_scheduler.rules import CampaignRules, RulesError, resolve
from callback_scheduler.windows import end_of_day, next_dial_time, task_deadline, why_not_now
from hotline.clock import BEIJING
from hotline.workdays import calendar
from tests.conftest import make_settings
from tests.helpers.callbacks import bj

CAL = calendar()


@pytest.fixture
def rules(tmp_path: Path) -> CampaignRules:
    return resolve({}, make_settings(tmp_path))


def with_(rules: CampaignRules, **changes: Any) -> CampaignRules:
    return CampaignRules.model_validate({**rules.model_dump(), **changes})


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        (bj(2025, 9, 30, 8, 59), False),  # before the morning window
        (bj(2025, 9, 30, 9, 0), True),  # the window opens (inclusive)
        (bj(2025, 9, 30, 11, 59), True),
        (bj(2025, 9, 30, 12, 0), False),  # the end is exclusive: lunch
        (bj(2025, 9, 30, 13, 59), False),
        (bj(2025, 9, 30, 14, 0), True),
        (bj(2025, 9, 30, 17, 59), True),
        (bj(2025, 9, 30, 18, 0), False),
        (bj(2025, 9, 30, 21, 0), False),
    ],
)
def test_rule8_only_inside_the_daily_windows_in_beijing_time(
    rules: CampaignRules, when: dt.datetime, allowed: bool
) -> None:
    assert (why_not_now(rules, when, CAL, BEIJING) is None) is allowed


def test_rule8_window_is_beijing_time_not_utc(rules: CampaignRules) -> None:
    """10:00 UTC is 18:00 in Beijing: closed, although 10:00 is inside a window."""
    utc_ten = dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)
    assert why_not_now(rules, utc_ten, CAL, BEIJING) == "outside the call windows"
    assert why_not_now(rules, dt.datetime(2025, 9, 30, 1, 0, tzinfo=dt.UTC), CAL, BEIJING) is None


@pytest.mark.parametrize(
    ("day", "allowed"),
    [
        ((2025, 10, 1), False),  # 国庆 holiday (a Wednesday)
        ((2025, 10, 8), False),  # still the holiday
        ((2025, 9, 28), True),  # 调休: a Sunday that is a working day
        ((2025, 10, 11), True),  # 调休 Saturday
        ((2025, 10, 12), False),  # ordinary Sunday
        ((2026, 5, 1), False),  # 劳动节
    ],
)
def test_rule4_8_working_days_follow_the_official_calendar(
    rules: CampaignRules, day: tuple[int, int, int], allowed: bool
) -> None:
    when = bj(*day, 10, 0)
    assert (why_not_now(rules, when, CAL, BEIJING) is None) is allowed


def test_rule8_weekend_allowed_when_campaign_does_not_ask_working_days(
    rules: CampaignRules,
) -> None:
    every_day = with_(rules, working_days_only=False)
    assert why_not_now(every_day, bj(2025, 10, 1, 10), CAL, BEIJING) is None


def test_campaign_dates_bound_the_calls(rules: CampaignRules) -> None:
    dated = with_(rules, start_date="2025-10-09", end_date="2025-10-10")
    assert why_not_now(dated, bj(2025, 9, 30, 10), CAL, BEIJING) == (
        "before the campaign's start date"
    )
    assert why_not_now(dated, bj(2025, 10, 9, 10), CAL, BEIJING) is None
    assert why_not_now(dated, bj(2025, 10, 10, 17, 59), CAL, BEIJING) is None
    assert why_not_now(dated, bj(2025, 10, 11, 10), CAL, BEIJING) == (
        "after the campaign's end date"
    )


def test_next_dial_time_inside_a_window_is_now(rules: CampaignRules) -> None:
    now = bj(2025, 9, 30, 10, 17)
    assert next_dial_time(rules, now, CAL, BEIJING) == now


def test_next_dial_time_skips_lunch_evening_and_the_golden_week(rules: CampaignRules) -> None:
    assert next_dial_time(rules, bj(2025, 9, 30, 12, 30), CAL, BEIJING) == bj(2025, 9, 30, 14)
    # Tuesday evening before 国庆: the next working day is Thursday 9 October
    assert next_dial_time(rules, bj(2025, 9, 30, 18, 0), CAL, BEIJING) == bj(2025, 10, 9, 9)
    # Friday evening → the 调休 Saturday 11 October
    assert next_dial_time(rules, bj(2025, 10, 10, 19), CAL, BEIJING) == bj(2025, 10, 11, 9)


def test_next_dial_time_respects_start_end_and_not_after(rules: CampaignRules) -> None:
    dated = with_(rules, start_date="2025-10-09", end_date="2025-10-09")
    assert next_dial_time(dated, bj(2025, 9, 1, 3), CAL, BEIJING) == bj(2025, 10, 9, 9)
    assert next_dial_time(dated, bj(2025, 10, 9, 18), CAL, BEIJING) is None
    assert next_dial_time(rules, bj(2025, 9, 30, 18), CAL, BEIJING,
                          not_after=bj(2025, 10, 8, 23)) is None


def test_deadline_in_working_days_ends_at_local_midnight(rules: CampaignRules) -> None:
    with_deadline = with_(rules, deadline_working_days=2)
    # created Tue 30 Sep: working days 9 Oct (1), 10 Oct (2) → until the end of 10 October
    assert task_deadline(with_deadline, bj(2025, 9, 30, 16), CAL, BEIJING) == bj(2025, 10, 11)
    assert end_of_day(dt.date(2025, 10, 10), BEIJING) == bj(2025, 10, 11)
    assert task_deadline(rules, bj(2025, 9, 30), CAL, BEIJING) is None


def test_rules_reject_overlapping_or_malformed_windows(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(RulesError, match="overlap"):
        resolve({"windows": ["09:00-12:00", "11:00-13:00"]}, settings)
    with pytest.raises(RulesError, match="HH:MM"):
        resolve({"windows": ["9-12"]}, settings)
    with pytest.raises(RulesError, match="trunk"):
        resolve({"trunk": "nowhere"}, settings)
    with pytest.raises(RulesError, match="end_date"):
        resolve({"start_date": "2025-10-09", "end_date": "2025-10-01"}, settings)


def test_rules_fill_unset_fields_from_the_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, callback_max_attempts=5)
    rules = resolve({"retry_minutes": {"busy": 5}}, settings)
    assert rules.max_attempts == 5
    assert rules.retry_minutes["busy"] == 5
    assert rules.retry_minutes["no_answer"] == settings.callback_retry_minutes["no_answer"]
    assert rules.windows == ["09:00-12:00", "14:00-18:00"]


def test_a_window_may_run_to_the_end_of_the_day(tmp_path: Path) -> None:
    rules = resolve({"windows": ["20:00-24:00"], "working_days_only": False},
                    make_settings(tmp_path))
    assert rules.windows == ["20:00-24:00"]
    assert why_not_now(rules, bj(2025, 10, 1, 23, 59), CAL, BEIJING) is None
    assert next_dial_time(rules, bj(2025, 10, 1, 19), CAL, BEIJING) == bj(2025, 10, 1, 20)
    assert next_dial_time(rules, bj(2025, 10, 2, 0, 0), CAL, BEIJING) == bj(2025, 10, 2, 20)
