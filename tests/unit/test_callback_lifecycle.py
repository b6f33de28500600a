"""DOMAIN.md rule 5 (a callback that cannot reach the citizen is retried within limits and then
handed to a person, never silently dropped) and rule 8 (attempt caps): what happens to a task
after each outcome, and the campaign status machine (pausing stops new dials at once)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from callback_scheduler.lifecycle import (
    CampaignStatus,
    TaskStatus,
    TransitionError,
    Unreachable,
    campaign_after,
    plan_after_attempt,
)
from callback_scheduler.rules import RETRYABLE, CampaignRules, Outcome, resolve
from hotline.clock import BEIJING
from hotline.workdays import calendar
from tests.conftest import make_settings
from tests.helpers.callbacks import bj

CAL = calendar()


@pytest.fixture
def rules(tmp_path: Path) -> CampaignRules:
    return resolve({"max_attempts": 3}, make_settings(tmp_path))


def plan(rules: CampaignRules, outcome: Outcome, attempts: int, now: dt.datetime,
         deadline: dt.datetime | None = None):  # type: ignore[no-untyped-def]
    return plan_after_attempt(outcome, attempts_made=attempts, max_attempts=rules.max_attempts,
                              now=now, deadline=deadline, rules=rules, workdays=CAL, tz=BEIJING)


@pytest.mark.parametrize("outcome", sorted(RETRYABLE))
def test_rule5_each_outcome_waits_its_own_retry_delay(
    rules: CampaignRules, outcome: Outcome
) -> None:
    now = bj(2025, 9, 30, 9, 0)
    p = plan(rules, outcome, 1, now)
    assert p.status is TaskStatus.PENDING
    expected = now + dt.timedelta(minutes=rules.retry_minutes[outcome.value])
    # the delay, moved on to the next window if it lands outside one
    assert p.next_attempt_at is not None and p.next_attempt_at >= expected


def test_rule5_busy_retry_lands_in_the_next_window(rules: CampaignRules) -> None:
    p = plan(rules, Outcome.BUSY, 1, bj(2025, 9, 30, 11, 50))  # +30 min = 12:20, lunch
    assert p.next_attempt_at == bj(2025, 9, 30, 14, 0)


def test_rule5_after_the_last_attempt_the_task_goes_to_the_manual_list(
    rules: CampaignRules,
) -> None:
    p = plan(rules, Outcome.NO_ANSWER, 3, bj(2025, 9, 30, 10))
    assert (p.status, p.outcome) == (TaskStatus.UNREACHABLE, Unreachable.MAX_ATTEMPTS)


def test_rule5_past_the_deadline_the_task_goes_to_the_manual_list(rules: CampaignRules) -> None:
    now = bj(2025, 9, 30, 17, 30)
    p = plan(rules, Outcome.BUSY, 1, now, deadline=bj(2025, 9, 30, 17, 45))
    assert (p.status, p.outcome) == (TaskStatus.UNREACHABLE, Unreachable.DEADLINE)
    # a deadline before the next window (the golden week) counts as no window left
    p = plan(rules, Outcome.BUSY, 1, bj(2025, 9, 30, 17, 50), deadline=bj(2025, 10, 5))
    assert (p.status, p.outcome) == (TaskStatus.UNREACHABLE, Unreachable.NO_WINDOW)


def test_rated_and_do_not_call_end_the_task(rules: CampaignRules) -> None:
    assert plan(rules, Outcome.RATED, 1, bj(2025, 9, 30, 10)).status is TaskStatus.COMPLETED
    p = plan(rules, Outcome.DO_NOT_CALL, 1, bj(2025, 9, 30, 10))
    assert (p.status, p.outcome) == (TaskStatus.COMPLETED, "do_not_call")


def test_skipped_is_not_an_attempt_and_waits_for_the_next_window(rules: CampaignRules) -> None:
    """Skipped at the last check (window closed): the last allowed attempt is not spent."""
    p = plan(rules, Outcome.SKIPPED, 2, bj(2025, 9, 30, 18, 0))
    assert (p.status, p.next_attempt_at) == (TaskStatus.PENDING, bj(2025, 10, 9, 9))


@pytest.mark.parametrize(
    ("status", "action", "after"),
    [
        ("draft", "start", "running"),
        ("draft", "cancel", "cancelled"),
        ("running", "pause", "paused"),
        ("running", "start", "running"),
        ("paused", "start", "running"),
        ("paused", "pause", "paused"),
        ("running", "cancel", "cancelled"),
        ("paused", "cancel", "cancelled"),
        ("running", "finish", "finished"),
    ],
)
def test_campaign_status_moves(status: str, action: str, after: str) -> None:
    assert campaign_after(status, action) == CampaignStatus(after)


@pytest.mark.parametrize(
    ("status", "action"),
    [("draft", "pause"), ("finished", "start"), ("cancelled", "start"), ("cancelled", "pause"),
     ("finished", "cancel"), ("draft", "finish")],
)
def test_campaign_refuses_impossible_moves(status: str, action: str) -> None:
    with pytest.raises(TransitionError, match=status):
        campaign_after(status, action)


def test_rule5_standing_campaign_can_be_paused_but_never_cancelled() -> None:
    assert campaign_after("running", "pause", system=True) is CampaignStatus.PAUSED
    with pytest.raises(TransitionError):
        campaign_after("running", "cancel", system=True)
