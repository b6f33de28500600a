"""The dialer against a scripted AMI server, on SQLite and PostgreSQL (DOMAIN.md "Asterisk
facts": Originate with Async reports OriginateResponse Reason 4/5/3/8/0; a client that re-sends
after a reconnect can dial a citizen twice). Rule 5: every attempt ends with an outcome; rule 8:
never a second dial, and a paused campaign dials nobody.

The fake Asterisk decides each call by the citizen number's last two digits: 05 busy, 03 no
answer, 08 congestion, 04 answers (then the "IVR" stores a rating and the call hangs up),
09 drops the AMI connection on the Originate and never creates the call, 06 drops the
connection but the call goes on (answered) and ends a little later, 07 does not answer the
Originate within the client's timeout and creates the (answered) call only after it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from ami.client import AmiClient
from callback_scheduler import campaigns as camp
from callback_scheduler import tasks
from callback_scheduler.claims import claim
from callback_scheduler.dialer import Dialer
from callback_scheduler.results import Answer
from callback_scheduler.rules import Outcome
from hotline.levels import Level
from service.context import AppContext
from storage.models import CallbackAttempt, CallbackTask
from tests.conftest import make_settings
from tests.helpers.callbacks import NOW, closed_bad_case
from tests.helpers.fake_ami import SECRET, FakeAsterisk


async def make(tmp_path: Path, url: str, fake: FakeAsterisk,
               **overrides: object) -> tuple[AppContext, AmiClient, Dialer, asyncio.Task[None]]:
    ctx = AppContext.create(make_settings(
        tmp_path, database_url=url, ami_timeout=1.0, callback_response_grace_seconds=1.0,
        **overrides))
    ami = AmiClient("127.0.0.1", fake.port, "hotline", SECRET, timeout=1.0,
                    reconnect_delay=0.05, keepalive=None)
    await ami.connect()
    dialer = Dialer(ctx, ami, clock=lambda: NOW)
    pump = asyncio.create_task(dialer.pump(ami.events("OriginateResponse", "Hangup")))
    return ctx, ami, dialer, pump


async def teardown(ctx: AppContext, ami: AmiClient, pump: asyncio.Task[None]) -> None:
    await ami.close()
    await asyncio.wait_for(pump, 2)
    await ctx.close()


async def rate_via_ivr(ctx: AppContext, attempt_id: int) -> None:
    """What the follow-up IVR does when the citizen presses 1 (resolved) and 2 (满意)."""
    async with ctx.db.transaction() as s:
        await tasks.record_ivr_result(s, ctx, attempt_id, Answer(Level.SATISFIED, True),
                                      Outcome.RATED, now=NOW)


async def test_rule5_each_originate_outcome_is_recorded_and_retried_after_its_delay(
    tmp_path: Path, database_url: str, fake: FakeAsterisk,
) -> None:
    ctx, ami, dialer, pump = await make(tmp_path, database_url, fake)
    try:
        fake.on_answer = lambda attempt_id: rate_via_ivr(ctx, attempt_id)
        for suffix in ("05", "03", "08", "04"):
            await closed_bad_case(ctx, f"D-{suffix}", number=f"138000000{suffix}")
        claims = sorted(await claim(ctx, scheduler_id="t", now=NOW, want=10),
                        key=lambda c: c.task_id)
        outcomes = [await dialer.dial(c) for c in claims]
        assert outcomes == [Outcome.BUSY, Outcome.NO_ANSWER, Outcome.CONGESTION, Outcome.RATED]
        sent = fake.originates[0]
        assert sent["Async"] == "true" and sent["Context"] == "callback"
        assert sent["Channel"] == "PJSIP/13800000005@carrier"
        assert sent["ChannelId"] == claims[0].channel_id
        assert sent.action_id == claims[0].action_id
        assert f"CALLBACK_ATTEMPT_ID={claims[0].attempt_id}" in sent.get_all("Variable")
        async with ctx.db.sessions() as s:
            found = {t.id: t for t in await s.scalars(select(CallbackTask))}
            attempts = {a.id: a for a in await s.scalars(select(CallbackAttempt))}
        busy, no_answer, congestion, rated = (found[c.task_id] for c in claims)
        assert (busy.status, busy.next_attempt_at) == ("pending", NOW + dt.timedelta(minutes=30))
        assert no_answer.next_attempt_at == NOW + dt.timedelta(minutes=60)
        assert congestion.next_attempt_at == NOW + dt.timedelta(minutes=15)
        assert (rated.status, rated.outcome) == ("completed", "rated")
        assert {a.status for a in attempts.values()} == {"ended"}
        assert (attempts[claims[0].attempt_id].reason,
                attempts[claims[0].attempt_id].hangup_cause) == (5, 17)
    finally:
        await teardown(ctx, ami, pump)


async def test_rule8_lost_originate_response_is_reconciled_never_resent(
    tmp_path: Path, database_url: str, fake: FakeAsterisk,
) -> None:
    """The connection drops right after an Originate: the call that went on is found again by
    its ChannelId and followed to its end; the one that never started ends as unknown and is
    retried only after the retry delay. Neither Originate is sent a second time."""
    ctx, ami, dialer, pump = await make(tmp_path, database_url, fake)
    try:
        for suffix in ("06", "09"):
            await closed_bad_case(ctx, f"X-{suffix}", number=f"138000000{suffix}")
        alive, gone = sorted(await claim(ctx, scheduler_id="t", now=NOW, want=10),
                             key=lambda c: c.task_id)
        assert await asyncio.wait_for(dialer.dial(alive), 15) is Outcome.ANSWERED_NO_RATING
        assert await asyncio.wait_for(dialer.dial(gone), 15) is Outcome.UNKNOWN
        assert [m["ChannelId"] for m in fake.originates] == [alive.channel_id, gone.channel_id]
        async with ctx.db.sessions() as s:
            unknown = await s.get(CallbackTask, gone.task_id)
        assert unknown is not None and (unknown.status, unknown.next_attempt_at) == (
            "pending", NOW + dt.timedelta(minutes=60))
        assert await claim(ctx, scheduler_id="t", now=NOW + dt.timedelta(minutes=59),
                           want=10) == []
    finally:
        await teardown(ctx, ami, pump)


async def test_rule8_after_an_ami_timeout_the_call_is_followed_not_reconciled_too_early(
    tmp_path: Path, database_url: str, fake: FakeAsterisk,
) -> None:
    """Issue 8 defect 10: after an AmiTimeout the reconcile ran before Asterisk had created
    the channel, found nothing and ended as unknown a call about to ring (so its cap and the
    citizen's contact policy were freed during a live call, and a retry was planned)."""
    ctx, ami, dialer, pump = await make(tmp_path, database_url, fake)
    try:
        await closed_bad_case(ctx, "SLOW-07", number="13800000007")
        [slow] = await claim(ctx, scheduler_id="t", now=NOW, want=1)
        dialing = asyncio.create_task(dialer.dial(slow))
        await asyncio.sleep(1.2)  # past the AMI timeout, before the channel exists
        async with ctx.db.sessions() as s:
            attempt = await s.get(CallbackAttempt, slow.attempt_id)
        assert attempt is not None and attempt.status != "ended"  # still a call in progress
        assert await asyncio.wait_for(dialing, 15) is Outcome.ANSWERED_NO_RATING
        assert len(fake.originates) == 1
    finally:
        await teardown(ctx, ami, pump)


async def test_rule8_ami_cut_mid_campaign_never_dials_twice_and_every_attempt_ends(
    tmp_path: Path, database_url: str, fake: FakeAsterisk,
) -> None:
    """Several calls at once while the connection drops twice: whatever each attempt's fate,
    no Originate reaches Asterisk twice and every attempt ends with an outcome."""
    ctx, ami, dialer, pump = await make(tmp_path, database_url, fake)
    try:
        for suffix in ("09", "06", "05", "03"):
            await closed_bad_case(ctx, f"X-{suffix}", number=f"138000000{suffix}")
        claims = await claim(ctx, scheduler_id="t", now=NOW, want=10)
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(dialer.dial(c) for c in claims)), 20)
        per_channel = Counter(m["ChannelId"] for m in fake.originates)
        assert set(per_channel.values()) == {1}  # never twice
        for c, outcome in zip(claims, outcomes, strict=True):
            if c.channel_id not in per_channel:  # written into the dying connection, or not
                assert outcome in (Outcome.UNKNOWN, Outcome.SKIPPED)
        async with ctx.db.sessions() as s:
            statuses = set(await s.scalars(select(CallbackAttempt.status)))
        assert statuses == {"ended"}
    finally:
        await teardown(ctx, ami, pump)


