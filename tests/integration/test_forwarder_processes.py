"""Forwarders as separate OS processes (``python -m forwarder``): two of them sharing a backlog
on PostgreSQL, and one killed with SIGKILL mid-batch and replaced."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from forwarder.simulated import (
    Arrival,
    Receiver,
    add_backlog,
    add_case_ratings,
)
from hotline.settings import PROJECT_ROOT
from service.context import AppContext
from storage.models import OutboxEntry, OutboxStatus
from tests.waiting import wait_until


def _env(settings_values: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env["HOTLINE_CONFIG"] = os.devnull
    env["HOTLINE_LOG_FORMAT"] = "json"
    for key, value in settings_values.items():
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        env[f"HOTLINE_{key.upper()}"] = text
    return env


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "forwarder"], cwd=PROJECT_ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when stopping hangs
            proc.kill()
            proc.wait()


async def _count(ctx: AppContext, status: str) -> int:
    async with ctx.db.sessions() as s:
        return int(await s.scalar(
            select(func.count()).select_from(OutboxEntry).where(OutboxEntry.status == status)
        ) or 0)


def _delivered_lines(log: Path) -> int:
    count = 0
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            fields = json.loads(line)
        except ValueError:
            continue
        if fields.get("event") == "batch sent":  # one line per batch, with its figures
            count += int(fields["delivered"])
    return count


def _values(rx: Receiver, ctx: AppContext, **overrides: Any) -> dict[str, Any]:
    s = ctx.settings
    names = [
        "database_url", "data_dir", "forwarder_endpoint", "forwarder_values",
        "forwarder_hmac_secret", "forwarder_batch_size", "forwarder_concurrency",
        "forwarder_request_timeout", "forwarder_backoff_base", "forwarder_backoff_max",
        "forwarder_lease_seconds", "forwarder_poll_interval",
    ]
    return {name: getattr(s, name) for name in names} | overrides


async def test_two_forwarder_processes_share_a_backlog_without_sending_twice(
    tmp_path: Path, postgres_url: str
) -> None:
    rng = random.Random(7)

    async def jittery(arrival: Arrival) -> web.StreamResponse | None:
        await asyncio.sleep(rng.uniform(0, 0.004))  # keep requests overlapping
        return None

    async with Receiver(behaviour=jittery) as rx:
        settings = rx.settings_for(tmp_path, postgres_url)
        ctx = AppContext.create(settings)
        procs: list[subprocess.Popen[bytes]] = []
        logs = [tmp_path / "fwd-a.log", tmp_path / "fwd-b.log"]
        try:
            rx.order = await add_backlog(ctx, 2500, second_every=5)
            total = sum(len(keys) for keys in rx.order.values())
            assert total == 3000
            env = _env(_values(rx, ctx, forwarder_batch_size=50, forwarder_concurrency=8))
            procs = [_spawn(env, log) for log in logs]
            await wait_until(
                lambda: _equals(ctx, OutboxStatus.DELIVERED, total), within=100
            )
        finally:
            for proc in procs:
                _stop(proc)
            await ctx.close()
    assert set(rx.stored) == {k for keys in rx.order.values() for k in keys}
    assert rx.concurrent == [], "a record was sent by two forwarders at the same time"
    assert max(rx.requests.values()) == 1, "a record was sent twice"
    rx.assert_clean()
    shares = [_delivered_lines(log) for log in logs]
    assert sum(shares) == 3000 and min(shares) > 0, f"work split {shares}"


async def _equals(ctx: AppContext, status: str, n: int) -> bool:
    return await _count(ctx, status) == n


async def test_sigkilled_forwarder_is_replaced_without_loss(
    tmp_path: Path, database_url: str
) -> None:
    # After 80 acknowledgements the receiver holds every answer back, so the kill is sure to
    # land while a batch is claimed and unacknowledged (not between two batches).
    stalled = asyncio.Event()
    release = asyncio.Event()

    async def slow(arrival: Arrival) -> web.StreamResponse | None:
        await asyncio.sleep(0.02)
        if stalled.is_set():
            await release.wait()
        return None

    async with Receiver(behaviour=slow) as rx:
        settings = rx.settings_for(tmp_path, database_url)
        ctx = AppContext.create(settings)
        log = tmp_path / "fwd.log"
        proc = None
        try:
            rx.order = await add_case_ratings(ctx, 300, second_every=3)
            env = _env(_values(rx, ctx, forwarder_lease_seconds=2.0,
                               forwarder_request_timeout=0.5))
            proc = _spawn(env, log)
            await wait_until(lambda: _acked_at_least(rx, 80), within=60)
            stalled.set()
            await wait_until(lambda: _at_least(ctx, OutboxStatus.INFLIGHT, 1), within=30)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            async with ctx.db.sessions() as s:
                before = {
                    f"{p}:{a}" for p, a in (await s.execute(
                        select(OutboxEntry.project_no, OutboxEntry.assess_number)
                        .where(OutboxEntry.status == OutboxStatus.DELIVERED)
                    )).all()
                }
                inflight = await _count(ctx, OutboxStatus.INFLIGHT)
            assert inflight > 0, "the kill did not land mid-batch"
            stalled.clear()
            release.set()
            proc = _spawn(env, log)
            total = sum(len(keys) for keys in rx.order.values())
            await wait_until(lambda: _equals(ctx, OutboxStatus.DELIVERED, total), within=60)
        finally:
            if proc is not None:
                _stop(proc)
            await ctx.close()
    assert set(rx.stored) == {k for keys in rx.order.values() for k in keys}
    repeated = {k for k, n in rx.requests.items() if n > 1}
    assert not repeated & before, "a record recorded as delivered was sent again"
    assert rx.bad == [] and rx.out_of_order == [] and rx.concurrent == []


async def _at_least(ctx: AppContext, status: str, n: int) -> bool:
    return await _count(ctx, status) >= n


async def _acked_at_least(rx: Receiver, n: int) -> bool:
    return sum(rx.acked.values()) >= n
