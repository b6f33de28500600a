"""Lock-out after repeated failed logins: a pure decision, data in, decision out.

After ``max_failures`` wrong passwords in a row the account is locked for ``lock_minutes``;
while locked, even the right password is refused (otherwise the lock would not slow a guesser
down). A successful login resets the count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    max_failures: int
    lock_minutes: float


@dataclass(frozen=True)
class Account:
    failed_logins: int
    locked_until: dt.datetime | None


@dataclass(frozen=True)
class Outcome:
    allowed: bool  # the login succeeds
    failed_logins: int  # what to store
    locked_until: dt.datetime | None  # what to store
    locked: bool  # refused because the account is locked (now or by this attempt)


def is_locked(account: Account, now: dt.datetime) -> bool:
    return account.locked_until is not None and account.locked_until > now


def decide(account: Account, password_ok: bool, now: dt.datetime, policy: Policy) -> Outcome:
    if is_locked(account, now):
        return Outcome(False, account.failed_logins, account.locked_until, locked=True)
    if password_ok:
        return Outcome(True, 0, None, locked=False)
    # a lock that has run out starts a fresh count
    failures = 1 if account.locked_until is not None else account.failed_logins + 1
    if failures >= policy.max_failures:
        until = now + dt.timedelta(minutes=policy.lock_minutes)
        return Outcome(False, 0, until, locked=True)
    return Outcome(False, failures, None, locked=False)
