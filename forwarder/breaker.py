"""One circuit breaker per endpoint, shared by every record sent there (issue 8, defect 12).

Without it a failing endpoint received every due record at once, each failing on its own
schedule, one warning line each (≈ 97 requests/s against a receiver answering 500). With it:

* **closed** — everything goes; ``failures_to_open`` failures in a row (or one answer with a
  ``Retry-After``) open it;
* **open** — nothing is sent until the pause is over: ``backoff(openings)`` (exponential,
  capped at ``forwarder_backoff_max``, jittered) or the receiver's ``Retry-After`` (clamped to
  the same cap), whichever is longer;
* **half-open** — one record goes as a probe; its success closes the breaker, its failure
  opens it again for longer.

Pure: the caller passes the time (``loop.time()``) and gets decisions back; a state change is
returned so that the caller logs one line per change, never one per attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from .outcome import backoff


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Change:
    state: State
    #: seconds until a probe may go (open only)
    pause: float = 0.0
    failures: int = 0


class Breaker:
    def __init__(
        self,
        failures_to_open: int,
        base: float,
        cap: float,
        rng: random.Random | None = None,
    ) -> None:
        self.failures_to_open = max(1, failures_to_open)
        self.base, self.cap = base, cap
        self.rng = rng or random.Random()
        self.state = State.CLOSED
        self.failures = 0  # in a row, while closed
        self.openings = 0  # in a row, without a success between them
        self._until = 0.0  # open: when the probe may go
        self._probing = False  # half-open: the probe is on its way

    def wait(self, now: float) -> float:
        """Seconds before anything may be sent (0 when closed or a probe may go)."""
        if self.state == State.OPEN:
            return max(0.0, self._until - now)
        if self.state == State.HALF_OPEN and self._probing:
            # the probe's answer decides; look again shortly
            return min(self.base, self.cap)
        return 0.0

    def allows(self, now: float) -> bool:
        """May one request go now? In half-open, True once: that request is the probe."""
        if self.state == State.OPEN and now >= self._until:
            self.state, self._probing = State.HALF_OPEN, False
        if self.state == State.CLOSED:
            return True
        if self.state == State.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def abandon(self) -> None:
        """The request :meth:`allows` let through was not sent after all: a new probe may go."""
        if self.state == State.HALF_OPEN:
            self._probing = False

    def success(self, now: float) -> Change | None:
        if self.state == State.OPEN:
            return None  # sent before it opened: the pause stands
        self.failures = 0
        if self.state == State.HALF_OPEN:
            self.state, self.openings, self._probing = State.CLOSED, 0, False
            return Change(State.CLOSED)
        return None

    def failure(self, now: float, retry_after: float | None = None) -> Change | None:
        """A transient failure of a request to this endpoint (5xx, 408/429, timeout, refused
        connection, redirect). ``retry_after``: the receiver asked for that many seconds."""
        asked = None if retry_after is None else min(max(0.0, retry_after), self.cap)
        if self.state == State.OPEN:
            # sent before it opened: the pause stands, unless the receiver asked for more
            if asked is not None and now + asked > self._until:
                self._until = now + asked
            return None
        self.failures += 1
        if self.state == State.CLOSED and asked is None and self.failures < self.failures_to_open:
            return None
        return self._open(now, asked)

    def _open(self, now: float, asked: float | None) -> Change:
        self.openings += 1
        pause = backoff(self.openings, self.base, self.cap, self.rng)
        if asked is not None:
            pause = max(pause, asked)
        failures = self.failures
        self.state, self._until, self._probing, self.failures = State.OPEN, now + pause, False, 0
        return Change(State.OPEN, pause=pause, failures=failures)
