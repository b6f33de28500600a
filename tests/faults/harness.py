"""What the fault runs share: `hotline serve` as a real subprocess, a FastAGI load generator
playing Asterisk with prompt-length pauses (modelled on ivr/agi/simulated.py), and the checks
of what the database holds afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from forwarder.simulated import HMAC_SECRET, VALUES, Receiver
from hotline.clock import as_utc, utcnow
from ivr.agi.simulated import SimulatedCaller, environment_lines
from storage.db import Database
from storage.models import Call, OutboxEntry, OutboxStatus, Rating
from tests.conftest import covered_years_file

HOTLINE = str(Path(sys.executable).with_name("hotline"))

#: what callers do: keys for the menu, then the reason menu / comment offer (DOMAIN.md levels)
SCRIPTS: list[list[object]] = [
    ["1"], ["2"], ["3"], ["4", "2", None], ["5", "1", None], ["5", "hangup"],
    ["hangup"], [None, None],
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """`hotline serve` with the survey, the HTTP API, the forwarder and the default job."""

    tmp_path: Path
    database_url: str
    receiver: Receiver
    extra: dict[str, str] = field(default_factory=dict)
    agi_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update({
            "HOTLINE_DATA_DIR": str(self.tmp_path / "data"),
            # /readyz answers 200 on any date (tests.conftest.covered_years_file)
            "HOTLINE_WORKDAY_OVERRIDES_FILE": str(covered_years_file(self.tmp_path)),
            "HOTLINE_DATABASE_URL": self.database_url,
            "HOTLINE_LOG_FORMAT": "json",
            "HOTLINE_FASTAGI_PORT": str(self.agi_port),
            "HOTLINE_HTTP_PORT": str(self.http_port),
            "HOTLINE_FASTAGI_CHECK_PROMPTS": "false",
            "HOTLINE_FASTAGI_SHUTDOWN_GRACE": "5",
            "HOTLINE_SERVE_SCHEDULER": "false",
            "HOTLINE_SERVE_REPORTS": "false",
            "HOTLINE_SERVE_BAD_RATINGS": "false",
            "HOTLINE_FORWARDER_ENDPOINT": self.receiver.url,
            "HOTLINE_FORWARDER_HMAC_SECRET": HMAC_SECRET,
            "HOTLINE_FORWARDER_VALUES": json.dumps(VALUES),
            "HOTLINE_FORWARDER_REQUEST_TIMEOUT": "2",
            "HOTLINE_FORWARDER_BACKOFF_BASE": "0.2",
            "HOTLINE_FORWARDER_BACKOFF_MAX": "2",
            "HOTLINE_FORWARDER_LEASE_SECONDS": "5",
            "HOTLINE_FORWARDER_POLL_INTERVAL": "0.2",
            "HOTLINE_DEFAULT_RATING_INTERVAL_SECONDS": "2",
        })
        env.update(self.extra)
        return env

    def start(self) -> None:
        log = self.tmp_path / f"serve-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen([HOTLINE, "serve", "--no-migrate"], env=self.env(),
                                         stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()[-3000:]
            try:
                socket.create_connection(("127.0.0.1", self.agi_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("FastAGI never came up")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def journal_pending(self) -> bool:
        journal = self.tmp_path / "data" / "journal"
        return any(p.stat().st_size for p in journal.glob("*.jsonl"))

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs)


@dataclass
class CallResult:
    linkedid: str
    script: list[object]
    acknowledged: int | None = None  # the level the server moved on from (durable by contract)
    cut: bool = False  # the connection dropped under the call
    hung_up: bool = False  # the caller hung up (the dialplan's hang-up handler then runs)
    finished: bool = False


async def survey_call(port: int, linkedid: str, script: list[object], *, pause: float,
                      hung_up: bool = False) -> CallResult:
    """One survey as Asterisk plays it: each STREAM FILE / GET DATA takes ``pause`` seconds."""
    result = CallResult(linkedid, script)
    caller = SimulatedCaller(keys=list(script), linkedid=linkedid, hung_up=hung_up)
    first_key = script[0] if script else None
    menu_answered = False
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        result.cut = True
        return result
    try:
        env = environment_lines(uniqueid=linkedid, callerid="13800138000")
        writer.write("".join(f"{line}\n" for line in env).encode())
        await writer.drain()
        async with asyncio.timeout(60):
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\n")
                if menu_answered and isinstance(first_key, str) and first_key in "12345":
                    result.acknowledged = int(first_key)
                reply = caller(line)
                if reply is None:
                    break
                if line.startswith(("STREAM FILE", "GET DATA")):
                    await asyncio.sleep(pause)
                if line.startswith("GET DATA") and not menu_answered:
                    menu_answered = True
                writer.write("".join(f"{r}\n" for r in reply).encode())
                await writer.drain()
        # the survey told the dialplan its result, or the caller hung up as the script says
        result.finished = "SURVEY_RESULT" in caller.variables or caller.hung_up
        result.hung_up = caller.hung_up
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    result.cut = not result.finished
    return result


async def load(port: int, linkedids: list[str], *, concurrency: int, pause: float,
               seed: int = 8, hangup_handler: bool = False) -> list[CallResult]:
    """Surveys, ``concurrency`` at a time; with ``hangup_handler`` a caller's hang-up is followed
    at once by the dialplan's hang-up handler, as Asterisk does."""
    rng = random.Random(seed)
    gate = asyncio.Semaphore(concurrency)

    async def one(linkedid: str) -> CallResult:
        async with gate:
            result = await survey_call(port, linkedid, list(rng.choice(SCRIPTS)), pause=pause)
            if hangup_handler and result.hung_up:
                await survey_call(port, linkedid, [], pause=0, hung_up=True)
            return result

    return list(await asyncio.gather(*(one(lid) for lid in linkedids)))


