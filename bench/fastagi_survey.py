"""The survey server under FastAGI load, against the bare-asyncio floor measured in the same run.

    .venv/bin/python -m bench.fastagi_survey                        # PostgreSQL, full size
    .venv/bin/python -m bench.fastagi_survey --database sqlite --calls 300 --open-sessions 200

Both servers run in their own process; the load generator (bench.agi_load) plays Asterisk,
every call a fresh linkedid pressing 2. Prints, each with its goal (issue 13):

* surveys/s at ``--high`` (1,000) in flight vs at ``--low`` (100): stays flat, >= 0.9;
* surveys/s vs the floor's calls/s, both at ``--mid`` (300) in flight: >= 0.3;
* server CPU per survey (the server process's user+system time / surveys): <= 3 ms;
* server RSS with ``--open-sessions`` (2,000) surveys open at once, all at the menu: < 150 MB;
* round trips to Asterisk per survey (counted);
* surveys lost: calls the server answered but did not store as rated (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import func, select

from bench.agi_floor import COMMANDS as FLOOR_COMMANDS
from bench.agi_load import LoadResult, hold_at_menu, run_load
from bench.common import (
    ServerProcess,
    add_event_loop_option,
    figure,
    free_port,
    fresh_database,
    python_module,
    server_env,
)
from storage.db import Database
from storage.models import Rating


async def _measure(server: ServerProcess, port: int, calls: int, in_flight: int
                   ) -> tuple[LoadResult, float]:
    before = server.cpu_seconds()
    result = await run_load(port, calls, in_flight)
    return result, server.cpu_seconds() - before


def _rss_of(server: ServerProcess) -> Callable[[], Awaitable[int]]:
    async def rss() -> int:
        return server.rss_bytes()

    return rss


async def _journal_drained(journal: Path, within: float = 180.0) -> None:
    """Steps the survey journalled (its save passed ``survey_save_deadline_seconds``) are durable
    but not yet in the database: wait for the server's replay before counting what is stored."""
    def pending() -> bool:
        return any(journal.glob("*.jsonl"))

    loop = asyncio.get_running_loop()
    end = loop.time() + within
    for _ in range(int(within * 2)):  # polled: the replay is another process's
        if loop.time() >= end or not await asyncio.to_thread(pending):
            return
        await asyncio.sleep(0.5)


def _journalled_steps(server_log: Path) -> int:
    """Survey steps that went to the local journal (each logs one line)."""
    with server_log.open(errors="replace") as lines:
        return sum("journalled" in line for line in lines)


async def _stored(url: str) -> int:
    db = Database(url)
    try:
        async with db.sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(Rating)) or 0)
    finally:
        await db.close()


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    floor_port, survey_port = free_port(), free_port()
    print(f"fastagi_survey: database {args.database}, calls {args.calls} per level, "
          f"in flight {args.low}/{args.mid}/{args.high}, open sessions {args.open_sessions}",
          flush=True)
    async with ServerProcess(python_module("bench.agi_floor", "--port", str(floor_port)),
                             server_env(workdir, "sqlite://"), floor_port,
                             workdir / "floor.log") as floor_server:
        await run_load(floor_port, min(args.calls, 200), args.mid, route="floor")  # warm up
        floor, floor_cpu = await _measure(floor_server, floor_port, args.calls, args.mid)
    async with fresh_database(args.database, workdir) as url:
        env = server_env(workdir, url, fastagi_port=survey_port,
                         fastagi_max_calls=max(args.open_sessions, args.high) + 100,
                         log_level=args.log_level, event_loop=args.event_loop)
        argv = python_module("bench.survey_server")
        async with ServerProcess(argv, env, survey_port, workdir / "server.log") as server:
            await run_load(survey_port, min(args.calls, 100), args.low)  # warm up
            low, _ = await _measure(server, survey_port, args.calls, args.low)
            mid, mid_cpu = await _measure(server, survey_port, args.calls, args.mid)
            high, _ = await _measure(server, survey_port, args.calls, args.high)
            rss = await hold_at_menu(survey_port, args.open_sessions, f"9{server.pid}",
                                     _rss_of(server))
            await _journal_drained(workdir / "data" / "journal")
        stored = await _stored(url)
        journalled = _journalled_steps(workdir / "server.log")
    answered = [low, mid, high]
    surveyed = sum(r.calls for r in answered) + min(args.calls, 100) + args.open_sessions
    failed = sum(r.failed for r in answered)
    commands = sorted(mid.commands)

    figure(f"floor calls/s at {args.mid} in flight", floor.per_second, "calls/s")
    figure("floor CPU per call", 1000 * floor_cpu / floor.calls, "ms")
    figure(f"surveys/s at {args.low} in flight", low.per_second, "surveys/s")
    figure(f"surveys/s at {args.mid} in flight", mid.per_second, "surveys/s")
    figure(f"surveys/s at {args.high} in flight", high.per_second, "surveys/s")
    flat = high.per_second / low.per_second
    figure(f"surveys/s at {args.high} / at {args.low}", flat, "ratio", ">= 0.9", flat >= 0.9)
    vs_floor = mid.per_second / floor.per_second
    figure(f"surveys/s / floor calls/s at {args.mid} ({args.database})", vs_floor, "ratio",
           ">= 0.3", vs_floor >= 0.3)
    cpu = 1000 * mid_cpu / mid.calls
    figure("server CPU per survey", cpu, "ms", "<= 3 ms", cpu <= 3.0)
    mb = rss / 2**20
    figure(f"server RSS, {args.open_sessions} surveys open", mb, "MB", "< 150 MB", mb < 150)
    if commands:
        figure("round trips to Asterisk per survey", commands[len(commands) // 2], "commands",
               f"(floor {len(FLOOR_COMMANDS)})")
    figure("survey steps journalled (database past the deadline)", journalled, "steps",
           "(fewest)")
    lost = surveyed - stored
    figure("surveys lost (answered, not stored)", lost, "calls", "0", lost == 0 and not failed)
    if failed:
        figure("calls that failed (timeout or connection)", failed, "calls", "0", False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--calls", type=int, default=3000, help="calls at each in-flight level")
    parser.add_argument("--low", type=int, default=100)
    parser.add_argument("--mid", type=int, default=300)
    parser.add_argument("--high", type=int, default=1000)
    parser.add_argument("--open-sessions", type=int, default=2000)
    parser.add_argument("--log-level", default="INFO", help="the server's (production: INFO)")
    add_event_loop_option(parser, "the survey server's loop")
    args = parser.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
