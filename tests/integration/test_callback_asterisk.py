"""回访 on the real Asterisk 22 sandbox, through the carrier simulator (sandbox/carrier.py: a
second Asterisk playing the public network over a PJSIP trunk on loopback; the citizen's number
says how they behave). The scheduler runs as ``hotline serve`` runs it (callback_scheduler.worker
with the FastAGI ``callback`` route), against the wall clock.

DOMAIN.md rule 5 (every closed 差评 gets its 回访; the unreachable go to a person), rule 8 (call
windows, attempt caps, never a second dial), and the Originate facts (Async, OriginateResponse
Reasons, no re-send after a reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import re
import shutil
import wave
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ami.client import AmiClient
from callback_scheduler import followup, worker
from callback_scheduler.followup_agi import department_prompt
from callback_scheduler.followup_agi import handle as callback_route
from callback_scheduler.tasks import manual_list
from hotline.clock import utcnow
from hotline.settings import DEFAULT_CALLBACK_RETRY_MINUTES, Settings
from ivr import prompts
from ivr.agi.server import FastAgiServer
from sandbox.carrier import (
    Behaviour,
    Carrier,
    HangUp,
    Pause,
    Press,
    keys_number,
    number,
    random_tag,
    running,
)
from sandbox.instance import AsteriskSandbox
from service.context import AppContext
from storage.models import CallbackAttempt, CallbackTask, Rating
from tests.helpers.callbacks import closed_bad_case

pytestmark = pytest.mark.asterisk

CASE = "GD-7"  # its digits ("7") are said with SAY DIGITS
DEPARTMENT = "住建局"
DIGIT_TIMEOUT_MS = 4000
CITIZEN_CONTEXT = "from-hotline"  # where our calls arrive on the carrier


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def played_since(log: Path, offset: int) -> list[str]:
    """The hotline's prompts Asterisk played (verbose 3: "Playing 'hotline/…'") after
    ``offset`` bytes of its messages.log."""
    with open(log, "rb") as f:
        f.seek(offset)
        return re.findall(r"Playing '(hotline/[^'.]+)\.", f.read().decode(errors="replace"))


# ------------------------------------------------------------------------------ fixtures
@dataclass
class Bench:
    hotline: AsteriskSandbox
    carrier: Carrier
    settings: Settings
    sqlite_template: Path
    intro_seconds: float = 0.0
    satisfaction_seconds: float = 0.0


@pytest.fixture(scope="module")
def bench(asterisk: AsteriskSandbox, sqlite_template: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    base = asterisk.settings
    assert base is not None
    settings = base.model_copy(update={
        "callback_windows": ["00:00-24:00"],
        "callback_working_days_only": False,
        "callback_retry_minutes": {k: 0 for k in DEFAULT_CALLBACK_RETRY_MINUTES},
        "callback_ring_seconds": 5,
        "callback_response_grace_seconds": 5.0,
        "callback_poll_interval": 0.2,
        "callback_calls_per_minute": 1000,
        "survey_digit_timeout_ms": DIGIT_TIMEOUT_MS,
    })
    # real espeak-ng + sox into the directory Asterisk plays: every catalogue prompt (the
    # department's name is rendered by the follow-up on first use)
    prompts.build_prompts(settings)
    directory = settings.effective_prompts_dir
    carrier = Carrier.for_hotline(asterisk, die_with_parent=True)
    with running(carrier):
        b = Bench(asterisk, carrier, settings, sqlite_template)
        dept = asyncio.run(_department_prompt(settings))
        assert dept is not None
        length = {pid: wav_seconds(directory / f"{pid}.wav") for pid in (
            followup.GREETING, followup.CASE_NUMBER, followup.DEPARTMENT, dept,
            followup.SATISFACTION)}
        b.intro_seconds = sum(length[p] for p in (
            followup.GREETING, followup.CASE_NUMBER, followup.DEPARTMENT, dept)) + 0.8
        b.satisfaction_seconds = length[followup.SATISFACTION]
        yield b


async def _department_prompt(settings: Settings) -> str | None:
    ctx = AppContext.create(settings.model_copy(update={"database_url": "sqlite+aiosqlite://"}))
    try:
        return await department_prompt(ctx, DEPARTMENT)
    finally:
        await ctx.close()


class AmiProxy:
    """A TCP relay in front of Asterisk's AMI that the test can cut (the connection drops,
    Asterisk and its calls go on)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for w in self.writers:
            w.close()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass
