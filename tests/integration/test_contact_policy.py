"""One contact policy across every campaign (DOMAIN.md rule 8 "不得骚扰"; issue 8 defect 4,
issue 10 "Evaluation coverage"), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from sqlalchemy import select

from callback_scheduler import campaigns as camp
from callback_scheduler.claims import claim
from callback_scheduler.rules import Outcome
from service.context import AppContext
from storage.models import CallbackTask, SurveyStatus
from tests.helpers.callbacks import NOW, add_call, bj, closed_bad_case, context, finish, task_of

X, Y, Z = "13800138000", "13900139000", "13700137000"


async def test_rule8_one_claim_round_dials_each_citizen_once(
    tmp_path: Path, database_url: str,
) -> None:
    """The reproduced case: one round dialled one number twice and another three times."""
    ctx = await context(tmp_path, database_url)
    try:
        for i in range(2):
            await closed_bad_case(ctx, f"GD-X{i}", number=X)
        for i in range(3):
            await closed_bad_case(ctx, f"GD-Y{i}", number=Y)
        await closed_bad_case(ctx, "GD-Z", number=Z)
        claimed = await claim(ctx, scheduler_id="s", now=NOW, want=10)
        numbers = sorted(ctx.vault.reveal(c.number_enc) for c in claimed)
        assert numbers == sorted([X, Y, Z])
        # the held tasks wait for the next look, inside the window, and are not dropped
        async with ctx.db.sessions() as s:
            held = (await s.scalars(select(CallbackTask).where(
                CallbackTask.status == "pending"))).all()
        assert len(held) == 3
        assert all(t.next_attempt_at is not None and t.next_attempt_at > NOW for t in held)
        assert await claim(ctx, scheduler_id="s", now=NOW + dt.timedelta(minutes=11),
                           want=10) == []  # still in progress
    finally:
        await ctx.close()


async def test_rule8_two_schedulers_at_once_never_dial_one_number_twice(
    tmp_path: Path, database_url: str,
) -> None:
    ctx = await context(tmp_path, database_url)
    try:
        for i in range(4):
            await closed_bad_case(ctx, f"GD-P{i}", number=X)
        rounds = await asyncio.gather(*[
            claim(ctx, scheduler_id=f"s{i}", now=NOW, want=4) for i in range(4)])
        assert sum(len(r) for r in rounds) == 1
    finally:
        await ctx.close()


async def test_rule8_calls_per_citizen_per_day_across_campaigns(
    tmp_path: Path, database_url: str,
) -> None:
    ctx = await context(tmp_path, database_url, callback_citizen_max_calls_per_day=2)
    try:
        a = await closed_bad_case(ctx, "GD-D1", number=X)
        b = await closed_bad_case(ctx, "GD-D2", number=X)
        c = await closed_bad_case(ctx, "GD-D3", number=X)
        for minutes in (0, 11):
            [one] = await claim(ctx, scheduler_id="s",
                                now=NOW + dt.timedelta(minutes=minutes), want=5)
            await finish(ctx, one.attempt_id, Outcome.BUSY,
                         NOW + dt.timedelta(minutes=minutes + 1))
        # two calls today: the third citizen's task waits for the next working day
        # (2025-10-01..08 is 国庆; 10-09 is the next working day)
        assert await claim(ctx, scheduler_id="s", now=NOW + dt.timedelta(minutes=22),
                           want=5) == []
        waiting = [await task_of(ctx, t.task.id) for t in (a, b, c) if t.task]
        third = [t for t in waiting if t.attempts_made == 0]
        assert len(third) == 1 and third[0].next_attempt_at == bj(2025, 10, 9, 9)
        assert third[0].status == "pending"
        assert len(await claim(ctx, scheduler_id="s", now=bj(2025, 10, 9, 9), want=5)) == 1
    finally:
        await ctx.close()


async def test_rule8_invite_campaign_makes_one_task_per_citizen_and_skips_open_cases(
    ctx: AppContext,
) -> None:
    """A frequent caller's three unrated calls: one 邀评 task. A 满意度回访 over closed cases
    skips the case already open in the standing 差评回访 campaign."""
    for i in range(3):
        await add_call(ctx, f"F-{i}", status=SurveyStatus.NOT_RATED, number=Y)
    await add_call(ctx, "F-other", status=SurveyStatus.NOT_RATED, number=Z)
    await closed_bad_case(ctx, "GD-O1", number=X)  # in the standing campaign, open
    async with ctx.db.transaction() as s:
        invite = await camp.create_campaign(s, ctx, name="邀评", kind="rating_invite",
                                            rules={}, created_by="sup", now=NOW)
        added = await camp.add_by_filter(s, ctx, invite.id,
                                         camp.CampaignFilter(not_rated=True), NOW)
        follow = await camp.create_campaign(s, ctx, name="满意度", kind="satisfaction_followup",
                                            rules={}, created_by="sup", now=NOW)
        again = await camp.add_by_filter(s, ctx, follow.id,
                                         camp.CampaignFilter(levels=[4, 5]), NOW)
    assert (added.added, added.already_open) == (2, 2)
    assert (again.added, again.already_open) == (0, 1)
