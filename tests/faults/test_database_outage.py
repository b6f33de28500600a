"""Fault run (b), issue 8: PostgreSQL refuses connections for a minute (``ALLOW_CONNECTIONS
false`` on the test's own cloned database, and every session of it terminated) while surveys
keep coming, then comes back. No vote is lost or downgraded (the default window is one minute
here, so a vote left in the journal would be defaulted), every call has its record, and the
service recovers by itself. ``HOTLINE_FAULT_OUTAGE_SECONDS`` shortens the outage locally."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from forwarder.simulated import Receiver
from tests.conftest import PG
from tests.faults.harness import CallResult, Service, load, tally, wait_for

OUTAGE = float(os.environ.get("HOTLINE_FAULT_OUTAGE_SECONDS", "60"))
RATE = 8  # new calls a second


def _ready(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


async def test_database_refusing_connections_loses_no_vote(
    tmp_path: Path, postgres_url: str
) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    async with Receiver() as rx:
        service = Service(tmp_path, postgres_url, rx, extra={
            "HOTLINE_DEFAULT_RATING_WINDOW": "1",
            "HOTLINE_DEFAULT_RATING_WINDOW_UNIT": "minutes",
        })
        await asyncio.to_thread(service.start)
        batches: list[asyncio.Task[list[CallResult]]] = []
        n = 0

        async def steady(seconds: float) -> None:
            nonlocal n
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                ids = [f"O.{n + i}" for i in range(RATE)]
                n += RATE
                batches.append(asyncio.create_task(
                    load(service.agi_port, ids, concurrency=RATE, pause=0.2, seed=n,
                         hangup_handler=True)))
                await asyncio.sleep(1)

        try:
            await steady(3)
            await PG.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await PG.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            f"WHERE datname = '{name}'")
            try:
                await steady(OUTAGE)
                not_ready = await asyncio.to_thread(_ready, service.http_port)
            finally:
                await PG.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await steady(3)
            results = [r for batch in batches for r in await batch]

            async def settled() -> bool:
                t = await tally(postgres_url, results)
                return t.rows == t.tried and t.undelivered == 0 and not service.journal_pending()

            recovered = await wait_for(settled, 60)
            figure = await tally(postgres_url, results)
            ready_after = await asyncio.to_thread(_ready, service.http_port)
            alive = service.proc is not None and service.proc.poll() is None
        finally:
            await asyncio.to_thread(service.stop)
    log = service.log_text()
    tracebacks = log.count("Traceback") + log.count('"exc_info"')
    journalled = sum(1 for line in log.splitlines()
                     if "journal replayed" in line and json.loads(line).get("calls"))
    acknowledged = sum(r.acknowledged is not None for r in results)
    figure.print(f"PostgreSQL refusing connections for {OUTAGE:g} s",
                 votes_acknowledged=acknowledged, cut=sum(r.cut for r in results),
                 replays=journalled,
                 tracebacks=tracebacks, ready_during=not_ready, ready_after=ready_after)
    assert all(not r.cut for r in results)  # every caller went through the whole survey
    assert figure.rows == figure.tried  # rule 1: calls of the outage have their rows
    assert (figure.lost_votes, figure.downgraded) == ([], [])
    assert figure.without_entry == [] and figure.undelivered == 0
    assert recovered and alive and ready_after == 200 and not_ready == 503
    assert journalled >= 1
