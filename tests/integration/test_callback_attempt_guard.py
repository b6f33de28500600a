"""Issue 8 defect 8: a 回访 result is accepted only for an attempt this service dialled that is
in progress on that very channel (CALLBACK_ATTEMPT_ID checked against the attempt's status and
its channel's uniqueid, the Originate ChannelId). Otherwise nothing is stored and nobody is put
on the do-not-call list (DOMAIN.md rules 5 and 8), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from callback_scheduler import tasks
from callback_scheduler.followup_agi import VAR_ATTEMPT, handle
from callback_scheduler.rules import Outcome
from ivr.agi.simulated import environment_lines, memory_channel
from service.context import AppContext
from storage.models import CallbackAttempt, DoNotCall, Rating
from tests.helpers.callbacks import NOW
from tests.helpers.followup_agi import Citizen, setup_call


async def run_route(ctx: AppContext, citizen: Citizen, uniqueid: str) -> str:
    channel, _ = memory_channel(citizen, environment_lines(route="callback", uniqueid=uniqueid))
    await channel.read_environment()
    return await handle(ctx, channel)


async def nothing_stored(ctx: AppContext) -> None:
    """Only the case's own 差评 (made by setup_call) is there: no 回访 rating, no do-not-call."""
    async with ctx.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Rating)) == 1
        assert await s.scalar(select(func.count()).select_from(Rating).where(
            Rating.assess_number > 1)) == 0
        assert await s.scalar(select(func.count()).select_from(DoNotCall)) == 0


async def test_a_callback_result_on_another_channel_is_refused(
    tmp_path: Path, database_url: str,
) -> None:
    ctx, c = await setup_call(tmp_path, database_url, "GD-GUARD-1")
    try:
        # a peer names a real attempt in progress, but from a channel that is not the one
        # the dialer originated: neither the 差评 vote nor the do-not-call key counts
        for keys in (["1", "5", "1"], ["9"]):
            citizen = Citizen(keys=list(keys), variables={VAR_ATTEMPT: str(c.attempt_id)})
            assert await run_route(ctx, citizen, "1700000000.99") == "unknown_attempt"
            assert citizen.played == []
        await nothing_stored(ctx)
    finally:
        await ctx.close()


async def test_a_callback_result_for_an_ended_attempt_is_refused(
    tmp_path: Path, database_url: str,
) -> None:
    ctx, c = await setup_call(tmp_path, database_url, "GD-GUARD-2")
    try:
        async with ctx.db.transaction() as s:
            await tasks.finish_attempt(s, ctx, c.attempt_id, Outcome.NO_ANSWER, now=NOW)
        async with ctx.db.sessions() as s:
            attempt = await s.get(CallbackAttempt, c.attempt_id)
        assert attempt is not None and attempt.channel_id == c.channel_id
        citizen = Citizen(keys=["9"], variables={VAR_ATTEMPT: str(c.attempt_id)})
        # the right channel id, but the attempt is over: no longer in progress
        assert await run_route(ctx, citizen, c.channel_id) == "unknown_attempt"
        await nothing_stored(ctx)
    finally:
        await ctx.close()


async def test_made_up_attempt_ids_are_refused(tmp_path: Path, database_url: str) -> None:
    ctx, c = await setup_call(tmp_path, database_url, "GD-GUARD-3")
    try:
        for raw in (str(c.attempt_id + 1000), "-1", "1e3", "x" * 100, ""):
            citizen = Citizen(keys=["9"], variables={VAR_ATTEMPT: raw})
            assert await run_route(ctx, citizen, c.channel_id) == "unknown_attempt"
        await nothing_stored(ctx)
        # and the real channel with the real attempt still works afterwards
        citizen = Citizen(keys=["9"], variables={VAR_ATTEMPT: str(c.attempt_id)})
        assert await run_route(ctx, citizen, c.channel_id) == "do_not_call"
    finally:
        await ctx.close()
