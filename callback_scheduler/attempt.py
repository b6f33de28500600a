"""One dial attempt, as a pure state machine fed with what Asterisk reports.

Asterisk facts (DOMAIN.md): with ``Async: true`` an Originate reports ``OriginateResponse``
with a Reason — 4 answered, 5 busy, 3 no answer, 8 congestion, 0 other. A failed channel also
produces a ``Hangup`` event with a Q.850 cause, which refines a vague Reason. The outcome of
an attempt lost in an AMI disconnect (or with no news for too long) is not guessed: the
attempt waits in ``lost`` until it is reconciled — its channel found again by ChannelId, or
declared gone, and then ``unknown`` (retried only after the retry delay, never re-sent).

States: dialing → answered → ended, and dialing/answered ⇄ lost → ended. The Hangup of a failed
channel and the OriginateResponse come in either order; a vague Reason waits for the cause.
"""

from __future__ import annotations

from dataclasses import dataclass

from callback_scheduler.lifecycle import AttemptStatus
from callback_scheduler.rules import Outcome

ANSWERED_REASON = 4
#: how long a vague failure waits for its Hangup cause (the events come within milliseconds)
CAUSE_WAIT_SECONDS = 2.0

#: OriginateResponse Reason → outcome (4, answered, is a state change, not an outcome)
REASON_OUTCOMES: dict[int, Outcome] = {
    5: Outcome.BUSY,
    3: Outcome.NO_ANSWER,
    8: Outcome.CONGESTION,
    0: Outcome.FAILED,
}

#: Q.850 hangup causes worth telling apart; any other cause before an answer is "failed"
CAUSE_OUTCOMES: dict[int, Outcome] = {
    17: Outcome.BUSY,  # USER_BUSY
    18: Outcome.NO_ANSWER,  # NO_USER_RESPONSE
    19: Outcome.NO_ANSWER,  # NO_ANSWER
    20: Outcome.NO_ANSWER,  # SUBSCRIBER_ABSENT (phone off)
    21: Outcome.NO_ANSWER,  # CALL_REJECTED
    34: Outcome.CONGESTION,  # NORMAL_CIRCUIT_CONGESTION
    38: Outcome.CONGESTION,  # NETWORK_OUT_OF_ORDER
    41: Outcome.CONGESTION,  # NORMAL_TEMPORARY_FAILURE
    42: Outcome.CONGESTION,  # SWITCH_CONGESTION
    44: Outcome.CONGESTION,  # REQUESTED_CHAN_UNAVAIL
    47: Outcome.CONGESTION,  # RESOURCE_UNAVAIL
}

#: what the follow-up IVR may report about an answered call
IVR_OUTCOMES = frozenset({Outcome.RATED, Outcome.DO_NOT_CALL})


def outcome_for_cause(cause: int | None) -> Outcome:
    if cause is None:
        return Outcome.UNKNOWN
    return CAUSE_OUTCOMES.get(cause, Outcome.FAILED)


def outcome_for_failure(reason: int | None, cause: int | None) -> Outcome:
    """An unanswered Originate: a specific Reason wins; a vague one (0, or one Asterisk adds
    later) is refined by the Hangup cause when there is one."""
    specific = REASON_OUTCOMES.get(reason) if reason is not None else None
    if specific is not None and specific is not Outcome.FAILED:
        return specific
    if cause is not None:
        return outcome_for_cause(cause)
    return Outcome.FAILED


# ----------------------------------------------------------------------------- events
@dataclass(frozen=True)
class OriginateResponse:
    reason: int
    success: bool = False  # Response: Success (Asterisk sends Reason 4 with it)


@dataclass(frozen=True)
class Hangup:
    cause: int | None


@dataclass(frozen=True)
class IvrResult:
    """The follow-up IVR stored the citizen's answer (may arrive before or after Hangup)."""

    outcome: Outcome


@dataclass(frozen=True)
class Disconnected:
    """AMI went away: events for this call may have been missed."""


@dataclass(frozen=True)
class Overdue:
    """No OriginateResponse within ring time + grace, or a call longer than the maximum."""


