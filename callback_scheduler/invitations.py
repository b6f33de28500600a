"""电话邀评 by itself (DOMAIN.md rules 2 and 3; issue 10 "Evaluation coverage"): a served call
that was not rated gets one invitation call before its default window closes; the default
基本满意 applies only if the invitation fails.

Each scheduler pass looks for ``not_rated`` calls whose default window closes within
``rating_invite_lead_hours`` and that never had a task in any campaign, and puts one task for
each in the standing 电话邀评 campaign, due at the next call window and with the window's end
as its deadline. Abandoned calls (no service given) are never invited. The contact policy
(callback_scheduler.contact) still decides when, or whether, the number is rung; a citizen
with several unrated calls gets one invitation at a time. The default-rating job leaves a call
alone while its invitation is pending or under way (ivr.defaults); a failed invitation is not
put on the manual list: the default is its fallback (rule 2).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler.campaigns import ensure_standing
from callback_scheduler.lifecycle import OPEN_TASK_STATUSES, CampaignStatus, TaskStatus
from callback_scheduler.rules import CampaignKind
from callback_scheduler.tables import SYSTEM_RATING_INVITE
from callback_scheduler.tasks import new_task, rules_for
from hotline.privacy import ProtectedNumber
from ivr.defaults import reference_time, window_end
from service.context import AppContext
from storage.models import Call, CallbackTask, Campaign, DoNotCall, SurveyStatus

log = logging.getLogger("hotline.callback")

INVITE_NAME = "电话邀评"
INVITE_PRIORITY = 50  # after the mandatory 差评回访 (100), before supervisors' campaigns (0)
BATCH = 500


async def standing_invite_campaign(session: AsyncSession, now: dt.datetime) -> Campaign:
    """The one standing 电话邀评 campaign, created running on first use (rules: the settings)."""
    return await ensure_standing(
        session, now, owner=SYSTEM_RATING_INVITE, name=INVITE_NAME, kind=CampaignKind.RATING_INVITE,
        priority=INVITE_PRIORITY,
    )


async def invite_due(ctx: AppContext, now: dt.datetime) -> int:
    """Put every call now due for its invitation in the standing campaign; how many."""
    if not ctx.settings.rating_invite_auto:
        return 0
    lead = dt.timedelta(hours=ctx.settings.rating_invite_lead_hours)
    added = 0
    async with ctx.db.transaction() as s:
        campaign = await standing_invite_campaign(s, now)
        if campaign.status != CampaignStatus.RUNNING:
            return 0  # a supervisor paused the invitations
        rules = rules_for(campaign, ctx)
        open_statuses = [t.value for t in OPEN_TASK_STATUSES]
        calls = (await s.scalars(
            select(Call)
            .where(
                Call.survey_status == SurveyStatus.NOT_RATED,
                Call.caller_enc.is_not(None),
                # one invitation per call, ever, whatever campaign it was in
                ~exists().where(CallbackTask.call_id == Call.id),
                ~exists().where(DoNotCall.number_hash == Call.caller_hash),
                # the citizen is not already waiting for a call from any campaign
                ~exists().where(CallbackTask.number_hash == Call.caller_hash,
                                CallbackTask.status.in_(open_statuses)),
            )
            .order_by(Call.id)
            .limit(BATCH)
        )).all()
        taken: set[str] = set()
        for call in calls:
            closes = window_end(ctx, reference_time(ctx, call))
            if not closes - lead <= now < closes or call.caller_hash in taken:
                continue
            number = ProtectedNumber(call.caller_enc or "", call.caller_hash or "",
                                     call.caller_masked or "")
            task = new_task(ctx, campaign, rules, number, now=now, deadline=closes,
                            call_id=call.id)
            if task.status != TaskStatus.PENDING:
                continue  # no call window before the default: the default applies (rule 2)
            s.add(task)
            taken.add(number.digest)
            added += 1
    if added:
        log.info("rating invitations queued", extra={"calls": added})
    return added
