"""How many post-call surveys a second one FastAGI server completes, against a baseline.

    .venv/bin/python -m bench.survey_throughput --calls 2000 --concurrency 50
    .venv/bin/python -m bench.survey_throughput --database-url postgresql+asyncpg://...  # migrated

Asterisk is played by ``ivr.agi.simulated`` over real TCP (the wire protocol and parsing are real;
only Asterisk's media is not). The baseline is a route that does the same FastAGI handshake
and one GET FULL VARIABLE but no survey and no database: the ratio survey/baseline says what
the survey's logic and its per-step saves cost, independent of how busy this machine is.
Also prints the Python heap growth per concurrent call (tracemalloc).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
import tracemalloc
from pathlib import Path

from hotline.settings import load_settings
from ivr.agi.channel import AgiChannel
from ivr.agi.server import FastAgiServer
from ivr.agi.simulated import SimulatedCaller, environment_lines, fastagi_call
from service.agi import ROUTES
from service.context import AppContext
from storage import migrate

_ids = itertools.count(1)


async def _baseline(ctx: AppContext, channel: AgiChannel) -> str:
    await channel.get_full_variable("${CHANNEL(linkedid)}")
    return "ok"


async def _calls(port: int, route: str, calls: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        n = next(_ids)
        caller = SimulatedCaller(keys=["2"], linkedid=f"1800000000.{n}")
        env = environment_lines(route=route, uniqueid=f"1800000000.{n}")
        async with gate:
            await fastagi_call("127.0.0.1", port, caller, env, within=60)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return calls / (time.perf_counter() - started)


async def bench(calls: int, concurrency: int, database_url: str | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await migrate.upgrade_async(url)
    settings = load_settings(Path("/dev/null"), data_dir=workdir, database_url=url)
    ctx = AppContext.create(settings)
    server = FastAgiServer(
        ctx, {**ROUTES, "baseline": _baseline}, host="127.0.0.1", port=0,
        max_calls=max(concurrency * 2, 10), read_timeout=30, shutdown_grace=5,
    )
    await server.start()
    try:
        await _calls(server.bound_port, "baseline", min(calls, 200), concurrency)  # warm up
        base = await _calls(server.bound_port, "baseline", calls, concurrency)
        survey = await _calls(server.bound_port, "survey", calls, concurrency)
        # a separate pass: tracemalloc slows Python several times over
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await _calls(server.bound_port, "survey", concurrency * 2, concurrency)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        await server.stop()
        await ctx.close()
    print(f"database            {url.split(':', 1)[0]}")
    print(f"calls x concurrency {calls} x {concurrency}")
    print(f"baseline            {base:8.1f} calls/s  (handshake + one command, no database)")
    print(f"survey              {survey:8.1f} calls/s  (menu, key 2, saves, thanks)")
    print(f"survey / baseline   {survey / base:8.3f}")
    print(f"heap per live call  {(peak - before) / concurrency / 1024:8.1f} KiB (tracemalloc peak)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(bench(args.calls, args.concurrency, args.database_url))


if __name__ == "__main__":
    main()
