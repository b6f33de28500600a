"""The supervisor's pure decisions (service.supervisor.WorkerState): backoff, reset after a
healthy run, and which failures stop the service."""

from __future__ import annotations

import asyncio

from service import supervisor
from service.supervisor import CannotStart, WorkerState, supervise


def test_backoff_doubles_then_caps_and_resets_after_a_healthy_run() -> None:
    state = WorkerState("forwarder")
    pauses = []
    now = 0.0
    for _ in range(10):
        state.started(now)
        now += 1
        pauses.append(state.failed(ValueError("x"), now))
    assert pauses[:4] == [1.0, 2.0, 4.0, 8.0] and max(p or 0 for p in pauses) == 60.0
    assert state.state == "restarting" and not state.ready and state.restarts == 10
    state.started(now)
    assert state.ready
    assert state.failed(ValueError("y"), now + supervisor.HEALTHY_AFTER) == 1.0


def test_a_failure_after_10_000_in_a_row_still_has_a_bounded_pause() -> None:
    state = WorkerState("forwarder")
    for _ in range(10_000):
        state.started(0)
        pause = state.failed(ValueError("x"), 1)
    assert pause == supervisor.BACKOFF_MAX


def test_cannot_start_stops_the_service() -> None:
    state = WorkerState("fastagi")
    state.started(0)
    assert state.failed(CannotStart("prompts missing"), 0.1) is None
    assert state.state == "failed" and "prompts missing" in (state.last_error or "")


async def test_supervise_restarts_a_worker_that_returns_or_raises() -> None:
    runs: list[str] = []
    stopping = asyncio.Event()
    saved = supervisor.BACKOFF_BASE
    supervisor.BACKOFF_BASE = 0.01
    try:
        async def worker() -> None:
            runs.append("run")
            if len(runs) == 1:
                raise RuntimeError("boom")
            if len(runs) == 2:
                return  # returned before the stop: also restarted
            stopping.set()

        state = WorkerState("w")
        await asyncio.wait_for(supervise(state, worker, stopping), 5)
    finally:
        supervisor.BACKOFF_BASE = saved
    assert runs == ["run", "run", "run"] and state.state == "stopped" and state.restarts == 2
