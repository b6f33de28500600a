"""Keypress → receipt: how long after the caller presses a level the provincial receiver has
the record, at a steady rate of ratings.

    .venv/bin/python -m bench.keypress_receipt                       # 100 ratings/s for 30 s
    .venv/bin/python -m bench.keypress_receipt --rate 20 --seconds 3 --database sqlite

``hotline serve`` (FastAGI and the forwarder, default forwarder settings) runs in its own
process; the load generator (bench.agi_load) plays Asterisk and notes when it answers the menu
with the key, the loopback receiver (forwarder.simulated, JSON+HMAC) notes when the record
arrives. The floor is one signed POST to the same receiver from this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.agi_load import run_paced
from bench.common import (
    ServerProcess,
    figure,
    free_port,
    fresh_database,
    percentile,
    python_module,
    server_env,
)
from forwarder.simulated import HMAC_SECRET, VALUES, Arrival, Receiver
from storage.ratings import CALL_PROJECT_PREFIX


async def _floor(url: str, n: int = 50) -> float:
    took = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            t0 = time.perf_counter()
            async with http.post(url, data=b"{}") as response:
                await response.read()
            took.append(time.perf_counter() - t0)
    return percentile(took, 0.5)


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    calls = int(args.rate * args.seconds)
    print(f"keypress_receipt: {calls} ratings at {args.rate}/s, database {args.database}",
          flush=True)
    received: dict[str, float] = {}
    expected = calls
    all_in = asyncio.Event()

    async def note(arrival: Arrival) -> web.StreamResponse | None:
        project = str(arrival.record.get("projectNo", ""))
        received.setdefault(project.removeprefix(CALL_PROJECT_PREFIX), time.time())
        if len(received) >= expected:
            all_in.set()
        return None

    port = free_port()
    async with Receiver(behaviour=note) as rx, fresh_database(args.database, workdir) as url:
        floor = await _floor(rx.url)
        env = server_env(
            workdir, url, fastagi_port=port, serve_forwarder=True,
            forwarder_endpoint=rx.url, forwarder_values=VALUES,
            forwarder_hmac_secret=HMAC_SECRET, log_level=args.log_level,
        )
        async with ServerProcess(python_module("bench.survey_server"), env, port,
                                 workdir / "server.log"):
            load = await run_paced(port, calls, args.rate)
            expected = load.rated
            if len(received) < expected:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_in.wait(), timeout=60)
    delays = [received[k] - t for k, t in load.keypress_at.items() if k in received]
    missing = load.rated - len(delays)
    p99 = percentile(delays, 0.99)
    figure("floor: one POST to the receiver, median", 1000 * floor, "ms")
    figure("keypress → receipt, median", 1000 * percentile(delays, 0.5), "ms")
    figure(f"keypress → receipt, p99 at {args.rate:g} ratings/s", 1000 * p99, "ms", "< 1000 ms",
           p99 < 1.0)
    figure("ratings not received within 60 s", missing, "ratings", "0", missing == 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="ratings a second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--log-level", default="INFO", help="the server's (production: INFO)")
    args = parser.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