class Scheduler:
    """One service instance for a test: its database, FastAGI server and scheduler worker."""

    ctx: AppContext
    ami: AmiClient
    hotline_ami: AmiClient  # the test's own view of the hotline (channel counts)
    carrier_calls: Counter[str] = field(default_factory=Counter)  # number → calls received

    async def close_bad_case(self, case_number: str, citizen: str) -> int:
        """A case of the 住建局 whose call got a 差评, closed now: its 回访 task is due."""
        closed = await closed_bad_case(self.ctx, case_number, number=citizen, now=utcnow())
        assert closed.task is not None, closed.callback
        return closed.task.id

    async def task(self, task_id: int) -> CallbackTask:
        async with self.ctx.db.sessions() as s:
            task = await s.get(CallbackTask, task_id)
            assert task is not None
            return task

    async def until(self, what: str, check: Callable[[], Awaitable[bool]],
                    within: float = 90.0, hotline: AsteriskSandbox | None = None) -> None:
        try:
            async with asyncio.timeout(within):
                # polling: the database and Asterisk have nothing to await
                while not await check():  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
        except TimeoutError:
            tail = hotline.log_tail(40) if hotline else ""
            pytest.fail(f"timed out waiting for {what}\n{tail}")

    async def settled(self, *task_ids: int) -> bool:
        async with self.ctx.db.sessions() as s:
            statuses = [(await s.get(CallbackTask, t)).status for t in task_ids]  # type: ignore[union-attr]
        return all(st in ("completed", "unreachable", "manual_done") for st in statuses)

    async def our_channels(self) -> int:
        """Asterisk's own count of the scheduler's calls (ChannelId prefix ``cb-``)."""
        channels = await self.hotline_ami.send_list({"Action": "CoreShowChannels"})
        return sum(1 for c in channels if (c.get("Uniqueid") or "").startswith("cb-"))


@contextlib.asynccontextmanager
async def scheduler(bench: Bench, tmp_path: Path, database_url: str | None = None,
                    *, proxy: AmiProxy | None = None, **overrides: Any,
                    ) -> AsyncIterator[Scheduler]:
    if database_url is None:
        db_file = tmp_path / "hotline.db"
        await asyncio.to_thread(shutil.copyfile, bench.sqlite_template, db_file)
        database_url = f"sqlite+aiosqlite:///{db_file}"
    settings = bench.settings.model_copy(update={"database_url": database_url, **overrides})
    ctx = AppContext.create(settings)
    hotline = bench.hotline
    server = FastAgiServer(ctx, {"callback": callback_route}, host=settings.fastagi_host,
                           port=hotline.fastagi_port, max_calls=50, read_timeout=60,
                           shutdown_grace=5)
    await server.start()
    port = proxy.port if proxy else hotline.ami_port
    ami = AmiClient("127.0.0.1", port, hotline.ami_username, hotline.ami_secret,
                    timeout=settings.ami_timeout, reconnect_delay=0.2, keepalive=None)
    await ami.connect()
    view = AmiClient("127.0.0.1", hotline.ami_port, hotline.ami_username, hotline.ami_secret,
                     timeout=settings.ami_timeout, keepalive=None)
    await view.connect()
    carrier_ami = bench.carrier.ami()
    await carrier_ami.connect()
    sched = Scheduler(ctx, ami, view)

    async def watch_carrier() -> None:
        with carrier_ami.events("Newchannel") as stream:
            async for event in stream:
                if event.get("Context") == CITIZEN_CONTEXT:
                    sched.carrier_calls[event.get("Exten") or "?"] += 1

    watcher = asyncio.create_task(watch_carrier())
    stopping = asyncio.Event()
    runner = asyncio.create_task(worker.run(ctx, stopping, ami=ami))
    try:
        yield sched
    finally:
        stopping.set()
        await asyncio.wait_for(runner, 60)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        for client in (ami, view, carrier_ami):
            await client.close()
        await server.stop()
        await ctx.close()


