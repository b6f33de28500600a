"""The 回访 after 整改 (issue 10 "Back to the citizen"): once the department has replied, the
citizen is called back in the standing 差评回访 campaign; the answer (solved? and satisfaction
with the 整改) is stored on the item and closes it or starts another 整改 round.

Thin adapter over callback_scheduler: a case's task in the standing campaign is unique, so a
later round re-arms that task (its attempt numbers keep counting; the attempt budget is given
again) instead of adding a second one.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bad_ratings import service
from bad_ratings.deadlines import Policy
from bad_ratings.machine import State
from callback_scheduler.campaigns import standing_campaign
from callback_scheduler.lifecycle import plan_next
from callback_scheduler.tasks import apply_plan, new_task, rules_for
from callback_scheduler.windows import end_of_day, local_date
from hotline.levels import Level
from hotline.privacy import ProtectedNumber
from service.context import AppContext
from storage.models import BadRatingItem, CallbackTask, Case, Rating

log = logging.getLogger("hotline.bad_ratings.followup")


async def case_of(session: AsyncSession, row: BadRatingItem) -> Case | None:
    if row.case_id is not None:
        return await session.get(Case, row.case_id)
    if row.call_id is not None:
        return await session.scalar(select(Case).where(Case.call_id == row.call_id).limit(1))
    return None


async def schedule(
    session: AsyncSession, ctx: AppContext, row: BadRatingItem, now: dt.datetime
) -> CallbackTask | None:
    """Arm the item's 回访 and move it to 回访; without a case or number it stays 已整改 and
    the case is flagged for a person (never silently dropped, rule 5)."""
    case = await case_of(session, row)
    if case is None or not case.citizen_enc:
        if case is not None:
            case.needs_attention = True
        log.warning("已整改 item has no number to call back", extra={"item_id": row.id})
        return None
    settings = ctx.settings
    campaign = await standing_campaign(session, now)
    rules = rules_for(campaign, ctx)
    due = ctx.workdays.add_working_days(local_date(now, settings.tz),
                                        settings.callback_deadline_working_days)
    deadline = end_of_day(due, settings.tz)
    task = await session.scalar(
        select(CallbackTask).where(CallbackTask.campaign_id == campaign.id,
                                   CallbackTask.case_id == case.id).with_for_update()
    )
    if task is None:
        number = ProtectedNumber(case.citizen_enc, case.citizen_hash or "",
                                 case.citizen_masked or "")
        task = new_task(ctx, campaign, rules, number, now=now, deadline=deadline,
                        case_id=case.id)
        session.add(task)
    else:
        task.result_rating_id = None  # the next answer is a further evaluation (defect 6)
        task.max_attempts = task.attempts_made + rules.max_attempts
        task.deadline_at = deadline
        apply_plan(task, plan_next(now, deadline=deadline, rules=rules,
                                   workdays=ctx.workdays, tz=settings.tz), now)
    case.callback_due = due
    await session.flush()
    await service.start_followup(session, row, policy=ctx.bad_rating_policy, now=now)
    return task


async def after_act(
    session: AsyncSession, ctx: AppContext, row: BadRatingItem, now: dt.datetime
) -> None:
    """What follows a person's step: a 整改 reply (已整改) arms the 回访 at once."""
    if row.state == State.RECTIFIED:
        await schedule(session, ctx, row, now)


async def on_answer(
    session: AsyncSession, case: Case, rating: Rating, resolved: bool | None, *,
    policy: Policy, now: dt.datetime,
) -> BadRatingItem | None:
    """A 回访 answer on a case whose item awaits its 回访: store it on the item (idempotent:
    the 回访 saves again after the reason menu)."""
    links = [BadRatingItem.case_id == case.id]
    if case.call_id is not None:
        links.append(BadRatingItem.call_id == case.call_id)
    row = await session.scalar(
        select(BadRatingItem).where(or_(*links),
                                    BadRatingItem.state.in_([State.RECTIFIED, State.FOLLOWUP]))
        .with_for_update().limit(1)
    )
    if row is None or row.followup_rating_id == rating.id:
        return None
    return await service.followup_result(session, row.id, solved=resolved,
                                         level=Level(rating.level), rating_id=rating.id,
                                         policy=policy, now=now)
