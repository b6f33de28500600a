"""Lock-out after repeated failed logins (console.lockout), decision by decision."""

from __future__ import annotations

import datetime as dt

from console.lockout import Account, Policy, decide, is_locked

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
POLICY = Policy(max_failures=3, lock_minutes=15)


def test_wrong_passwords_count_up_then_lock() -> None:
    first = decide(Account(0, None), False, NOW, POLICY)
    assert (first.allowed, first.failed_logins, first.locked) == (False, 1, False)
    second = decide(Account(1, None), False, NOW, POLICY)
    assert second.failed_logins == 2 and not second.locked
    third = decide(Account(2, None), False, NOW, POLICY)
    assert third.locked and third.locked_until == NOW + dt.timedelta(minutes=15)


def test_while_locked_even_the_right_password_is_refused() -> None:
    locked = Account(0, NOW + dt.timedelta(minutes=5))
    outcome = decide(locked, True, NOW, POLICY)
    assert not outcome.allowed and outcome.locked
    assert is_locked(locked, NOW)


def test_after_the_lock_runs_out_the_right_password_works_and_resets() -> None:
    expired = Account(0, NOW - dt.timedelta(seconds=1))
    assert not is_locked(expired, NOW)
    outcome = decide(expired, True, NOW, POLICY)
    assert outcome.allowed and outcome.failed_logins == 0 and outcome.locked_until is None


def test_a_failure_after_an_expired_lock_starts_a_fresh_count() -> None:
    outcome = decide(Account(0, NOW - dt.timedelta(minutes=1)), False, NOW, POLICY)
    assert outcome.failed_logins == 1 and not outcome.locked


def test_success_resets_the_count() -> None:
    outcome = decide(Account(2, None), True, NOW, POLICY)
    assert outcome.allowed and outcome.failed_logins == 0