# ------------------------------------------------------------------------------ tests
async def test_rule5_closed_bad_case_gets_a_real_callback_and_its_rating(
    bench: Bench, tmp_path: Path, database_url: str,
) -> None:
    """The citizen hears the 回访, presses 1 (solved), 4 (不满意) and reason 2: the stored
    follow-up rating is 一事一评 of the case, assessNumber 2. Asterisk played each question
    with what follows it as one file (issue 13): "是否已解决" + the do-not-call hint, and
    "请您对办理情况进行评价" + the menu, the 4 pressed in the menu's part of it."""
    citizen = keys_number([
        Press("1", after=math.ceil(bench.intro_seconds + 2)),
        Press("4", after=math.ceil(bench.satisfaction_seconds + 2)),
        Press("2", after=2),
    ], tag=random_tag(2))  # 20 digits at most
    log = bench.hotline.run_dir / "log" / "messages.log"
    mark = log.stat().st_size
    async with scheduler(bench, tmp_path, database_url, callback_max_attempts=1) as sched:
        task_id = await sched.close_bad_case(CASE, citizen)
        await sched.until("the 回访 to end", lambda: sched.settled(task_id), 90, bench.hotline)
        task = await sched.task(task_id)
        assert (task.status, task.outcome) == ("completed", "rated"), bench.hotline.log_tail(40)
        async with sched.ctx.db.sessions() as s:
            rating = await s.get(Rating, task.result_rating_id)
        assert rating is not None
        assert (rating.project_no, rating.kind, rating.assess_number, rating.source) == (
            CASE, "per_case", 2, "callback")
        assert (rating.level, rating.reason_codes) == (4, "2")
        assert sched.carrier_calls[citizen] == 1
    heard = played_since(log, mark)
    asked = [p for p in heard if p != f"hotline/{followup.THANKS}"][-3:]
    assert asked == [f"hotline/{prompts.CALLBACK_RESOLVED_MENU.id}",
                     f"hotline/{prompts.CALLBACK_LEVEL_MENU.id}",
                     f"hotline/{followup.REASONS}"], heard


async def test_rule5_busy_and_no_answer_retried_until_max_then_manual_list(
    bench: Bench, tmp_path: Path,
) -> None:
    busy, silent_phone = number(Behaviour.BUSY, tag=random_tag()), number(
        Behaviour.NO_ANSWER, tag=random_tag())
    async with scheduler(bench, tmp_path, callback_max_attempts=2) as sched:
        busy_task = await sched.close_bad_case("GD-B1", busy)
        ring_task = await sched.close_bad_case("GD-B2", silent_phone)
        await sched.until("both tasks to end", lambda: sched.settled(busy_task, ring_task), 60,
                          bench.hotline)
        for task_id in (busy_task, ring_task):
            task = await sched.task(task_id)
            assert (task.status, task.outcome, task.attempts_made) == (
                "unreachable", "max_attempts", 2)
        async with sched.ctx.db.sessions() as s:
            seen = (await s.execute(select(CallbackAttempt.task_id, CallbackAttempt.reason,
                                           CallbackAttempt.hangup_cause))).all()
            listed = {i.case_number: i.last_outcome for i in await manual_list(s)}
        assert listed == {"GD-B1": "busy", "GD-B2": "no_answer"}
        # Asterisk 22 reports the carrier's 486 as Reason 0 with Hangup cause 17 (USER_BUSY):
        # the cause is what tells busy from any other failure
        assert {(r, c) for t, r, c in seen if t == busy_task} == {(0, 17)}
        assert {r for t, r, _ in seen if t == ring_task} == {3}  # no answer
        assert sched.carrier_calls[busy] == 2 and sched.carrier_calls[silent_phone] == 2


