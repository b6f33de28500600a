"""A burst of simultaneous surveys on a real Asterisk 22 (the sandbox), every one stored right.

    .venv/bin/python -m bench.asterisk_burst --calls 1000
    .venv/bin/python -m bench.asterisk_burst --calls 5 --database sqlite

A sandbox Asterisk of its own (its own ports and run directory) places ``--calls`` Local-channel
calls at once over AMI: one half enters the real ``[hotline-survey]`` dialplan (AGI to the
survey server, ``hotline serve`` in its own process), the other plays the caller
(``[hotline-test-caller]``): it waits until it hears the survey, then presses 2 four seconds
later, while the welcome plays (barge-in). A real caller reacts to what it hears; pressing into
the silence before the survey speaks is not a caller's behaviour but a measure of the start,
and the start is measured on its own (below). Prints, each with its goal (issue 13):

* calls stored correctly (level 2) of ``--calls`` started at once: all, 0 lost;
* time from the call reaching the survey to the menu playing, p99: < 1 s, twice: as the
  caller hears it (the caller's half answered → it hears the survey, on Asterisk's clock: the
  FastAGI connection, the server's wait and its first commands), and as the server sees it
  (the AGI session read → the first menu command sent; blind to a connection that waits);
  and from the Originate to the menu, for information.
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
    add_event_loop_option,
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

#: the caller presses 2 this long after it hears the survey: inside the welcome, as a real
#: caller would
PRESS_AFTER = 4.0
#: the test caller's event once it hears the survey (ivr/dialplans/survey-test.conf, op "a")
HEARD_EVENT = "HotlineTestHeard"
CALLER_SUFFIX = "-caller"


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
            "ChannelId": call_id, "OtherChannelId": f"{call_id}{CALLER_SUFFIX}",
            "CallerID": "<13800138000>", "Async": True, "Timeout": 30000,
            "Variable": [f"HOTLINE_TEST_SCRIPT=a|w{PRESS_AFTER:g}|d2", "HOTLINE_AGENT=A1001"],
        })

    await asyncio.gather(*(one(i) for i in ids))


async def _listen_heard(ami: AmiClient, heard: dict[str, float]) -> None:
    """call id → seconds from the caller's half answering to it hearing the survey (both on
    Asterisk's clock: the event's Timestamp, timestampevents = yes; "hearing" is 100 ms of
    sound, so the figure includes those 100 ms)."""
    with ami.events("UserEvent") as stream:
        async for event in stream:
            uniqueid = event.get("Uniqueid") or ""
            if event.get("UserEvent") != HEARD_EVENT or not uniqueid.endswith(CALLER_SUFFIX):
                continue
            if event.get("Status") != "NOISE":
                continue  # never heard within the caller's wait: no figure, the call fails
            answered, at = event.get("Answered"), event.get("Timestamp")
            if answered and at:
                heard[uniqueid.removesuffix(CALLER_SUFFIX)] = float(at) - float(answered)


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
                         log_level=args.log_level, event_loop=args.event_loop)
        run_id = f"burst{int(time.time())}"
        # Asterisk checks an assigned uniqueid against the channels by PREFIX (legacy channel
        # storage: strncasecmp over the new id's length), so "-10" was refused while "-100"
        # existed: ids of one width, none a prefix of another call's
        width = len(str(args.calls - 1))
        ids = [f"{run_id}-{n:0{width}d}" for n in range(args.calls)]
        started: dict[str, float] = {}
        heard: dict[str, float] = {}
        try:
            server = ServerProcess(
                python_module("bench.survey_server", "--timings", str(timings_file)),
                env, settings.fastagi_port, workdir / "server.log")
            async with server:
                ami = AmiClient(settings.ami_host, sandbox.ami_port, sandbox.ami_username,
                                sandbox.ami_secret, timeout=60)
                # one connection only originates, one only hears the caller's user events: a
                # client reading every call event falls behind in the burst and Asterisk drops it
                listener = AmiClient(settings.ami_host, sandbox.ami_port, sandbox.ami_username,
                                     sandbox.ami_secret, timeout=60)
                await ami.connect()
                await listener.connect()
                await ami.send({"Action": "Events", "EventMask": "off"})
                await listener.send({"Action": "Events", "EventMask": "user"})
                listening = asyncio.create_task(_listen_heard(listener, heard))
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
                    listening.cancel()
                    await ami.close()
                    await listener.close()
        finally:
            await asyncio.to_thread(sandbox.stop)
        timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    correct = sum(1 for i in ids if results.get(i) == 2)
    to_menu = [menu - entered for entered, menu in timings.values()]
    silence = list(heard.values())
    from_originate = [timings[i][1] - started[i] for i in ids if i in timings]
    agi_start = [timings[i][0] - started[i] for i in ids if i in timings]
    figure("floor: Originate → AGI session start, p99", 1000 * percentile(agi_start, 0.99), "ms")
    figure(f"calls stored correctly (level 2) of {args.calls}", correct, "calls",
           f"= {args.calls}", correct == args.calls)
    figure("calls lost or wrong", args.calls - correct, "calls", "0", correct == args.calls)
    figure("surveys reached (AGI session started)", len(timings), "calls")
    if silence:
        p99 = percentile(silence, 0.99)
        figure(f"call reaches the survey → the caller hears it, p99 at {args.calls}", 1000 * p99,
               "ms", "< 1000 ms", p99 < 1.0)
        figure("call reaches the survey → the caller hears it, median",
               1000 * percentile(silence, 0.5), "ms")
    figure("callers who heard the survey", len(silence), "calls")
    p99 = percentile(to_menu, 0.99)
    figure(f"server: AGI session read → menu sent, p99 at {args.calls}", 1000 * p99, "ms",
           "< 1000 ms", p99 < 1.0)
    figure("server: AGI session read → menu sent, median", 1000 * percentile(to_menu, 0.5), "ms")
    figure("Originate → menu playing, p99", 1000 * percentile(from_originate, 0.99), "ms")
    figure("burst: first Originate → all stored", took, "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for the burst")
    parser.add_argument("--rtp-base", type=int, default=18000)
    parser.add_argument("--log-level", default="INFO", help="the server's (production: INFO)")
    add_event_loop_option(parser, "the survey server's loop")
    args = parser.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
