"""电话邀评 by itself before the default (DOMAIN.md rules 2 and 3; issue 10 "Evaluation
coverage"), on SQLite and PostgreSQL: one invitation per unrated served call, queued before
the default window closes; the default waits for it and applies only if it fails; an
invitation never overwrites a vote already given."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from callback_scheduler import tasks
from callback_scheduler.claims import claim
from callback_scheduler.invitations import invite_due
from callback_scheduler.results import Answer
from callback_scheduler.rules import Outcome
from callback_scheduler.tables import SYSTEM_RATING_INVITE
from hotline.levels import Level
from ivr import defaults
from service.context import AppContext
from storage.models import Call, CallbackTask, Campaign, Rating, SurveyStatus
from tests.helpers.callbacks import NOW, add_call, bj, finish, rate_call

ENDED = bj(2025, 9, 24, 11)  # the default window (7 natural days) closes 2025-10-01 11:00
CLOSES = bj(2025, 10, 1, 11)


async def _tasks(ctx: AppContext) -> list[CallbackTask]:
    async with ctx.db.sessions() as s:
        return list((await s.scalars(select(CallbackTask).order_by(CallbackTask.id))).all())


async def test_rule3_an_unrated_served_call_gets_one_invitation_before_its_default(
    ctx: AppContext,
) -> None:
    await add_call(ctx, "I-1", status=SurveyStatus.NOT_RATED, started=ENDED)
    await add_call(ctx, "I-abandoned", status=SurveyStatus.ABANDONED, started=ENDED,
                   number="13900139000")
    await add_call(ctx, "I-rated", started=ENDED, number="13700137000")
    # more than 48 hours before the window closes: not yet
    assert await invite_due(ctx, CLOSES - dt.timedelta(hours=49)) == 0
    assert await invite_due(ctx, NOW) == 1
    assert await invite_due(ctx, NOW + dt.timedelta(minutes=5)) == 0  # one invitation, ever
    [task] = await _tasks(ctx)
    async with ctx.db.sessions() as s:
        campaign = await s.get(Campaign, task.campaign_id)
        call = await s.scalar(select(Call).where(Call.linkedid == "I-1"))
    assert campaign is not None and campaign.created_by == SYSTEM_RATING_INVITE
    assert call is not None and task.call_id == call.id
    assert (task.status, task.next_attempt_at, task.deadline_at) == ("pending", NOW, CLOSES)


async def test_rule2_the_default_waits_for_the_invitation_and_applies_if_it_fails(
    ctx: AppContext,
) -> None:
    await add_call(ctx, "I-2", status=SurveyStatus.NOT_RATED, started=ENDED)
    assert await invite_due(ctx, NOW) == 1
    [attempt] = await claim(ctx, scheduler_id="s", now=NOW, want=1)
    # the window has closed, but the invitation is ringing: no default yet
    report = await defaults.run_once(ctx, CLOSES + dt.timedelta(minutes=1))
    assert report.defaulted == 0
    await finish(ctx, attempt.attempt_id, Outcome.NO_ANSWER, CLOSES + dt.timedelta(minutes=2))
    [task] = await _tasks(ctx)
    assert (task.status, task.outcome) == ("unreachable", "deadline")
    report = await defaults.run_once(ctx, CLOSES + dt.timedelta(minutes=3))
    assert report.defaulted == 1
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == "I-2"))
        # a failed invitation is not a person's job: the default was its fallback
        assert await tasks.manual_list(s) == []
    assert call is not None and call.survey_status == SurveyStatus.DEFAULTED


async def test_rule3_an_invitation_answer_is_the_vote_and_never_overwrites_one(
    ctx: AppContext,
) -> None:
    await add_call(ctx, "I-3", status=SurveyStatus.NOT_RATED, started=ENDED)
    assert await invite_due(ctx, NOW) == 1
    [attempt] = await claim(ctx, scheduler_id="s", now=NOW, want=1)
    # meanwhile the citizen's vote arrives another way (a late keypad save)
    await rate_call(ctx, "I-3", Level.VERY_DISSATISFIED)
    async with ctx.db.transaction() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == "I-3"))
        assert call is not None
        call.survey_status = SurveyStatus.RATED
    async with ctx.db.transaction() as s:
        await tasks.record_ivr_result(s, ctx, attempt.attempt_id, Answer(Level.VERY_SATISFIED),
                                      Outcome.RATED, now=NOW)
    async with ctx.db.sessions() as s:
        ratings = (await s.scalars(select(Rating).where(Rating.project_no == "CALL-I-3"))).all()
    assert [(r.assess_number, r.level, r.source) for r in ratings] == [(1, 5, "keypad")]
    [task] = await _tasks(ctx)
    assert task.result_rating_id == ratings[0].id


async def test_rule3_invitation_answered_becomes_the_calls_vote(ctx: AppContext) -> None:
    await add_call(ctx, "I-4", status=SurveyStatus.NOT_RATED, started=ENDED)
    assert await invite_due(ctx, NOW) == 1
    [attempt] = await claim(ctx, scheduler_id="s", now=NOW, want=1)
    async with ctx.db.transaction() as s:
        await tasks.record_ivr_result(s, ctx, attempt.attempt_id, Answer(Level.SATISFIED),
                                      Outcome.RATED, now=NOW)
    await finish(ctx, attempt.attempt_id, Outcome.ANSWERED_NO_RATING, NOW)
    assert (await defaults.run_once(ctx, CLOSES + dt.timedelta(hours=1))).defaulted == 0
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == "I-4"))
        rating = await s.scalar(select(Rating).where(Rating.project_no == "CALL-I-4"))
    assert call is not None and call.survey_status == SurveyStatus.RATED
    assert rating is not None and (rating.level, rating.source, rating.assess_number) == (
        2, "callback", 1)
