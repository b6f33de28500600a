"""The FastAGI ``callback`` route over a simulated Asterisk (ivr.agi.simulated), on SQLite and
PostgreSQL: DOMAIN.md rule 5 (the 回访 result is stored as 一事一评, assessNumber 2, and
forwarded like any rating; "未解决" or a 差评 flags the case) and rule 8 (do-not-call key)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from callback_scheduler import tasks
from callback_scheduler.followup_agi import VAR_ATTEMPT
from callback_scheduler.rules import Outcome
from service import agi as server
from storage.models import CallbackAttempt, CallbackTask, Case, DoNotCall, OutboxEntry, Rating
from tests.helpers.callbacks import NOW
from tests.helpers.followup_agi import Citizen, agi, setup_call


async def test_rule5_followup_stores_a_case_rating_and_flags_unresolved(
    tmp_path: Path, database_url: str,
) -> None:
    ctx, c = await setup_call(tmp_path, database_url, "GD-2025-0042")
    try:
        # the department's name was recorded in the studio: it is said
        name_id = "callback-dept-" + hashlib.sha1("住建局".encode()).hexdigest()[:12]
        ctx.settings.effective_prompts_dir.mkdir(parents=True, exist_ok=True)
        (ctx.settings.effective_prompts_dir / f"{name_id}.wav").write_bytes(b"\0" * 64)
        citizen = Citizen(keys=["2", "4", "2"], variables={VAR_ATTEMPT: str(c.attempt_id)})
        assert await agi(ctx, citizen) == "rated"
        # the case number's digits, one by one (SAY DIGITS takes digits only), in Chinese:
        # the channel arrived with language en (a site's own context), so the route set zh
        # before anything was said
        says = [i for i, cmd in enumerate(citizen.commands) if cmd[:2] == ["SAY", "DIGITS"]]
        assert [citizen.commands[i][2] for i in says] == ["20250042"]
        assert citizen.variables["CHANNEL(language)"] == "zh"
        language_set = citizen.commands.index(["SET", "VARIABLE", "CHANNEL(language)", "zh"])
        assert language_set < says[0]
        assert citizen.played[:3] == ["hotline/callback-greeting", "hotline/callback-case",
                                      "hotline/callback-department"]
        assert f"hotline/{name_id}" in citizen.played
        assert citizen.variables["CALLBACK_RESULT"] == "4"
        async with ctx.db.sessions() as s:
            rating = await s.scalar(select(Rating).where(Rating.project_no == "GD-2025-0042"))
            case = await s.scalar(select(Case).where(Case.case_number == "GD-2025-0042"))
            entries = (await s.scalars(select(OutboxEntry).where(
                OutboxEntry.project_no == "GD-2025-0042"))).all()
            ivr = await s.scalar(select(CallbackAttempt.outcome)
                                 .where(CallbackAttempt.id == c.attempt_id))
        assert rating is not None
        assert (rating.kind, rating.assess_number, rating.source, rating.level,
                rating.reason_codes) == ("per_case", 2, "callback", 4, "2")
        assert case is not None and case.needs_attention
        assert len(entries) == 1 and entries[0].ready_at <= entries[0].next_attempt_at
        assert ivr == "rated"
        # the dialer then sees the Hangup: the task is done, not retried
        async with ctx.db.transaction() as s:
            await tasks.finish_attempt(s, ctx, c.attempt_id, Outcome.ANSWERED_NO_RATING, now=NOW)
            task = await s.get(CallbackTask, c.task_id)
        assert task is not None and (task.status, task.outcome) == ("completed", "rated")
    finally:
        await ctx.close()


async def test_rule8_do_not_call_key_puts_the_number_on_the_list(
    tmp_path: Path, database_url: str,
) -> None:
    ctx, c = await setup_call(tmp_path, database_url, "GD-DNC")
    try:
        citizen = Citizen(keys=["9"], variables={VAR_ATTEMPT: str(c.attempt_id)})
        assert await agi(ctx, citizen) == "do_not_call"
        assert "hotline/callback-dnc-done" in citizen.played
        async with ctx.db.transaction() as s:
            assert [d.number_masked for d in await s.scalars(select(DoNotCall))] == [
                "138****8000"]
            await tasks.finish_attempt(s, ctx, c.attempt_id, Outcome.ANSWERED_NO_RATING, now=NOW)
            task = await s.get(CallbackTask, c.task_id)
        assert task is not None and (task.status, task.outcome) == ("completed", "do_not_call")
    finally:
        await ctx.close()


async def test_hangup_before_rating_leaves_the_task_to_be_retried(
    tmp_path: Path, database_url: str,
) -> None:
    ctx, c = await setup_call(tmp_path, database_url, "GD-HUP")
    try:
        citizen = Citizen(keys=["1", "hangup"], variables={VAR_ATTEMPT: str(c.attempt_id)})
        assert await agi(ctx, citizen) == "hangup"
        async with ctx.db.transaction() as s:
            await tasks.finish_attempt(s, ctx, c.attempt_id, Outcome.ANSWERED_NO_RATING, now=NOW)
            task = await s.get(CallbackTask, c.task_id)
            assert await s.scalar(select(Rating).where(Rating.project_no == "GD-HUP")) is None
        assert task is not None and (task.status, task.outcome) == ("pending",
                                                                    "answered_no_rating")
        assert await agi(ctx, Citizen(variables={})) == "unknown_attempt"
    finally:
        await ctx.close()


@pytest.mark.parametrize("language", ["zh", "zh_CN"])
async def test_a_chinese_channel_keeps_its_language(
    tmp_path: Path, sqlite_template: Path, language: str,
) -> None:
    """Our dialplan sets zh before the AGI (and a site may use a zh dialect, which Asterisk
    looks up before zh): the route leaves it alone."""
    db = tmp_path / "hotline.db"
    await asyncio.to_thread(shutil.copyfile, sqlite_template, db)
    ctx, c = await setup_call(tmp_path, f"sqlite+aiosqlite:///{db}", "GD-2025-7")
    try:
        citizen = Citizen(keys=["9"], variables={VAR_ATTEMPT: str(c.attempt_id)})
        assert await agi(ctx, citizen, language=language) == "do_not_call"
        assert "CHANNEL(language)" not in citizen.variables
        assert any(cmd[:2] == ["SAY", "DIGITS"] for cmd in citizen.commands)
    finally:
        await ctx.close()


def test_the_callback_route_is_in_the_fastagi_route_table() -> None:
    assert server.ROUTES["callback"] == "callback_scheduler.followup_agi:handle"
