"""A burst of simultaneous surveys on a real Asterisk 22 (the sandbox), every one stored right.

    .venv/bin/python -m bench.asterisk_burst --calls 1000
    .venv/bin/python -m bench.asterisk_burst --calls 5 --database sqlite

A sandbox Asterisk of its own (its own ports and run directory) places ``--calls`` Local-channel
calls at once over AMI: one half enters the real ``[hotline-survey]`` dialplan (AGI to the
survey server, ``hotline serve`` in its own process), the other plays the caller
(``[hotline-test-caller]``) and presses 2 four seconds after answering, while the intro plays
(barge-in). DTMF sent before the menu listens is lost (DOMAIN.md), so a slow start shows as a
call not stored as 2. Prints, each with its goal (issue 13):

* calls stored correctly (level 2) of ``--calls`` started at once: all, 0 lost;
* time from the call reaching the survey (the AGI session starts) to the menu playing (the
  first STREAM FILE sent), p99: < 1 s; and from the Originate to the menu, for information.
The floor is the same burst's Originate → AGI session start (Asterisk's own part).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from ami.client import AmiClient
from bench.common import (
    ServerProcess,
    figure,
    free_port,
    fresh_database,
    percentile,
    python_module,
    server_env,
)
from hotline.settings import Settings, load_settings
from ivr import prompts
from sandbox.instance import AsteriskSandbox
from sandbox.root import unavailable_reason
from storage.db import Database
from storage.models import Call, Rating

#: the caller presses 2 this long after answering: inside the intro, as a real caller would
PRESS_AFTER = 4.0


def _settings(workdir: Path, database_url: str, rtp_base: int) -> Settings:
    return load_settings(
        Path("/dev/null"), data_dir=workdir / "data", database_url=database_url,
        asterisk_run_dir=workdir / "run", ami_port=free_port(), asterisk_sip_port=free_port(),
        fastagi_port=free_port(), asterisk_rtp_start=rtp_base, asterisk_rtp_end=rtp_base + 99,
    )


async def _originate(ami: AmiClient, ids: list[str], started: dict[str, float]) -> None:
    async def one(call_id: str) -> None:
        started[call_id] = time.time()
        await ami.send({
            "Action": "Originate", "Channel": "Local/s@hotline-test-caller",
            "Context": "hotline-survey", "Exten": "s", "Priority": 1,
            "ChannelId": call_id, "OtherChannelId": f"{call_id}-caller",
            "CallerID": "<13800138000>", "Async": True, "Timeout": 30000,
            "Variable": [f"HOTLINE_TEST_SCRIPT=w{PRESS_AFTER:g}|d2", "HOTLINE_AGENT=A1001"],
        })

    await asyncio.gather(*(one(i) for i in ids))


async def _results(url: str, ids: list[str]) -> dict[str, int | None]:
    """linkedid → stored level (None: a call without a rating)."""
    db = Database(url)
    try:
        async with db.sessions() as s:
            rows = await s.execute(
                select(Call.linkedid, Rating.level)
                .outerjoin(Rating, Rating.call_id == Call.id)
                .where(Call.linkedid.in_(ids))
            )
            return {linkedid: level for linkedid, level in rows}
    finally:
        await db.close()


async def bench(args: argparse.Namespace) -> None:
    if reason := unavailable_reason():
        raise SystemExit(f"asterisk_burst: no Asterisk sandbox here ({reason})")
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    print(f"asterisk_burst: {args.calls} calls at once, database {args.database}", flush=True)
    async with fresh_database(args.database, workdir) as url:
        settings = _settings(workdir, url, args.rtp_base)
        await asyncio.to_thread(prompts.build_prompts, settings)
        sandbox = AsteriskSandbox.from_settings(settings, die_with_parent=True)
        await asyncio.to_thread(sandbox.ensure_built)
        await asyncio.to_thread(sandbox.start)
        timings_file = workdir / "timings.json"
        env = server_env(workdir, url, fastagi_port=settings.fastagi_port,
                         fastagi_max_calls=args.calls + 100, fastagi_check_prompts=True,
                         log_level=args.log_level)
        run_id = f"burst{int(time.time())}"
        ids = [f"{run_id}-{n}" for n in range(args.calls)]
        started: dict[str, float] = {}
        try:
            server = ServerProcess(
                python_module("bench.survey_server", "--timings", str(timings_file)),
                env, settings.fastagi_port, workdir / "server.log")
            async with server:
                ami = AmiClient(settings.ami_host, sandbox.ami_port, sandbox.ami_username,
                                sandbox.ami_secret, timeout=60)
                await ami.connect()
                try:
                    t0 = time.perf_counter()
                    await _originate(ami, ids, started)
                    deadline = time.monotonic() + args.timeout
                    results: dict[str, int | None] = {}
                    while time.monotonic() < deadline:
                        await asyncio.sleep(1.0)
                        results = await _results(url, ids)
                        if len(results) == len(ids) and all(results.values()):
                            break
                    took = time.perf_counter() - t0
                finally:
                    await ami.close()
        finally:
            await asyncio.to_thread(sandbox.stop)
        timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    correct = sum(1 for i in ids if results.get(i) == 2)
    to_menu = [menu - entered for entered, menu in timings.values()]
    from_originate = [timings[i][1] - started[i] for i in ids if i in timings]
    agi_start = [timings[i][0] - started[i] for i in ids if i in timings]
    figure("floor: Originate → AGI session start, p99", 1000 * percentile(agi_start, 0.99), "ms")
    figure(f"calls stored correctly (level 2) of {args.calls}", correct, "calls",
           f"= {args.calls}", correct == args.calls)
    figure("calls lost or wrong", args.calls - correct, "calls", "0", correct == args.calls)
    figure("surveys reached (AGI session started)", len(timings), "calls")
    p99 = percentile(to_menu, 0.99)
    figure(f"survey start → menu playing, p99 at {args.calls} at once", 1000 * p99, "ms",
           "< 1000 ms", p99 < 1.0)
    figure("survey start → menu playing, median", 1000 * percentile(to_menu, 0.5), "ms")
    figure("Originate → menu playing, p99", 1000 * percentile(from_originate, 0.99), "ms",
           f"< {PRESS_AFTER:g} s (the key)")
    figure("burst: first Originate → all stored", took, "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for the burst")
    parser.add_argument("--rtp-base", type=int, default=18000)
    parser.add_argument("--log-level", default="INFO", help="the server's (production: INFO)")
    args = parser.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
