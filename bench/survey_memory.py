"""Where the survey server's memory goes with ``--sessions`` surveys open at the menu.

    .venv/bin/python -m bench.survey_memory [--sessions 2000] [--database sqlite] [--top 25]

Two runs of ``bench.survey_server`` on a fresh database: one plain (RSS idle after start-up,
after a warm-up, and with the sessions open: the figure of ``fastagi_survey``), one under
tracemalloc (a snapshot with the server warm, another with the sessions open: the difference
by source line, which is what each open session holds). Also prints the modules loaded that a
FastAGI server should not need (reports, console, spreadsheets, PDFs, browsers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import tracemalloc
from pathlib import Path

from bench.agi_load import hold_at_menu, run_load
from bench.common import (
    ServerProcess,
    figure,
    free_port,
    fresh_database,
    python_module,
    server_env,
)

#: module name prefixes a FastAGI survey server has no use for
NOT_NEEDED = (
    "openpyxl",
    "reportlab",
    "playwright",
    "console",
    "reports",
    "jinja2",
    "matplotlib",
    "PIL",
    "pandas",
    "numpy",
    "aiohttp",
    "alembic",
    "mako",
)


async def _snapshot(server: ServerProcess, directory: Path, n: int) -> tracemalloc.Snapshot:
    os.kill(server.pid, signal.SIGUSR1)
    path = directory / f"{n}.snap"
    for _ in range(600):
        await asyncio.sleep(0.1)
        if (directory / f"{n}.modules").exists():
            break
    await asyncio.sleep(0.5)
    return tracemalloc.Snapshot.load(str(path))


def _top(what: str, diff: list[tracemalloc.StatisticDiff], top: int) -> None:
    total = sum(d.size_diff for d in diff)
    print(f"\ntraced growth in {what}: {total / 2**20:.1f} MB; top files:")
    for d in diff[:top]:
        frame = d.traceback[0]
        print(
            f"{d.size_diff / 1024:>10.0f} KiB {d.count_diff:>8} blocks  "
            f"{frame.filename.split('site-packages/')[-1]}"
        )


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hotline-mem-"))
    snaps = workdir / "snaps"
    snaps.mkdir()
    mb = 2**20
    async with fresh_database(args.database, workdir) as url:
        port = free_port()
        env = server_env(workdir, url, fastagi_port=port, fastagi_max_calls=args.sessions + 100)
        async with ServerProcess(
            python_module("bench.survey_server"), env, port, workdir / "plain.log"
        ) as server:
            idle = server.rss_bytes()
            await run_load(port, args.warm, 50)
            warm = server.rss_bytes()
            async def rss_now() -> int:
                return server.rss_bytes()

            rss = await hold_at_menu(port, args.sessions, f"8{server.pid}", rss_now)
        figure("server RSS idle after start-up", idle / mb, "MB")
        figure(f"server RSS after {args.warm} surveys", warm / mb, "MB")
        figure(
            f"server RSS, {args.sessions} surveys open", rss / mb, "MB", "< 150 MB", rss < 150 * mb
        )
        figure("per open session", (rss - warm) / args.sessions / 1024, "KiB")

        port = free_port()
        env = server_env(workdir, url, fastagi_port=port, fastagi_max_calls=args.sessions + 100)
        argv = python_module("bench.survey_server", "--tracemalloc", str(snaps))
        async with ServerProcess(argv, env, port, workdir / "traced.log") as server:
            started = await _snapshot(server, snaps, 0)
            await run_load(port, args.warm, 50)
            before = await _snapshot(server, snaps, 1)
            after: list[tracemalloc.Snapshot] = []

            async def take() -> None:
                after.append(await _snapshot(server, snaps, 2))

            await hold_at_menu(port, args.sessions, f"8{server.pid}", take)
    warm_up = before.compare_to(started, "filename")
    _top(f"the first {args.warm} surveys (warm-up)", warm_up, args.top)
    diff = after[0].compare_to(before, "lineno")
    total = sum(d.size_diff for d in diff)
    print(
        f"\ntraced growth with {args.sessions} open: {total / mb:.1f} MB "
        f"({total / args.sessions / 1024:.1f} KiB per session); top lines:"
    )
    for d in diff[: args.top]:
        frame = d.traceback[0]
        print(
            f"{d.size_diff / 1024:>10.0f} KiB {d.count_diff:>8} blocks  "
            f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
        )
    modules = (snaps / "2.modules").read_text().split()
    extra = sorted(m for m in modules if m.split(".")[0] in NOT_NEEDED and "." not in m)
    print(
        f"\nmodules loaded: {len(modules)}; not needed by a FastAGI server: "
        f"{', '.join(extra) or 'none'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--warm", type=int, default=200, help="surveys before measuring")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
