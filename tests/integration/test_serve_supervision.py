"""`hotline serve` supervises its workers (issue 8): a worker that fails after starting is
logged and restarted with backoff while FastAGI keeps answering surveys and readiness names the
failing worker; only a worker that cannot start at all (missing prompts) stops the service."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ivr.agi.simulated import SimulatedCaller, environment_lines, fastagi_call
from service import serve as serve_module
from service import supervisor
from service.context import AppContext
from tests.conftest import make_settings

RUNS: list[int] = []


async def crashing(ctx: AppContext, stopping: asyncio.Event) -> None:
    """A worker that starts, then fails (as the forwarder did on an OverflowError)."""
    RUNS.append(1)
    await asyncio.sleep(0.05)
    raise OverflowError("int too large to convert to float")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_BASE", 0.1)
    monkeypatch.setattr(supervisor, "BACKOFF_MAX", 0.4)


async def test_a_failing_worker_is_restarted_and_surveys_go_on(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, fast_backoff: None
) -> None:
    RUNS.clear()
    monkeypatch.setattr(serve_module, "WORKERS", [
        (flag, f"{__name__}:crashing" if flag == "serve_forwarder" else target)
        for flag, target in serve_module.WORKERS
    ])
    http, agi = _free_port(), _free_port()
    settings = make_settings(
        tmp_path, database_url=database_url, http_port=http, fastagi_port=agi,
        fastagi_check_prompts=False, serve_scheduler=False, serve_reports=False,
        serve_bad_ratings=False,
    )
    stopping = asyncio.Event()
    service = asyncio.create_task(serve_module.serve(settings, stopping))
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            if len(RUNS) >= 3:
                break
        assert len(RUNS) >= 3, "the failing worker was not restarted"
        assert not service.done()
        for n in range(3):  # the survey answers all along
            caller = SimulatedCaller(keys=["2"], linkedid=f"77.{n}")
            await fastagi_call("127.0.0.1", agi, caller, environment_lines(uniqueid=f"77.{n}"))
            assert caller.variables.get("SURVEY_RESULT") == "2"
        status, body = await asyncio.to_thread(_ready, http)
        assert status == 503 and "forwarder" in body["error"]["message"]
        assert "OverflowError" in body["error"]["message"]
    finally:
        stopping.set()
        ok = await asyncio.wait_for(service, 30)
    assert ok  # restarted, never a reason to stop the service


async def test_a_healthy_service_is_ready_and_names_its_workers(
    tmp_path: Path, database_url: str
) -> None:
    http = _free_port()
    settings = make_settings(
        tmp_path, database_url=database_url, http_port=http, fastagi_port=_free_port(),
        fastagi_check_prompts=False, serve_scheduler=False, serve_reports=False,
        serve_bad_ratings=False, serve_forwarder=False, serve_call_ledger=False,
    )
    stopping = asyncio.Event()
    service = asyncio.create_task(serve_module.serve(settings, stopping))
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            try:
                status, body = await asyncio.to_thread(_ready, http)
                break
            except OSError:
                continue
        assert status == 200
        assert {name: w["state"] for name, w in body["workers"].items()} == {
            "http": "running", "fastagi": "running", "default_ratings": "running"}
    finally:
        stopping.set()
        assert await asyncio.wait_for(service, 30)


async def test_a_worker_that_cannot_start_stops_the_service(
    tmp_path: Path, database_url: str
) -> None:
    """Missing prompts: every caller would be recorded not rated, then defaulted. Stop."""
    settings = make_settings(
        tmp_path, database_url=database_url, http_port=_free_port(), fastagi_port=_free_port(),
        serve_scheduler=False, serve_reports=False, serve_bad_ratings=False,
        serve_forwarder=False, prompts_dir=str(tmp_path / "no-prompts"),
    )
    ok = await asyncio.wait_for(serve_module.serve(settings, asyncio.Event()), 30)
    assert ok is False
