"""One dial attempt (DOMAIN.md "Asterisk facts": Originate with Async reports
OriginateResponse Reason 4 answered, 5 busy, 3 no answer, 8 congestion, 0 other; a client
that re-sends after a reconnect can dial a citizen twice — so a lost attempt is reconciled,
never re-sent) and rule 5 (every attempt ends with an outcome)."""

from __future__ import annotations

import pytest

from callback_scheduler.attempt import (
    AttemptMachine,
    Disconnected,
    Hangup,
    IvrResult,
    OriginateResponse,
    Overdue,
    Reconciled,
    outcome_for_failure,
)
from callback_scheduler.lifecycle import AttemptStatus
from callback_scheduler.rules import Outcome


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [(5, Outcome.BUSY), (3, Outcome.NO_ANSWER), (8, Outcome.CONGESTION)],
)
def test_originate_reason_gives_the_outcome(reason: int, outcome: Outcome) -> None:
    m = AttemptMachine()
    assert m.handle(OriginateResponse(reason=reason)) is outcome
    assert m.status is AttemptStatus.ENDED and m.reason == reason


@pytest.mark.parametrize("reason", [0, 1, 2])
def test_vague_reason_waits_briefly_for_the_hangup_cause(reason: int) -> None:
    """Asterisk 22 reports a carrier's 486 Busy as Reason 0, and the Hangup (cause 17) may
    come after the OriginateResponse."""
    m = AttemptMachine()
    assert m.handle(OriginateResponse(reason=reason)) is None and m.awaiting_cause
    assert m.handle(Hangup(cause=17)) is Outcome.BUSY
    m = AttemptMachine()
    m.handle(OriginateResponse(reason=reason))
    assert m.handle(Overdue()) is Outcome.FAILED  # no cause came: other failure
    m = AttemptMachine()
    m.handle(OriginateResponse(reason=reason))
    assert m.handle(Disconnected()) is Outcome.FAILED  # known failed: not "lost"


def test_vague_reason_is_refined_by_the_hangup_cause() -> None:
    """Asterisk hangs the failed channel up (Hangup with cause) before OriginateResponse."""
    m = AttemptMachine()
    assert m.handle(Hangup(cause=17)) is None  # USER_BUSY; wait for the response
    assert m.status is AttemptStatus.DIALING
    assert m.handle(OriginateResponse(reason=0)) is Outcome.BUSY
    assert outcome_for_failure(0, 34) is Outcome.CONGESTION
    assert outcome_for_failure(0, 19) is Outcome.NO_ANSWER
    assert outcome_for_failure(5, 16) is Outcome.BUSY  # a specific reason wins
    assert outcome_for_failure(0, 1) is Outcome.FAILED  # unallocated number


def test_answered_and_rated_call() -> None:
    m = AttemptMachine()
    assert m.handle(OriginateResponse(reason=4, success=True)) is None
    assert m.status is AttemptStatus.ANSWERED
    assert m.handle(IvrResult(Outcome.RATED)) is None
    assert m.handle(Hangup(cause=16)) is Outcome.RATED


def test_answered_then_hung_up_before_rating() -> None:
    m = AttemptMachine()
    m.handle(OriginateResponse(reason=4, success=True))
    assert m.handle(Hangup(cause=16)) is Outcome.ANSWERED_NO_RATING


def test_ivr_result_after_the_hangup_upgrades_the_outcome_once() -> None:
    """The AGI may finish its database write after AMI reported the Hangup."""
    m = AttemptMachine()
    m.handle(OriginateResponse(reason=4, success=True))
    m.handle(Hangup(cause=16))
    assert m.handle(IvrResult(Outcome.RATED)) is Outcome.RATED
    assert m.handle(IvrResult(Outcome.RATED)) is None
    assert m.handle(Hangup(cause=16)) is None  # duplicates after the end are ignored


def test_answered_hangup_seen_before_the_success_response() -> None:
    m = AttemptMachine()
    m.handle(Hangup(cause=16))
    assert m.handle(OriginateResponse(reason=4, success=True)) is Outcome.ANSWERED_NO_RATING


def test_do_not_call_key_ends_as_do_not_call() -> None:
    m = AttemptMachine()
    m.handle(OriginateResponse(reason=4, success=True))
    m.handle(IvrResult(Outcome.DO_NOT_CALL))
    assert m.handle(Hangup(cause=16)) is Outcome.DO_NOT_CALL


def test_ivr_cannot_report_a_dial_outcome() -> None:
    with pytest.raises(ValueError, match="cannot report"):
        AttemptMachine().handle(IvrResult(Outcome.BUSY))


def test_disconnect_while_dialing_then_channel_gone_is_unknown() -> None:
    m = AttemptMachine()
    assert m.handle(Disconnected()) is None
    assert m.status is AttemptStatus.LOST
    assert m.handle(Reconciled(alive=False)) is Outcome.UNKNOWN


def test_disconnect_then_channel_found_keeps_watching() -> None:
    m = AttemptMachine()
    m.handle(Disconnected())
    assert m.handle(Reconciled(alive=True, up=True)) is None
    assert m.status is AttemptStatus.ANSWERED
    assert m.handle(Hangup(cause=16)) is Outcome.ANSWERED_NO_RATING


def test_disconnect_after_answer_then_gone_is_answered_no_rating() -> None:
    """Known to have been answered: say so, rather than unknown."""
    m = AttemptMachine()
    m.handle(OriginateResponse(reason=4, success=True))
    m.handle(Disconnected())
    assert m.handle(Reconciled(alive=False)) is Outcome.ANSWERED_NO_RATING


def test_events_after_reconnect_still_end_a_lost_attempt() -> None:
    m = AttemptMachine()
    m.handle(Disconnected())
    assert m.handle(OriginateResponse(reason=5)) is Outcome.BUSY


def test_no_response_in_time_is_reconciled_like_a_disconnect() -> None:
    m = AttemptMachine()
    m.handle(Overdue())
    assert m.status is AttemptStatus.LOST
    assert m.handle(Reconciled(alive=True)) is None
    assert m.status is AttemptStatus.DIALING
    m.handle(Overdue())
    assert m.handle(Reconciled(alive=False)) is Outcome.UNKNOWN


def test_lost_attempt_with_a_known_cause_uses_it() -> None:
    m = AttemptMachine()
    m.handle(Hangup(cause=19))
    m.handle(Disconnected())
    assert m.handle(Reconciled(alive=False)) is Outcome.NO_ANSWER


def test_reconciled_when_not_lost_changes_nothing() -> None:
    m = AttemptMachine()
    assert m.handle(Reconciled(alive=False)) is None
    assert m.status is AttemptStatus.DIALING
