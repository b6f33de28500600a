"""Two scheduler processes on PostgreSQL against one backlog, on the real Asterisk 22 sandbox and
the carrier simulator (issue 5; DOMAIN.md rule 8: nobody is called twice by accident, and the
simultaneous-call cap holds across processes; the Originate facts).

Two ``hotline serve`` processes run side by side, configured only through ``HOTLINE_*``
environment variables as an operator would: both run the scheduler worker alone, one of them
the FastAGI server too (so calls dialled by the other process run their IVR there). A running
电话邀评 campaign, open all day every day, holds a backlog of carrier citizens who answer and
rate at once, answer and hang up at once, or are busy; the last two are retried once
(max_attempts 2, no retry delay), and those retries may be claimed by either process.

Checked from the carrier's side (every number received exactly as many calls as the database
has attempts for its task), from the hotline's Asterisk (each attempt's ChannelId seen once;
never more of our channels than the cap) and from the database (all tasks decided, (task,
attempt_no) unique and gapless, no attempt skipped, both processes dialled, the cap reached
and never exceeded).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ami.client import AmiClient
from callback_scheduler import campaigns as camp
from callback_scheduler.lifecycle import ACTIVE_ATTEMPT_STATUSES
from hotline.clock import utcnow
from hotline.settings import DEFAULT_CALLBACK_RETRY_MINUTES, Settings
from ivr import prompts
from sandbox.carrier import Behaviour, Carrier, Press, keys_number, number, random_tag
from sandbox.instance import AsteriskSandbox
from service.context import AppContext
from storage.models import CallbackAttempt, CallbackTask, Campaign, SurveyStatus
from tests.helpers.callbacks import add_call

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

CAP = 3  # simultaneous callback calls, both processes together
RATERS, HANGUPS, BUSY = 6, 6, 4  # the backlog: 16 tasks, 26 calls
MAX_ATTEMPTS = 2
CITIZEN_CONTEXT = "from-hotline"  # where the hotline's calls arrive on the carrier
READY = "callback scheduler connected to AMI"
DRAIN_WITHIN = 60.0  # seconds; the backlog drains in about 15


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def scheduler_id(self) -> str:  # callback_scheduler.worker.scheduler_id() of the child
        return f"{socket.gethostname()}:{self.process.pid}"[:64]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _env(settings: Settings, data_dir: Path, url: str, *, fastagi: bool) -> dict[str, str]:
    """The environment of one ``hotline serve`` process: nothing inherited from the developer's
    HOTLINE_* variables or a hotline.toml; only the scheduler (and maybe FastAGI) switched on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({
        "HOTLINE_CONFIG": os.devnull,
        "HOTLINE_DATA_DIR": str(data_dir),
        "HOTLINE_DATABASE_URL": url,
        "HOTLINE_PHONE_KEY_FILE": str(settings.effective_phone_key_file),  # shared: same numbers
        "HOTLINE_LOG_FORMAT": "text",
        "HOTLINE_LOG_LEVEL": "INFO",
        "HOTLINE_SERVE_HTTP": "false",
        "HOTLINE_SERVE_FORWARDER": "false",
        "HOTLINE_SERVE_DEFAULT_RATINGS": "false",
        "HOTLINE_SERVE_SCHEDULER": "true",
        "HOTLINE_SERVE_FASTAGI": "true" if fastagi else "false",
        "HOTLINE_AMI_HOST": "127.0.0.1",
        "HOTLINE_AMI_PORT": str(settings.ami_port),
        "HOTLINE_AMI_USERNAME": settings.ami_username,
        "HOTLINE_AMI_SECRET": settings.ami_secret,
        "HOTLINE_FASTAGI_HOST": "127.0.0.1",
        "HOTLINE_FASTAGI_PORT": str(settings.fastagi_port),
        "HOTLINE_PROMPTS_DIR": str(settings.effective_prompts_dir),
        "HOTLINE_SURVEY_DIGIT_TIMEOUT_MS": "3000",
        "HOTLINE_CALLBACK_MAX_CONCURRENT_CALLS": str(CAP),
        "HOTLINE_CALLBACK_POLL_INTERVAL": "0.2",
        "HOTLINE_CALLBACK_RING_SECONDS": "5",
        "HOTLINE_CALLBACK_RESPONSE_GRACE_SECONDS": "5",
    })
    return env


