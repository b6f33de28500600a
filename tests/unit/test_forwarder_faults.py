"""Issue 8, forwarder defects as pure functions: the backoff never overflows (defect 1), a
Retry-After is bounded (defect 1), a redirect is never an acknowledgement (defect 2), every
shipped profile says which answers mean "already have it" (defect 14), and the shared circuit
breaker (defect 12) decides when a failing endpoint may be tried again."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from forwarder.breaker import Breaker, State
from forwarder.outcome import Delivered, Retry, backoff, classify, retry_after_seconds
from forwarder.profile import builtin_names, load
from tests.conftest import make_settings


# ------------------------------------------------------------------ defect 1: backoff
@pytest.mark.parametrize("failures", [1_025, 1_100, 10**6, 10**12])
def test_backoff_after_a_week_of_failures_stays_at_the_cap(failures: int) -> None:
    """≈ 5 days of a provincial outage gave 2**1024: OverflowError killed the worker."""
    delays = [backoff(failures, 2.0, 600.0, random.Random(n)) for n in range(20)]
    assert all(300.0 <= d <= 600.0 for d in delays)


def test_retry_after_is_clamped_to_the_longest_backoff() -> None:
    # 12+ digits overflowed timedelta; an unbounded one paused every send for a day
    assert retry_after_seconds("999999999999999", cap=600.0) == 600.0
    assert retry_after_seconds("86400", cap=600.0) == 600.0
    assert retry_after_seconds("Fri, 31 Dec 9999 23:59:59 GMT", cap=600.0) == 600.0
    assert retry_after_seconds("7", cap=600.0) == 7.0
    assert retry_after_seconds("-5", cap=600.0) is None  # not delta-seconds: ignored


def test_classify_clamps_retry_after() -> None:
    cfg = load(make_settings(Path("/nonexistent"))).response
    outcome = classify(429, {"Retry-After": "9" * 40}, "", cfg, retry_after_cap=30.0)
    assert outcome == Retry("HTTP 429", 30.0)


# ------------------------------------------------------------------ defect 2: redirects
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failure_never_a_delivery(status: int) -> None:
    for name in builtin_names():
        cfg = load(make_settings(Path("/nonexistent"), forwarder_profile=name)).response
        outcome = classify(status, {"Location": "http://127.0.0.1:9/elsewhere"}, "", cfg)
        assert isinstance(outcome, Retry)
        assert outcome.redirect == "http://127.0.0.1:9/elsewhere"


# ------------------------------------------------------------------ defect 14: duplicates
@pytest.mark.parametrize("name", ["default", "sm2_envelope", "zhejiang"])
def test_every_shipped_profile_treats_already_have_it_as_delivered(name: str) -> None:
    """A resend after a timeout answered "duplicate" was dead-lettered and then blocked the
    rest of its case (per-case ordering)."""
    cfg = load(make_settings(Path("/nonexistent"), forwarder_profile=name)).response
    assert cfg.duplicate_statuses or cfg.duplicate_codes or cfg.duplicate_messages
    assert classify(409, {}, '{"code": "409", "msg": "数据重复"}', cfg) == Delivered()
    if cfg.code_field:
        body = '{"code": "1001", "msg": "该办件已评价，数据重复"}'
        assert classify(200, {}, body, cfg) == Delivered()


def test_duplicate_codes_and_messages_are_declared_by_the_profile() -> None:
    base = load(make_settings(Path("/nonexistent"), forwarder_profile="sm2_envelope")).response
    cfg = base.model_copy(update={"duplicate_codes": ["E_DUP"], "duplicate_messages": []})
    assert classify(200, {}, '{"code": "E_DUP", "msg": "x"}', cfg) == Delivered()
    # not declared: a refusal like any other
    assert not isinstance(classify(200, {}, '{"code": "E9", "msg": "数据重复"}', cfg), Delivered)


# ------------------------------------------------------------------ defect 12: breaker
def test_breaker_opens_after_consecutive_failures_and_probes_once() -> None:
    b = Breaker(failures_to_open=3, base=1.0, cap=8.0, rng=random.Random(0))
    t = 100.0
    assert b.allows(t) and b.state == State.CLOSED
    assert b.failure(t) is None and b.failure(t) is None
    b.success(t)  # a success in between: the count starts again
    assert b.failure(t) is None and b.failure(t) is None
    change = b.failure(t)
    assert change is not None and change.state == State.OPEN
    assert not b.allows(t + 0.1)  # nothing at all goes out while open
    wait = b.wait(t)
    assert 0.5 <= wait <= 1.0
    assert b.allows(t + wait) and b.state == State.HALF_OPEN  # one probe ...
    assert not b.allows(t + wait)  # ... and only one
    change = b.failure(t + wait)  # the probe failed: open again, for longer
    assert change is not None and change.state == State.OPEN
    assert 1.0 <= b.wait(t + wait) <= 2.0
    t2 = t + wait + b.wait(t + wait)
    assert b.allows(t2)
    change = b.success(t2)
    assert change is not None and change.state == State.CLOSED
    assert b.allows(t2) and b.allows(t2)


def test_breaker_state_changes_are_reported_once() -> None:
    b = Breaker(failures_to_open=2, base=1.0, cap=8.0, rng=random.Random(0))
    changes = [b.failure(0.0) for _ in range(10)]  # in flight when it opened: no new line
    assert [c.state for c in changes if c] == [State.OPEN]


def test_breaker_retry_after_opens_at_once_for_that_long_and_is_capped() -> None:
    b = Breaker(failures_to_open=5, base=1.0, cap=30.0, rng=random.Random(0))
    change = b.failure(0.0, retry_after=12.0)
    assert change is not None and change.state == State.OPEN
    assert b.wait(0.0) == pytest.approx(12.0)
    b.failure(1.0, retry_after=10**15)  # absurd: capped, never an overflow
    assert b.wait(1.0) == pytest.approx(30.0)


def test_breaker_never_overflows_after_endless_openings() -> None:
    b = Breaker(failures_to_open=1, base=2.0, cap=600.0, rng=random.Random(0))
    t = 0.0
    for _ in range(3000):
        b.failure(t)
        t += b.wait(t)
        assert b.allows(t)
    b.failure(t)
    assert 300.0 <= b.wait(t) <= 600.0
