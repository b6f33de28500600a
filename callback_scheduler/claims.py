"""Claiming dial attempts: each attempt is a row, claimed once, by one scheduler process.

One claiming transaction at a time, across every process: on PostgreSQL under a transaction
advisory lock, on SQLite under the database's write lock (taken first, so the counts read
next are the latest). Inside it the calls under way are counted from the database, so the
overall, per-trunk and per-campaign caps hold across processes; due tasks are picked with
``FOR UPDATE SKIP LOCKED`` so a task row busy in another transaction (an attempt being ended)
is passed over rather than waited for; (task, attempt_no) is unique, so even a bug could not
insert the same attempt twice.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, literal, null, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler.contact import ContactLimits, hold_until, load_of
from callback_scheduler.lifecycle import (
    ACTIVE_ATTEMPT_STATUSES,
    AttemptStatus,
    CampaignStatus,
    TaskPlan,
    TaskStatus,
    Unreachable,
    plan_next,
)
from callback_scheduler.pacing import Limits, Load, Pacer, Request
from callback_scheduler.rules import CampaignRules, Outcome, RulesError
from callback_scheduler.tasks import apply_plan, rules_for
from callback_scheduler.windows import why_not_now
from service.context import AppContext
from storage.models import CallbackAttempt, CallbackTask, Campaign, DoNotCall

log = logging.getLogger("hotline.callback")

#: pg_advisory_xact_lock key of the claiming transaction ("cb" "claim" in ASCII, any constant)
CLAIM_LOCK_KEY = 0x6362_636C_6169_6D
#: look at this many due tasks per wanted call: some will be outside their window, capped ...
CANDIDATE_FACTOR = 4


@dataclass(frozen=True)
class Claim:
    """An attempt this process now owns and must dial (or end as skipped). No clear number:
    the dialer decrypts it right before the Originate."""

    attempt_id: int
    task_id: int
    attempt_no: int
    campaign_id: int
    action_id: str
    channel_id: str
    trunk: str
    caller_id: str
    number_enc: str


async def take_claim_lock(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
    else:
        # A write as the first statement makes SQLite take its write lock now (waiting up to
        # busy_timeout), like BEGIN IMMEDIATE: no other claimer can count at the same time.
        await session.execute(text("UPDATE callback_campaigns SET id = id WHERE 1 = 0"))


def limits_of(ctx: AppContext) -> Limits:
    s = ctx.settings
    return Limits(
        overall=s.callback_max_concurrent_calls,
        per_trunk={t.name: t.max_calls for t in s.callback_trunks},
    )


def contact_limits(ctx: AppContext) -> ContactLimits:
    s = ctx.settings
    return ContactLimits(per_day=s.callback_citizen_max_calls_per_day,
                         per_week=s.callback_citizen_max_calls_per_week)


async def current_load(session: AsyncSession, now: dt.datetime) -> Load:
    """Calls under way and calls started in the last minute, from the attempts table (one
    statement: inside the claiming lock every round trip delays every other claimer)."""
    load = Load()
    active = (
        select(
            literal("active").label("what"), CallbackTask.campaign_id, CallbackAttempt.trunk,
            func.count().label("n"),
        )
        .select_from(CallbackAttempt)
        .join(CallbackTask, CallbackTask.id == CallbackAttempt.task_id)
        .where(CallbackAttempt.status.in_([a.value for a in ACTIVE_ATTEMPT_STATUSES]))
        .group_by(CallbackTask.campaign_id, CallbackAttempt.trunk)
    )
    recent = (
        select(
            literal("recent").label("what"), CallbackTask.campaign_id,
            null().label("trunk"), func.count().label("n"),
        )
        .select_from(CallbackAttempt)
        .join(CallbackTask, CallbackTask.id == CallbackAttempt.task_id)
        .where(
            CallbackAttempt.started_at > now - dt.timedelta(minutes=1),
            # a skipped attempt dialled nobody
            CallbackAttempt.outcome.is_(None) | (CallbackAttempt.outcome != Outcome.SKIPPED),
        )
        .group_by(CallbackTask.campaign_id)
    )
    recent_counts: Counter[int] = Counter()
    for what, campaign_id, trunk, count in await session.execute(union_all(active, recent)):
        if what == "active":
            load.overall += count
            load.per_trunk[trunk or "?"] += count
            load.per_campaign[campaign_id] += count
        else:
            recent_counts[campaign_id] += count
    load.started_last_minute = recent_counts
    return load


async def claim(
    ctx: AppContext, *, scheduler_id: str, now: dt.datetime, want: int
) -> list[Claim]:
    """Claim up to ``want`` attempts that may be dialled now, in one transaction."""
    if want <= 0:
        return []
    async with ctx.db.transaction() as session:
        await take_claim_lock(session)
        pacer = Pacer(limits_of(ctx), await current_load(session, now))
        if pacer.full:
            return []
        candidates, blocked = await _due(session, now, want * CANDIDATE_FACTOR)
        # one contact policy across every campaign (DOMAIN.md rule 8; issue 8 defect 4)
        citizens = await load_of(session, {t.number_hash for t, _ in candidates}, now)
        contact = contact_limits(ctx)
        chosen: list[tuple[CallbackTask, Campaign, CampaignRules]] = []
        rules_cache: dict[int, CampaignRules | None] = {}
        for task, campaign in candidates:
            if len(chosen) >= want or pacer.full:
                break
            if campaign.id not in rules_cache:
                try:
                    rules_cache[campaign.id] = rules_for(campaign, ctx)
                except RulesError as exc:
                    log.error("campaign rules unusable; its tasks wait",
                              extra={"campaign_id": campaign.id, "error": str(exc)})
                    rules_cache[campaign.id] = None
            rules = rules_cache[campaign.id]
            if rules is None:
                continue
            held = _hold_back(ctx, task, rules, now, blocked)
            if held is not None:
                apply_plan(task, held, now)
                continue
            citizen = citizens[task.number_hash]
            wait = hold_until(citizen, contact, now, ctx.settings.tz)
            if wait is not None:
                apply_plan(task, plan_next(wait, deadline=task.deadline_at, rules=rules,
                                           workdays=ctx.workdays, tz=ctx.settings.tz), now)
                continue
            if not pacer.admit(Request(campaign.id, rules.trunk, rules.max_concurrent,
                                       rules.calls_per_minute)):
                continue
            chosen.append((task, campaign, rules))
            citizen.add_call(now)  # the next task for this number in this round waits
        return await _new_attempts(session, chosen, scheduler_id, now)


async def _due(
    session: AsyncSession, now: dt.datetime, limit: int
) -> tuple[list[tuple[CallbackTask, Campaign]], set[str]]:
    """The next due tasks of the running campaigns, in claiming order (campaign priority, task
    priority, due time, id), locked with SKIP LOCKED; and which of their numbers are on the
    do-not-call list (read by the same query: one round trip fewer in the claiming lock).

    One query per running campaign, not one join over all tasks: the order crosses two tables,
    so a join must sort every due task (a million pending: hundreds of ms); per campaign, the
    partial index ``ix_callback_tasks_claim`` (campaign, priority DESC, due, id; pending only)
    yields them already in order and the scan stops at ``limit`` (bench/callback_claim.py).
    Campaigns of equal priority are merged by the same key, as the join ordered them."""
    campaigns = (await session.scalars(
        select(Campaign)
        .where(Campaign.status == CampaignStatus.RUNNING)
        .order_by(Campaign.priority.desc(), Campaign.id)
    )).all()
    on_list = (
        exists().where(DoNotCall.number_hash == CallbackTask.number_hash).label("do_not_call")
    )
    due: list[tuple[CallbackTask, Campaign]] = []
    blocked: set[str] = set()
    for _, group in itertools.groupby(campaigns, key=lambda c: c.priority):
        same_priority: list[tuple[CallbackTask, Campaign]] = []
        for campaign in group:
            rows = await session.execute(
                select(CallbackTask, on_list)
                .where(
                    CallbackTask.campaign_id == campaign.id,
                    CallbackTask.status == TaskStatus.PENDING,
                    CallbackTask.next_attempt_at <= now,
                )
                .order_by(
                    CallbackTask.priority.desc(), CallbackTask.next_attempt_at, CallbackTask.id
                )
                .limit(limit - len(due))
                .with_for_update(skip_locked=True, of=CallbackTask)
            )
            for task, listed in rows:
                same_priority.append((task, campaign))
                if listed:
                    blocked.add(task.number_hash)
        same_priority.sort(key=lambda tc: (-tc[0].priority, tc[0].next_attempt_at, tc[0].id))
        due += same_priority[: limit - len(due)]
        if len(due) >= limit:
            break
    return due, blocked


def _hold_back(
    ctx: AppContext, task: CallbackTask, rules: CampaignRules, now: dt.datetime,
    blocked: set[str],
) -> TaskPlan | None:
    """Why a due task must not be dialled now, as its new plan; None if it may be."""
    if task.number_hash in blocked:
        return TaskPlan(TaskStatus.UNREACHABLE, outcome=Unreachable.DO_NOT_CALL.value)
    if task.deadline_at is not None and now >= task.deadline_at:
        return TaskPlan(TaskStatus.UNREACHABLE, outcome=Unreachable.DEADLINE.value)
    if task.attempts_made >= task.max_attempts:
        return TaskPlan(TaskStatus.UNREACHABLE, outcome=Unreachable.MAX_ATTEMPTS.value)
    if why_not_now(rules, now, ctx.workdays, ctx.settings.tz) is not None:
        # the window closed (or the rules changed) since it was planned: move it on
        return plan_next(now, deadline=task.deadline_at, rules=rules, workdays=ctx.workdays,
                         tz=ctx.settings.tz)
    return None


async def _new_attempts(
    session: AsyncSession,
    chosen: list[tuple[CallbackTask, Campaign, CampaignRules]],
    scheduler_id: str,
    now: dt.datetime,
) -> list[Claim]:
    """One attempt for each chosen task, in two statements whatever their number (one
    multi-row INSERT … RETURNING that numbers the attempts itself, the task updates sent as one
    batch): a claim's cost was its round trips, a max(attempt_no), an insert and an update per
    task (issue 13)."""
    if not chosen:
        return []
    attempts = CallbackAttempt.__table__
    earlier = attempts.alias("earlier")
    # the next attempt number, read by the insert itself (no round trip of its own)
    next_no = (
        select(func.coalesce(func.max(earlier.c.attempt_no), 0) + 1)
        .where(earlier.c.task_id == bindparam("b_task"))
        .scalar_subquery()
    )
    rows: list[dict[str, Any]] = []
    for task, _, rules in chosen:
        rows.append({
            "task_id": task.id, "b_task": task.id,
            "status": AttemptStatus.DIALING.value, "scheduler_id": scheduler_id,
            "action_id": f"cb-{uuid.uuid4().hex}",
            # Our own ChannelId: after an AMI disconnect the call is found again by it
            "channel_id": f"cb-{uuid.uuid4()}",
            "trunk": rules.trunk, "started_at": now, "created_at": now, "updated_at": now,
        })
        task.status = TaskStatus.DIALING.value
        task.attempts_made += 1
        task.updated_at = now
    # one statement for all rows (SQLAlchemy's "insertmanyvalues"), compiled once and cached
    made = {
        row.task_id: row
        for row in await session.execute(
            insert(attempts).values(attempt_no=next_no).returning(
                attempts.c.id, attempts.c.task_id, attempts.c.attempt_no,
                attempts.c.action_id, attempts.c.channel_id, sort_by_parameter_order=True,
            ),
            rows,
        )
    }
    # the task updates (the same columns each) go as one executemany
    await session.flush()
    return [
        Claim(
            attempt_id=made[task.id].id, task_id=task.id, attempt_no=made[task.id].attempt_no,
            campaign_id=campaign.id, action_id=made[task.id].action_id,
            channel_id=made[task.id].channel_id, trunk=rules.trunk,
            caller_id=rules.caller_id, number_enc=task.number_enc,
        )
        for task, campaign, rules in chosen
    ]


async def why_not_dial(ctx: AppContext, claim: Claim, now: dt.datetime) -> str | None:
    """The last check right before the Originate: campaign still running, inside a window,
    number not on the do-not-call list, deadline not passed. None: dial."""
    async with ctx.db.sessions() as session:
        task = await session.get(CallbackTask, claim.task_id)
        campaign = await session.get(Campaign, claim.campaign_id)
        if task is None or campaign is None:
            return "task or campaign gone"
        if campaign.status != CampaignStatus.RUNNING:
            return f"campaign {campaign.status}"
        if task.status != TaskStatus.DIALING:
            return f"task {task.status}"
        if task.deadline_at is not None and now >= task.deadline_at:
            return "deadline passed"
        dnc = await session.scalar(
            select(func.count()).select_from(DoNotCall)
            .where(DoNotCall.number_hash == task.number_hash)
        )
        if dnc:
            return "number on the do-not-call list"
        try:
            rules = rules_for(campaign, ctx)
        except RulesError as exc:
            return f"campaign rules unusable: {exc}"
        return why_not_now(rules, now, ctx.workdays, ctx.settings.tz)
