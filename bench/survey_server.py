"""``hotline serve`` for the benchmarks, in its own process, with settings from ``HOTLINE_*``
(bench.common.server_env) and, with ``--timings FILE``, one timing per survey call written at
exit: when the survey route was entered (the call reached the survey) and when the first menu
command (STREAM FILE / GET DATA) was sent to Asterisk.

    .venv/bin/python -m bench.survey_server [--timings timings.json] [--tracemalloc DIR]

It runs on the event loop the settings choose (``HOTLINE_EVENT_LOOP``), as ``hotline serve`` does.

With ``--tracemalloc DIR`` (bench.survey_memory) allocations are traced from the start and each
SIGUSR1 writes a snapshot ``DIR/N.snap`` and the loaded module names ``DIR/N.modules``.

The workers, the route table and the survey are the service's own (``service.serve.serve``);
only the survey route is wrapped to take the two timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

from hotline import event_loop, logs
from hotline.settings import load_settings
from ivr.agi.channel import AgiChannel
from service import agi
from service.serve import serve

_MENU = ("STREAM FILE", "GET DATA")


def _timed_survey(timings: dict[str, list[float]]) -> Any:
    from ivr.survey_flow import handle

    async def survey(ctx: Any, channel: AgiChannel) -> object:
        entered = time.time()
        key = channel.env.uniqueid or str(id(channel))
        original = channel.execute

        async def execute(command: Any, **kw: Any) -> Any:
            if key not in timings and command.verb in _MENU:
                timings[key] = [entered, time.time()]
            return await original(command, **kw)

        channel.execute = execute  # type: ignore[method-assign]
        return await handle(ctx, channel)

    return survey


def _snapshots(directory: Path) -> None:
    """SIGUSR1: a tracemalloc snapshot and the loaded modules, numbered from 0."""
    import sys
    import tracemalloc

    taken = 0

    def take() -> None:
        nonlocal taken
        tracemalloc.take_snapshot().dump(str(directory / f"{taken}.snap"))
        (directory / f"{taken}.modules").write_text("\n".join(sorted(sys.modules)))
        taken += 1

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, take)


async def _main(timings_file: Path | None, snapshots: Path | None = None) -> bool:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    timings: dict[str, list[float]] = {}
    if timings_file is not None:
        agi.ROUTES["survey"] = _timed_survey(timings)  # type: ignore[assignment]
    stopping = asyncio.Event()
    if snapshots is not None:
        _snapshots(snapshots)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        return await serve(settings, stopping)
    finally:
        if timings_file is not None:
            await asyncio.to_thread(timings_file.write_text, json.dumps(timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timings", type=Path, default=None)
    parser.add_argument("--tracemalloc", type=Path, default=None,
                        help="trace allocations; SIGUSR1 writes a snapshot to this directory")
    args = parser.parse_args()
    if args.tracemalloc is not None:
        import tracemalloc

        tracemalloc.start(4)
    event_loop.run(_main(args.timings, args.tracemalloc), load_settings().event_loop)


if __name__ == "__main__":
    main()