async def test_rule8_paused_between_claim_and_dial_sends_nothing(
    tmp_path: Path, database_url: str, fake: FakeAsterisk,
) -> None:
    ctx, ami, dialer, pump = await make(tmp_path, database_url, fake)
    try:
        closed = await closed_bad_case(ctx, "P-1", number="13800000005")
        [c] = await claim(ctx, scheduler_id="t", now=NOW, want=1)
        async with ctx.db.transaction() as s:
            await camp.change_status(s, ctx, c.campaign_id, "pause", NOW)
        assert await dialer.dial(c) is Outcome.SKIPPED
        assert fake.originates == []
        async with ctx.db.sessions() as s:
            task = await s.get(CallbackTask, closed.task.id)  # type: ignore[union-attr]
        assert task is not None and (task.status, task.attempts_made) == ("pending", 0)
    finally:
        await teardown(ctx, ami, pump)


async def test_originate_not_sent_when_ami_is_down_is_skipped_not_counted(
    tmp_path: Path, database_url: str, fake: FakeAsterisk,
) -> None:
    ctx, ami, dialer, pump = await make(tmp_path, database_url, fake)
    try:
        await closed_bad_case(ctx, "N-1", number="13800000005")
        [c] = await claim(ctx, scheduler_id="t", now=NOW, want=1)
        await fake.stop()  # Asterisk gone; the client cannot reconnect
        await asyncio.sleep(0.1)
        assert await dialer.dial(c) is Outcome.SKIPPED
        async with ctx.db.sessions() as s:
            task = await s.get(CallbackTask, c.task_id)
        assert task is not None and (task.status, task.attempts_made) == ("pending", 0)
    finally:
        await teardown(ctx, ami, pump)


async def test_orphaned_attempt_of_a_dead_scheduler_is_settled(
    tmp_path: Path, database_url: str, fake: FakeAsterisk,
) -> None:
    ctx, ami, dialer, pump = await make(tmp_path, database_url, fake)
    try:
        await closed_bad_case(ctx, "O-1", number="13800000005")
        [c] = await claim(ctx, scheduler_id="dead", now=NOW, want=1)
        assert await dialer.settle_orphans(NOW + dt.timedelta(minutes=5)) == 0  # may still ring
        assert await dialer.settle_orphans(NOW + dt.timedelta(hours=1)) == 1
        async with ctx.db.sessions() as s:
            task = await s.get(CallbackTask, c.task_id)
        assert task is not None and (task.status, task.outcome) == ("pending", "unknown")
    finally:
        await teardown(ctx, ami, pump)