async def test_rule8_simultaneous_call_cap_observed_on_asterisk(
    bench: Bench, tmp_path: Path,
) -> None:
    cap = 2
    citizens = [keys_number([Pause(6), HangUp()], tag=random_tag()) for _ in range(5)]
    peak = 0
    async with scheduler(bench, tmp_path, callback_max_concurrent_calls=cap,
                         callback_max_attempts=1) as sched:
        ids = [await sched.close_bad_case(f"GD-C{i}", c) for i, c in enumerate(citizens)]

        async def done() -> bool:
            nonlocal peak
            peak = max(peak, await sched.our_channels())
            return await sched.settled(*ids)

        await sched.until("every call", done, 120, bench.hotline)
        assert peak == cap
        assert all(sched.carrier_calls[c] == 1 for c in citizens)


async def test_rule8_ami_cut_mid_campaign_no_second_dial_every_attempt_ends(
    bench: Bench, tmp_path: Path,
) -> None:
    """The AMI connection drops while calls ring and talk; the scheduler reconnects, finds
    its calls again by ChannelId and follows them to their end. Nobody is called twice."""
    proxy = AmiProxy(bench.hotline.ami_port)
    await proxy.start()
    citizens = [keys_number([Pause(8), HangUp()], tag=random_tag()) for _ in range(3)]
    try:
        async with scheduler(bench, tmp_path, proxy=proxy, callback_max_attempts=1,
                             callback_retry_minutes={
                                 **{k: 0 for k in DEFAULT_CALLBACK_RETRY_MINUTES},
                                 "unknown": 60}) as sched:
            ids = [await sched.close_bad_case(f"GD-X{i}", c) for i, c in enumerate(citizens)]

            async def calls_up() -> bool:
                return await sched.our_channels() == len(citizens)

            await sched.until("the calls to be up", calls_up, 30, bench.hotline)
            await asyncio.sleep(1.0)
            proxy.cut()
            await sched.until("every attempt to end", lambda: sched.settled(*ids), 90,
                              bench.hotline)
            async with sched.ctx.db.sessions() as s:
                attempts = list(await s.scalars(select(CallbackAttempt)))
            assert len(attempts) == len(citizens) and {a.status for a in attempts} == {"ended"}
            assert all(sched.carrier_calls[c] == 1 for c in citizens)
            async with sched.ctx.db.sessions() as s:
                last = {i.task_id: i.last_outcome for i in await manual_list(s)}
            # found again by ChannelId (Up) and followed: answered, then the citizen hung up
            assert [last.get(t) for t in ids] == ["answered_no_rating"] * len(ids)
    finally:
        await proxy.stop()


async def test_rule8_no_dial_before_the_window_opens(bench: Bench, tmp_path: Path) -> None:
    """A short real window: the task waits for it, then is dialled."""
    tz = bench.settings.tz
    now = dt.datetime.now(tz)
    if (now.hour, now.minute) >= (23, 58):  # a window cannot span midnight: wait it out
        await asyncio.sleep((dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(),
                                                 tzinfo=tz) - now).total_seconds() + 1)
        now = dt.datetime.now(tz)
    opens = (now + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    closes = opens + dt.timedelta(minutes=2)
    window = f"{opens:%H:%M}-{closes:%H:%M}"
    busy = number(Behaviour.BUSY, tag=random_tag())
    async with scheduler(bench, tmp_path, callback_windows=[window],
                         callback_max_attempts=1) as sched:
        task_id = await sched.close_bad_case("GD-W1", busy)
        task = await sched.task(task_id)
        assert task.next_attempt_at == opens.astimezone(dt.UTC)
        wait = (opens - dt.datetime.now(bench.settings.tz)).total_seconds()
        await asyncio.sleep(max(wait - 1.0, 0))
        assert sched.carrier_calls[busy] == 0  # nothing before the window
        async with sched.ctx.db.sessions() as s:
            assert list(await s.scalars(select(CallbackAttempt))) == []
        await sched.until("the call in the window", lambda: sched.settled(task_id), 30,
                          bench.hotline)
        async with sched.ctx.db.sessions() as s:
            [attempt] = list(await s.scalars(select(CallbackAttempt)))
        assert attempt.started_at >= opens.astimezone(dt.UTC)
        assert sched.carrier_calls[busy] == 1

