"""Keeping ``hotline serve``'s workers alive (issue 8): a worker that fails after starting is
logged and started again with backoff, and readiness shows it; only a worker that cannot start
at all (:class:`CannotStart`, e.g. missing prompts) stops the service. So the survey never
depends on the forwarder, the scheduler or the HTTP API being alive.

:class:`WorkerState` is the pure part (data in, decisions out): what a failure means and how
long to wait; :func:`supervise` is the thin asyncio adapter around one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("hotline.service")

#: first pause before a failed worker is started again; doubled per failure in a row
BACKOFF_BASE = 1.0
BACKOFF_MAX = 60.0
#: a worker that ran this long without failing starts its backoff from the beginning again
HEALTHY_AFTER = 60.0

RUNNING = "running"
RESTARTING = "restarting"
STOPPED = "stopped"
FAILED = "failed"


class CannotStart(RuntimeError):
    """A worker's configuration or environment makes it unable to start at all: restarting it
    cannot help, and running without it would be wrong (missing prompts would record every
    caller as not rated), so the service stops."""


@dataclass
class WorkerState:
    name: str
    state: str = RUNNING
    failures: int = 0  # in a row
    restarts: int = 0
    last_error: str | None = None
    started_at: float = 0.0

    def started(self, now: float) -> None:
        self.state = RUNNING
        self.started_at = now

    def failed(self, error: BaseException, now: float) -> float | None:
        """A failure: the pause before the next start, or None when the service must stop."""
        self.last_error = f"{type(error).__name__}: {error}"[:300]
        if isinstance(error, CannotStart):
            self.state = FAILED
            return None
        if now - self.started_at >= HEALTHY_AFTER:
            self.failures = 0
        self.failures += 1
        self.restarts += 1
        self.state = RESTARTING
        return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(self.failures - 1, 16)))

    @property
    def ready(self) -> bool:
        return self.state == RUNNING

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error}


async def supervise(
    state: WorkerState,
    start: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run the worker until the service stops; raises :class:`CannotStart` (the service then
    stops). A worker that returns on its own before the stop is started again as well."""
    while not stopping.is_set():
        state.started(clock())
        try:
            await start()
            if stopping.is_set():
                break
            error: BaseException = RuntimeError("worker returned before the service stopped")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        pause = state.failed(error, clock())
        if pause is None:
            log.error("worker cannot start; stopping the service", exc_info=error,
                      extra={"worker": state.name})
            raise error
        log.error("worker failed; restarting", exc_info=error,
                  extra={"worker": state.name, "in_seconds": pause, "restarts": state.restarts})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=pause)
    state.state = STOPPED