async def hang_up_handlers(port: int, linkedids: list[str]) -> None:
    """What the dialplan's hang-up handler (hotline-survey-hangup) does for each call: the
    survey route on the dead channel, which records the call unless it already is."""
    await asyncio.gather(*(survey_call(port, lid, [], pause=0, hung_up=True)
                           for lid in linkedids))


class AckLog:
    """The receiver's behaviour: store (the default answer) and note when each key was taken."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    async def __call__(self, arrival: Any) -> None:
        self.times.setdefault(arrival.key, []).append(time.monotonic())
        return None

    def split(self, boundaries: list[float]) -> tuple[list[str], list[str]]:
        """(keys taken twice within one life of the service: duplicates, keys taken again only
        after a kill cut the forwarder between the answer and its bookkeeping: re-sent under
        the same idempotency key, which the receiver stores once)."""
        duplicated, resent = [], []
        for key, times in self.times.items():
            if len(times) < 2:
                continue
            epochs = [sum(t > b for b in boundaries) for t in times]
            (duplicated if len(set(epochs)) < len(epochs) else resent).append(key)
        return sorted(duplicated), sorted(resent)


@dataclass
class Tally:
    tried: int
    rows: int
    lost_votes: list[str]
    downgraded: list[str]
    ratings: int
    without_entry: list[str]
    undelivered: int
    held: int

    def print(self, title: str, **extra: Any) -> None:
        more = "".join(f" {k}={v}" for k, v in extra.items())
        print(f"\n{title}: tried={self.tried} rows={self.rows} ratings={self.ratings} "
              f"lost={len(self.lost_votes)} downgraded={len(self.downgraded)} "
              f"no_outbox_entry={len(self.without_entry)} undelivered={self.undelivered} "
              f"held={self.held}{more}")


async def tally(database_url: str, results: list[CallResult]) -> Tally:
    db = Database(database_url)
    try:
        async with db.sessions() as s:
            rows = int(await s.scalar(select(func.count()).select_from(Call)) or 0)
            ratings = {r.project_no: r for r in (await s.scalars(select(Rating))).all()}
            entries = (await s.scalars(select(OutboxEntry))).all()
    finally:
        await db.close()
    lost, downgraded = [], []
    for r in results:
        if r.acknowledged is None:
            continue
        rating = ratings.get(f"CALL-{r.linkedid}")
        if rating is None:
            lost.append(r.linkedid)
        elif rating.source != "keypad" or rating.level != r.acknowledged:
            downgraded.append(r.linkedid)
    now = utcnow()
    open_entries = [e for e in entries if e.status != OutboxStatus.DELIVERED]
    # an entry still held (a survey cut before its last step) goes by itself when its hold
    # ends (storage/ratings.py); one that is due and not delivered is a failure
    held = [e for e in open_entries if as_utc(e.ready_at) > now]
    return Tally(
        tried=len(results), rows=rows,
        lost_votes=lost, downgraded=downgraded, ratings=len(ratings),
        without_entry=sorted(set(ratings) - {e.project_no for e in entries}),
        undelivered=len(open_entries) - len(held), held=len(held),
    )


async def wait_for(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.5)
    return False