@contextlib.asynccontextmanager
async def schedulers(settings: Settings, url: str, tmp_path: Path) -> AsyncIterator[list[Proc]]:
    procs: list[Proc] = []
    try:
        for name, fastagi in (("a", True), ("b", False)):
            log = tmp_path / f"serve-{name}.log"
            with log.open("wb") as out:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "service.cli", "serve", "--no-migrate",
                    env=_env(settings, tmp_path / f"data-{name}", url, fastagi=fastagi),
                    cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                )
            procs.append(Proc(name, process, log))
        yield procs
    finally:
        for p in procs:
            if p.process.returncode is None:
                p.process.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                await asyncio.wait_for(p.process.wait(), 40)
            except TimeoutError:
                p.process.kill()
                await p.process.wait()


def _logs(procs: list[Proc]) -> str:
    return "\n".join(f"--- hotline serve ({p.name}), last lines:\n"
                     + "\n".join(p.log_text().splitlines()[-30:]) for p in procs)


async def _ready(procs: list[Proc], fastagi_port: int) -> None:
    """Both schedulers logged in to AMI, and the FastAGI server of process a listening."""
    async with asyncio.timeout(30):
        while True:
            for p in procs:
                if p.process.returncode is not None:
                    pytest.fail(f"hotline serve ({p.name}) exited with {p.process.returncode}"
                                f"\n{_logs(procs)}")
            if all(READY in p.log_text() for p in procs):
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", fastagi_port)
                    writer.close()
                    return
            await asyncio.sleep(0.1)


async def _backlog(ctx: AppContext) -> tuple[int, dict[str, str]]:
    """A draft 电话邀评 campaign open all day, every day, with one task per citizen; returns
    its id and {number: kind}. The raters come first: the first calls (lowest ids) are the
    long ones, so the cap is reached and held for a while."""
    citizens: dict[str, str] = {}
    while len(citizens) < RATERS:  # answer, press 2 (满意) — again 3 s later if it was lost
        citizens[keys_number([Press("2", after=2), Press("2", after=3)],
                             tag=random_tag())] = "rater"
    while len(citizens) < RATERS + HANGUPS:
        citizens[number(Behaviour.HANG_UP, tag=random_tag(6))] = "hangup"
    while len(citizens) < RATERS + HANGUPS + BUSY:
        citizens[number(Behaviour.BUSY, tag=random_tag(6))] = "busy"
    now = utcnow()
    for i, citizen in enumerate(citizens):
        await add_call(ctx, f"two-sched-{i}", number=citizen, status=SurveyStatus.NOT_RATED,
                       started=now)
    async with ctx.db.transaction() as s:
        campaign = await camp.create_campaign(
            s, ctx, name="两进程邀评", kind="rating_invite", created_by="test", now=now,
            rules={
                "windows": ["00:00-24:00"],
                "working_days_only": False,
                "max_attempts": MAX_ATTEMPTS,
                "retry_minutes": {k: 0 for k in DEFAULT_CALLBACK_RETRY_MINUTES},
                "calls_per_minute": 1000,
            },
        )
        added = await camp.add_by_filter(s, ctx, campaign.id,
                                         camp.CampaignFilter(not_rated=True), now)
    assert added.added == len(citizens)
    return campaign.id, citizens


