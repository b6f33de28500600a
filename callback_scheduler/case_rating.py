"""一事一评 for closed cases without a 差评 (DOMAIN.md "Kinds of rating", rules 2 and 3; issue 10
"Evaluation coverage"). A closed 差评 case gets its mandatory 回访 in the standing 差评回访
campaign (rule 5); every other closed case in scope (setting ``case_rating_scope``: ``all``,
``bad_only``, or ``sample`` of ``case_rating_sample_percent``) gets one 一事一评 call in the
standing campaign "一事一评", before its default window closes. If that call does not get a
rating, the case's default 基本满意 (assessNumber 2, ``source = default``) is written by the
default-rating job (ivr.defaults), never by a person: a failed 一事一评 is not put on the
manual list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler.campaigns import ensure_standing
from callback_scheduler.lifecycle import TaskStatus
from callback_scheduler.rules import CampaignKind
from callback_scheduler.tables import SYSTEM_CASE_RATING
from callback_scheduler.tasks import new_task, rules_for
from hotline.privacy import ProtectedNumber
from hotline.settings import Settings
from ivr.defaults import window_end
from service.context import AppContext
from storage.models import CallbackTask, Campaign, Case

log = logging.getLogger("hotline.callback")

CASE_RATING_NAME = "一事一评"
CASE_RATING_PRIORITY = 40  # after 差评回访 (100) and 电话邀评 (50)


def in_scope(settings: Settings, case_number: str) -> bool:
    """Whether a closed case without a 差评 gets a 一事一评 call. A sample is drawn by the
    case number's hash, so the same case is always in or out (a retried close, a restart)."""
    scope = settings.case_rating_scope
    if scope == "all":
        return True
    if scope == "bad_only":
        return False
    bucket = int.from_bytes(hashlib.sha256(case_number.encode()).digest()[:4], "big") % 100
    return bucket < settings.case_rating_sample_percent


async def standing_case_rating_campaign(session: AsyncSession, now: dt.datetime) -> Campaign:
    return await ensure_standing(
        session, now, owner=SYSTEM_CASE_RATING, name=CASE_RATING_NAME,
        kind=CampaignKind.SATISFACTION_FOLLOWUP, priority=CASE_RATING_PRIORITY,
    )


async def schedule(
    session: AsyncSession, ctx: AppContext, case: Case, now: dt.datetime
) -> CallbackTask | None:
    """The 一事一评 call of a closed case without a 差评, or None (out of scope, no number, no
    call window before the default: then the default applies)."""
    if not case.citizen_enc or case.closed_at is None:
        return None
    if not in_scope(ctx.settings, case.case_number):
        return None
    campaign = await standing_case_rating_campaign(session, now)
    existing = await session.scalar(select(CallbackTask).where(
        CallbackTask.campaign_id == campaign.id, CallbackTask.case_id == case.id))
    if existing is not None:
        return existing
    number = ProtectedNumber(case.citizen_enc, case.citizen_hash or "", case.citizen_masked or "")
    task = new_task(ctx, campaign, rules_for(campaign, ctx), number, now=now,
                    deadline=window_end(ctx, case.closed_at), case_id=case.id)
    if task.status != TaskStatus.PENDING:
        return None
    session.add(task)
    await session.flush()
    log.info("一事一评 task created", extra={"case_number": case.case_number, "task_id": task.id})
    return task
