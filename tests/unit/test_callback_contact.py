"""The contact policy's pure decision (DOMAIN.md rule 8 "不得骚扰"; issue 10)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from callback_scheduler.contact import BUSY_RECHECK, CitizenLoad, ContactLimits, hold_until
from tests.helpers.callbacks import bj

TZ = ZoneInfo("Asia/Shanghai")
LIMITS = ContactLimits(per_day=2, per_week=3)
NOW = bj(2025, 9, 30, 10)


def test_free_citizen_may_be_called() -> None:
    assert hold_until(CitizenLoad(), LIMITS, NOW, TZ) is None


def test_a_call_in_progress_holds_every_other_task_for_that_citizen() -> None:
    load = CitizenLoad(in_progress=1, started=[NOW])
    assert hold_until(load, LIMITS, NOW, TZ) == NOW + BUSY_RECHECK


def test_day_cap_counts_the_beijing_day_and_waits_for_the_next_one() -> None:
    load = CitizenLoad(started=[bj(2025, 9, 30, 9), bj(2025, 9, 30, 9, 30)])
    assert hold_until(load, LIMITS, NOW, TZ) == bj(2025, 10, 1, 0)
    yesterday = CitizenLoad(started=[bj(2025, 9, 29, 23), bj(2025, 9, 29, 23, 30)])
    assert hold_until(yesterday, LIMITS, NOW, TZ) is None


def test_week_cap_waits_until_the_oldest_call_leaves_the_seven_days() -> None:
    load = CitizenLoad(started=[bj(2025, 9, 24, 11), bj(2025, 9, 26, 10), bj(2025, 9, 29, 10)])
    assert hold_until(load, LIMITS, NOW, TZ) == bj(2025, 10, 1, 11)
    old = CitizenLoad(started=[bj(2025, 9, 20, 11), bj(2025, 9, 26, 10), bj(2025, 9, 29, 10)])
    assert hold_until(old, LIMITS, NOW, TZ) is None
    assert dt.timedelta(days=7) == bj(2025, 10, 1, 11) - bj(2025, 9, 24, 11)