async def test_rule8_two_scheduler_processes_dial_every_task_once_on_asterisk(
    asterisk: AsteriskSandbox, carrier: Carrier, ami: AmiClient, carrier_ami: AmiClient,
    postgres_url: str, tmp_path: Path,
) -> None:
    base = asterisk.settings
    assert base is not None
    settings = base.model_copy(update={"database_url": postgres_url})
    prompts.build_prompts(settings)  # idempotent; process a's FastAGI checks them at start
    ctx = AppContext.create(settings)  # creates the phone key the processes share
    carrier_calls: Counter[str] = Counter()  # number → calls the carrier received
    hotline_channels: Counter[str] = Counter()  # our ChannelIds Asterisk created
    peaks = {"db": 0, "asterisk": 0}

    async def watch_carrier() -> None:
        with carrier_ami.events("Newchannel") as stream:
            async for event in stream:
                if event.get("Context") == CITIZEN_CONTEXT:
                    carrier_calls[event.get("Exten") or "?"] += 1

    async def watch_hotline() -> None:
        with ami.events("Newchannel") as stream:
            async for event in stream:
                if (uid := event.get("Uniqueid") or "").startswith("cb-"):
                    hotline_channels[uid] += 1

    async def sample_load() -> None:
        while True:
            async with ctx.db.sessions() as s:
                active = await s.scalar(select(func.count()).select_from(CallbackAttempt).where(
                    CallbackAttempt.status.in_([a.value for a in ACTIVE_ATTEMPT_STATUSES])))
            channels = await ami.send_list({"Action": "CoreShowChannels"})
            ours = sum(1 for c in channels if (c.get("Uniqueid") or "").startswith("cb-"))
            peaks["db"] = max(peaks["db"], active or 0)
            peaks["asterisk"] = max(peaks["asterisk"], ours)
            await asyncio.sleep(0.05)

    watchers = [asyncio.create_task(w()) for w in (watch_carrier, watch_hotline)]
    try:
        campaign_id, citizens = await _backlog(ctx)
        async with schedulers(settings, postgres_url, tmp_path) as procs:
            await _ready(procs, settings.fastagi_port)
            sampler = asyncio.create_task(sample_load())
            started = asyncio.get_running_loop().time()
            async with ctx.db.transaction() as s:
                await camp.change_status(s, ctx, campaign_id, "start", utcnow())

            async def finished() -> bool:  # housekeeping finishes it once every task is decided
                async with ctx.db.sessions() as s:
                    campaign = await s.get(Campaign, campaign_id)
                    live = await s.scalar(select(func.count()).select_from(CallbackAttempt)
                                          .where(CallbackAttempt.status != "ended"))
                return campaign is not None and campaign.status == "finished" and live == 0

            try:
                async with asyncio.timeout(DRAIN_WITHIN):
                    while not await finished():  # noqa: ASYNC110 (the database has no waiter)
                        await asyncio.sleep(0.2)
            except TimeoutError:
                pytest.fail(f"the backlog did not drain within {DRAIN_WITHIN} s\n"
                            f"{_logs(procs)}\n{asterisk.log_tail(30)}")
            drained = asyncio.get_running_loop().time() - started
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            await asyncio.sleep(0.5)  # the last Newchannel events are in
            for p in procs:  # a clean stop: SIGTERM, exit 0
                p.process.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(p.process.wait(), 40) for p in procs]
            assert codes == [0, 0], _logs(procs)
            assert not any("Traceback" in p.log_text() for p in procs), _logs(procs)
            scheduler_ids = {p.scheduler_id: p.name for p in procs}

        async with ctx.db.sessions() as s:
            tasks = list(await s.scalars(
                select(CallbackTask).where(CallbackTask.campaign_id == campaign_id)))
            attempts = list(await s.scalars(select(CallbackAttempt)))
        number_of = {t.id: ctx.vault.reveal(t.number_enc) for t in tasks}
        kind_of = {t.id: citizens[number_of[t.id]] for t in tasks}
        by_task: dict[int, list[CallbackAttempt]] = {t.id: [] for t in tasks}
        for a in attempts:
            by_task[a.task_id].append(a)

        def dials(task_id: int) -> list[tuple[int, str | None, str | None]]:
            return [(a.attempt_no, a.outcome, scheduler_ids.get(a.scheduler_id or ""))
                    for a in by_task[task_id]]

        report = "\n".join(
            f"task {t.id} {kind_of[t.id]}: {t.status}/{t.outcome}, attempts {dials(t.id)}, "
            f"carrier calls {carrier_calls[number_of[t.id]]}"
            for t in tasks)

        # the database: every task decided, each attempt once, nothing skipped
        assert len(tasks) == len(citizens), report
        assert Counter((a.task_id, a.attempt_no) for a in attempts).most_common(1)[0][1] == 1
        for t in tasks:
            nos = sorted(a.attempt_no for a in by_task[t.id])
            assert nos == list(range(1, len(nos) + 1)) == list(range(1, t.attempts_made + 1)), \
                report
        assert {a.status for a in attempts} == {"ended"}, report
        assert "skipped" not in {a.outcome for a in attempts}, report
        expected = {  # kind → (task status, task outcome, attempts)
            "rater": ("completed", "rated", 1),
            "hangup": ("unreachable", "max_attempts", MAX_ATTEMPTS),
            "busy": ("unreachable", "max_attempts", MAX_ATTEMPTS),
        }
        for t in tasks:
            assert (t.status, t.outcome, len(by_task[t.id])) == expected[kind_of[t.id]], report
            if kind_of[t.id] == "rater":
                assert t.result_rating_id is not None, report
        # only these two processes dialled (which of them wins each claim is up to timing:
        # one may take every task, and that is correct as long as each task is dialled once)
        assert {a.scheduler_id for a in attempts} <= set(scheduler_ids), report

        # the carrier: every number received exactly one call per attempt, and nothing else
        assert {n: carrier_calls[n] for n in citizens} == {
            number_of[t.id]: len(by_task[t.id]) for t in tasks}, report
        assert sum(carrier_calls.values()) == len(attempts), (carrier_calls, report)
        # the hotline's Asterisk: one channel per attempt, under the attempt's own ChannelId
        assert hotline_channels == Counter(a.channel_id for a in attempts), report

        # the overall cap, across both processes: reached, never exceeded
        assert peaks["db"] == CAP, peaks
        assert 1 <= peaks["asterisk"] <= CAP, peaks
        assert drained < DRAIN_WITHIN
    finally:
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await ctx.close()