@dataclass(frozen=True)
class Reconciled:
    """After a reconnect or when overdue: was the channel found by its ChannelId?"""

    alive: bool
    up: bool = False  # found and answered (channel state Up)


Event = OriginateResponse | Hangup | IvrResult | Disconnected | Overdue | Reconciled


class AttemptMachine:
    def __init__(self, status: AttemptStatus = AttemptStatus.DIALING) -> None:
        self.status = status
        self.answered = status is AttemptStatus.ANSWERED
        self.outcome: Outcome | None = None
        self.reason: int | None = None
        self.cause: int | None = None
        self.hung_up = False
        self.ivr: Outcome | None = None
        #: OriginateResponse said "failed" without saying why; the Hangup cause may follow
        self.awaiting_cause = False

    @property
    def ended(self) -> bool:
        return self.status is AttemptStatus.ENDED

    def handle(self, event: Event) -> Outcome | None:
        """Apply ``event``; returns the outcome the first time the attempt ends, else None.
        Events after the end are ignored, except an IVR result that upgrades
        "answered, no rating" (the IVR may finish its write after the Hangup)."""
        if self.ended:
            if (
                isinstance(event, IvrResult)
                and event.outcome in IVR_OUTCOMES
                and self.outcome is Outcome.ANSWERED_NO_RATING
            ):
                self.ivr = self.outcome = event.outcome
                return self.outcome
            return None
        match event:
            case OriginateResponse(reason=reason, success=success):
                self.reason = reason
                # the IVR ran, so the citizen answered, whatever AMI reports (found by the
                # property tests: a failure Reason after the IVR's result ended it "failed")
                if success or reason == ANSWERED_REASON or self.ivr is not None:
                    self.answered = True
                    self.status = AttemptStatus.ANSWERED
                    return self._end(self._answered_outcome()) if self.hung_up else None
                if REASON_OUTCOMES.get(reason, Outcome.FAILED) is Outcome.FAILED and (
                    self.cause is None
                ):
                    # a vague Reason (Asterisk 22 reports a 486 Busy as Reason 0): the Hangup
                    # with its cause may still be on its way — wait for it, briefly
                    self.awaiting_cause = True
                    return None
                return self._end(outcome_for_failure(reason, self.cause))
            case Hangup(cause=cause):
                self.cause = cause
                self.hung_up = True
                if self.answered:
                    return self._end(self._answered_outcome())
                if self.awaiting_cause:
                    return self._end(outcome_for_failure(self.reason, cause))
                # unanswered: OriginateResponse follows with the Reason; wait for it
                return None
            case IvrResult(outcome=outcome):
                if outcome not in IVR_OUTCOMES:
                    raise ValueError(f"the IVR cannot report {outcome}")
                if self.ivr is not Outcome.RATED:  # "rated" beats "do_not_call", as in the DB
                    self.ivr = outcome
                self.answered = True  # only an answered call reaches the IVR
                self.awaiting_cause = False  # so it did not fail, whatever Reason came
                if self.status is AttemptStatus.DIALING:
                    self.status = AttemptStatus.ANSWERED
                return None
            case Disconnected() | Overdue():
                if self.awaiting_cause:  # known to have failed; only the detail is missing
                    return self._end(outcome_for_failure(self.reason, None))
                self.status = AttemptStatus.LOST
                return None
            case Reconciled(alive=alive, up=up):
                if self.status is not AttemptStatus.LOST:
                    return None
                if alive:
                    self.answered = self.answered or up
                    self.status = AttemptStatus.ANSWERED if self.answered else AttemptStatus.DIALING
                    return None
                return self._end(self._lost_outcome())
        raise TypeError(f"not an attempt event: {event!r}")  # pragma: no cover

    def _answered_outcome(self) -> Outcome:
        return self.ivr or Outcome.ANSWERED_NO_RATING

    def _lost_outcome(self) -> Outcome:
        """The channel is gone and its last events were missed: say only what is known."""
        if self.answered:
            return self._answered_outcome()
        if self.hung_up and self.cause is not None:
            return outcome_for_cause(self.cause)
        return Outcome.UNKNOWN

    def _end(self, outcome: Outcome) -> Outcome:
        self.status = AttemptStatus.ENDED
        self.outcome = outcome
        return outcome
