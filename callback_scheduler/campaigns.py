"""Campaigns in the database: create, start/pause/cancel, fill by filter or CSV, report.

Kinds: 差评回访 (case_followup), 电话邀评 (rating_invite: calls not rated, DOMAIN.md rule 3),
满意度回访 (satisfaction_followup). One standing case_followup campaign, created on first use,
receives the 回访 of every closed 差评 case (rule 5); supervisors may pause and resume it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler import csvimport
from callback_scheduler.lifecycle import (
    OPEN_TASK_STATUSES,
    CampaignStatus,
    TaskStatus,
    accepts_tasks,
    campaign_after,
)
from callback_scheduler.rules import CampaignKind, CampaignRules, RulesError, resolve, stored_form
from callback_scheduler.tables import SYSTEM_CASE_FOLLOWUP, SYSTEM_PREFIX
from callback_scheduler.tasks import MANUAL_REACHED, is_system, new_task, rules_for
from callback_scheduler.windows import end_of_day, task_deadline
from hotline.privacy import ProtectedNumber
from service.context import AppContext
from storage.models import (
    Call,
    CallbackTask,
    Campaign,
    Case,
    CaseStatus,
    DoNotCall,
    Rating,
    SurveyStatus,
)

log = logging.getLogger("hotline.callback")

STANDING_NAME = "差评回访"
STANDING_PRIORITY = 100  # mandatory 回访 goes before optional campaigns


class CampaignError(ValueError):
    """A request about a campaign that cannot be done; the message says why."""


class CampaignNotFound(LookupError):
    pass


class CampaignFilter(BaseModel):
    """Which calls or cases a campaign calls. Dates are Beijing dates, inclusive: of the case's
    closing (办结), or of the call for 电话邀评."""

    model_config = ConfigDict(extra="forbid")

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    department_code: str | None = Field(default=None, max_length=32)
    levels: list[int] | None = Field(
        default=None, description="cases rated at one of these levels (1 非常满意 … 5 非常不满意)"
    )
    not_rated: bool = Field(default=False, description="calls not rated (for 电话邀评)")

    @model_validator(mode="after")
    def _consistent(self) -> CampaignFilter:
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ValueError("date_to is before date_from")
        if self.levels is not None:
            if not self.levels or any(not 1 <= lv <= 5 for lv in self.levels):
                raise ValueError("levels must be among 1..5")
            if self.not_rated:
                raise ValueError("levels and not_rated exclude each other")
        return self


@dataclass
class AddResult:
    added: int = 0
    already_in_campaign: int = 0
    no_number: int = 0
    do_not_call: int = 0
    # the case, or the citizen, already has an open task (in any campaign, or earlier in this
    # batch): one contact policy across campaigns (DOMAIN.md rule 8; issue 8 defect 4)
    already_open: int = 0


@dataclass
class Summary:
    campaign_id: int
    name: str
    kind: str
    status: str
    priority: int
    rules: dict[str, Any]
    tasks: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    total: int = 0
    reached: int = 0
    rated: int = 0

    @property
    def callback_rate(self) -> float | None:
        """回访率: tasks whose citizen was reached (by the dialer or a person), of those that
        were not cancelled."""
        counted = self.total - self.tasks.get(TaskStatus.CANCELLED.value, 0)
        return None if counted == 0 else self.reached / counted


# --------------------------------------------------------------------------- lookups
async def get_campaign(session: AsyncSession, campaign_id: int, *, lock: bool = False) -> Campaign:
    campaign = await session.get(Campaign, campaign_id, with_for_update=lock or None)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {campaign_id}")
    return campaign


async def standing_campaign(session: AsyncSession, now: dt.datetime) -> Campaign:
    """The one standing 差评回访 campaign; created running on first use. Its rules are empty,
    so it follows the ``callback_*`` settings."""
    return await ensure_standing(
        session, now, owner=SYSTEM_CASE_FOLLOWUP, name=STANDING_NAME,
        kind=CampaignKind.CASE_FOLLOWUP, priority=STANDING_PRIORITY,
    )


async def ensure_standing(
    session: AsyncSession, now: dt.datetime, *, owner: str, name: str, kind: CampaignKind,
    priority: int,
) -> Campaign:
    """The one standing campaign ``owner`` (a ``system:`` name) runs, created running with
    empty rules (it follows the settings) on first use."""
    stmt = select(Campaign).where(Campaign.created_by == owner)
    found = await session.scalar(stmt)
    if found is not None:
        return found
    try:
        async with session.begin_nested():
            campaign = Campaign(
                name=name, kind=kind.value, status=CampaignStatus.RUNNING.value,
                priority=priority, rules={}, created_by=owner, created_at=now, updated_at=now,
            )
            session.add(campaign)
        return campaign
    except IntegrityError:  # another process created it first (unique index, migration 0003)
        found = await session.scalar(stmt)
        assert found is not None
        return found


# ------------------------------------------------------------------------- lifecycle
async def create_campaign(
    session: AsyncSession,
    ctx: AppContext,
    *,
    name: str,
    kind: str,
    rules: dict[str, Any] | None,
    created_by: str,
    now: dt.datetime,
    priority: int = 0,
) -> Campaign:
    """A draft campaign whose rules are the settings' defaults overlaid by ``rules``, stored
    complete so a later settings change does not alter it."""
    name = name.strip()
    if not name or len(name) > 128:
        raise CampaignError("name must be 1 to 128 characters")
    try:
        kind = CampaignKind(kind).value
    except ValueError:
        raise CampaignError(
            f"kind must be one of {', '.join(k.value for k in CampaignKind)}"
        ) from None
    try:
        resolved = resolve(rules, ctx.settings)
    except RulesError as exc:
        raise CampaignError(f"rules.{exc}") from exc
    if created_by.startswith(SYSTEM_PREFIX):  # that prefix marks the standing campaign
        created_by = "user:" + created_by
    campaign = Campaign(
        name=name, kind=kind, status=CampaignStatus.DRAFT.value, priority=priority,
        rules=stored_form(resolved), created_by=created_by[:64], created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    await session.flush()
    log.info("campaign created", extra={"campaign_id": campaign.id, "kind": kind})
    return campaign


async def change_status(
    session: AsyncSession, ctx: AppContext, campaign_id: int, action: str, now: dt.datetime
) -> Campaign:
    """start / pause / cancel. Pausing takes effect at once: the claim only picks running
    campaigns and the dialer checks the status again right before each Originate."""
    campaign = await get_campaign(session, campaign_id, lock=True)
    try:
        new = campaign_after(campaign.status, action, system=is_system(campaign))
    except ValueError as exc:
        raise CampaignError(str(exc)) from exc
    if new == CampaignStatus.CANCELLED:
        # tasks not under way end now; calls under way finish and are not retried
        await session.execute(
            update(CallbackTask)
            .where(CallbackTask.campaign_id == campaign.id,
                   CallbackTask.status == TaskStatus.PENDING)
            .values(status=TaskStatus.CANCELLED.value, next_attempt_at=None, updated_at=now)
        )
    if new != campaign.status:
        log.info("campaign status", extra={
            "campaign_id": campaign.id, "from": campaign.status, "to": new.value})
        campaign.status = new.value
        campaign.updated_at = now
    return campaign


# ----------------------------------------------------------------------- filling
async def _blocked(session: AsyncSession, hashes: set[str]) -> set[str]:
    if not hashes:
        return set()
    return set(await session.scalars(
        select(DoNotCall.number_hash).where(DoNotCall.number_hash.in_(hashes))))


def _local_range(
    flt: CampaignFilter, column: Any, ctx: AppContext
) -> list[Any]:
    tz = ctx.settings.tz
    conds = []
    if flt.date_from:
        conds.append(column >= end_of_day(flt.date_from - dt.timedelta(days=1), tz))
    if flt.date_to:
        conds.append(column < end_of_day(flt.date_to, tz))
    return conds


def _rating_of_case(levels: list[int]) -> Any:
    """A valid rating at one of ``levels`` that rates the case or one of its calls."""
    return exists().where(
        Rating.valid.is_(True),
        Rating.level.in_(levels),
        or_(
            Rating.case_id == Case.id,
            and_(Case.call_id.is_not(None), Rating.call_id == Case.call_id),
            Rating.call_id.in_(
                select(Call.id).where(Call.case_number == Case.case_number).correlate(Case)
            ),
        ),
    )


async def add_by_filter(
    session: AsyncSession,
    ctx: AppContext,
    campaign_id: int,
    flt: CampaignFilter,
    now: dt.datetime,
) -> AddResult:
    campaign = await _fillable(session, campaign_id)
    rules = rules_for(campaign, ctx)
    invite = campaign.kind == CampaignKind.RATING_INVITE
    if invite != flt.not_rated:
        raise CampaignError(
            "a rating_invite campaign takes not_rated calls; the other kinds take closed cases"
        )
    # (case_id, call_id, protected number) per candidate
    candidates: list[tuple[int | None, int | None, ProtectedNumber | None]] = []
    if invite:
        stmt = select(Call).where(
            Call.survey_status == SurveyStatus.NOT_RATED,
            ~exists().where(Rating.call_id == Call.id, Rating.valid.is_(True)),
            *_local_range(flt, Call.started_at, ctx),
        )
        if flt.department_code:
            stmt = stmt.where(Call.department_code == flt.department_code)
        for call in await session.scalars(stmt.order_by(Call.id)):
            number = (ProtectedNumber(call.caller_enc, call.caller_hash or "", call.caller_masked
                                      or "") if call.caller_enc else None)
            candidates.append((None, call.id, number))
    else:
        stmt = select(Case).where(
            Case.status == CaseStatus.CLOSED, *_local_range(flt, Case.closed_at, ctx)
        )
        if flt.department_code:
            stmt = stmt.where(Case.department_code == flt.department_code)
        if flt.levels:
            stmt = stmt.where(_rating_of_case(flt.levels))
        for case in await session.scalars(stmt.order_by(Case.id)):
            number = (ProtectedNumber(case.citizen_enc, case.citizen_hash or "",
                                      case.citizen_masked or "") if case.citizen_enc else None)
            candidates.append((case.id, None, number))
    return await _add_tasks(session, ctx, campaign, rules, candidates, now)


async def _fillable(session: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await get_campaign(session, campaign_id, lock=True)
    if is_system(campaign):
        raise CampaignError("the standing 差评回访 campaign is filled by closing cases")
    if not accepts_tasks(campaign.status):
        raise CampaignError(f"a {campaign.status} campaign takes no new tasks")
    return campaign


async def _existing(session: AsyncSession, campaign_id: int) -> tuple[set[int], set[int]]:
    rows = await session.execute(
        select(CallbackTask.case_id, CallbackTask.call_id)
        .where(CallbackTask.campaign_id == campaign_id)
    )
    cases, calls = set(), set()
    for case_id, call_id in rows:
        if case_id is not None:
            cases.add(case_id)
        if call_id is not None:
            calls.add(call_id)
    return cases, calls


async def _open_elsewhere(
    session: AsyncSession, campaign_id: int, case_ids: set[int], hashes: set[str]
) -> tuple[set[int | None], set[str]]:
    """Of these cases and numbers, those with an open task in another campaign, and the
    numbers with an open task in this one."""
    open_statuses = [t.value for t in OPEN_TASK_STATUSES]
    cases: set[int | None] = set()
    if case_ids:
        cases = set(await session.scalars(
            select(CallbackTask.case_id).where(
                CallbackTask.case_id.in_(case_ids),
                CallbackTask.campaign_id != campaign_id,
                CallbackTask.status.in_(open_statuses))))
    numbers: set[str] = set()
    if hashes:
        numbers = set(await session.scalars(
            select(CallbackTask.number_hash).where(
                CallbackTask.number_hash.in_(hashes),
                CallbackTask.status.in_(open_statuses))))
    return cases, numbers


async def _add_tasks(
    session: AsyncSession,
    ctx: AppContext,
    campaign: Campaign,
    rules: CampaignRules,
    candidates: list[tuple[int | None, int | None, ProtectedNumber | None]],
    now: dt.datetime,
) -> AddResult:
    result = AddResult()
    have_cases, have_calls = await _existing(session, campaign.id)
    blocked = await _blocked(session, {n.digest for _, _, n in candidates if n})
    open_cases, open_numbers = await _open_elsewhere(
        session, campaign.id, {c for c, _, _ in candidates if c is not None},
        {n.digest for _, _, n in candidates if n})
    deadline = task_deadline(rules, now, ctx.workdays, ctx.settings.tz)
    for case_id, call_id, number in candidates:
        if (case_id is not None and case_id in have_cases) or (
            call_id is not None and call_id in have_calls
        ):
            result.already_in_campaign += 1
            continue
        if number is None:
            result.no_number += 1
            continue
        if number.digest in blocked:  # asked not to be called: not put on any list
            result.do_not_call += 1
            continue
        if case_id in open_cases or number.digest in open_numbers:
            result.already_open += 1
            continue
        session.add(new_task(ctx, campaign, rules, number, now=now, deadline=deadline,
                             case_id=case_id, call_id=call_id))
        if case_id is not None:
            have_cases.add(case_id)
        if call_id is not None:
            have_calls.add(call_id)
        open_numbers.add(number.digest)  # one task per citizen: a frequent caller's calls
        result.added += 1
    await session.flush()
    log.info("campaign tasks added", extra={"campaign_id": campaign.id, **vars(result)})
    return result


async def import_csv(
    session: AsyncSession, ctx: AppContext, campaign_id: int, data: bytes | str,
    now: dt.datetime,
) -> AddResult:
    """All rows or none: any bad row raises csvimport.ImportRejected listing every bad line
    (the caller's transaction then rolls back, so nothing is half-imported)."""
    campaign = await _fillable(session, campaign_id)
    rules = rules_for(campaign, ctx)
    rows = csvimport.parse(data)
    invite = campaign.kind == CampaignKind.RATING_INVITE
    errors: list[csvimport.RowError] = []
    cases = {c.case_number: c for c in await session.scalars(
        select(Case).where(Case.case_number.in_({r.case_number for r in rows if r.case_number})))}
    calls = {c.linkedid: c for c in await session.scalars(
        select(Call).where(Call.linkedid.in_({r.linkedid for r in rows if r.linkedid})))}
    have_cases, have_calls = await _existing(session, campaign.id)
    candidates: list[tuple[int | None, int | None, ProtectedNumber | None]] = []
    for row in rows:
        if invite and row.case_number:
            errors.append(csvimport.RowError(row.line, "a rating_invite campaign takes linkedid"))
            continue
        if not invite and row.linkedid:
            errors.append(csvimport.RowError(row.line, f"a {campaign.kind} campaign takes "
                                             "case_number"))
            continue
        stored: ProtectedNumber | None = None
        case_id = call_id = None
        if row.case_number:
            case = cases.get(row.case_number)
            if case is None:
                errors.append(csvimport.RowError(row.line, "unknown case_number"))
                continue
            if case.id in have_cases:
                errors.append(csvimport.RowError(row.line, "case already in this campaign"))
                continue
            case_id = case.id
            if case.citizen_enc:
                stored = ProtectedNumber(case.citizen_enc, case.citizen_hash or "",
                                         case.citizen_masked or "")
        else:
            call = calls.get(row.linkedid or "")
            if call is None:
                errors.append(csvimport.RowError(row.line, "unknown linkedid"))
                continue
            if call.id in have_calls:
                errors.append(csvimport.RowError(row.line, "call already in this campaign"))
                continue
            call_id = call.id
            if call.caller_enc:
                stored = ProtectedNumber(call.caller_enc, call.caller_hash or "",
                                         call.caller_masked or "")
        number = ctx.vault.protect(row.number) if row.number else stored
        if number is None:
            errors.append(csvimport.RowError(row.line, "no number: give one in the number column"))
            continue
        candidates.append((case_id, call_id, number))
    if errors:
        raise csvimport.ImportRejected(errors)
    return await _add_tasks(session, ctx, campaign, rules, candidates, now)


# ---------------------------------------------------------------------- reporting
async def summary(session: AsyncSession, campaign_id: int) -> Summary:
    campaign = await get_campaign(session, campaign_id)
    result = Summary(
        campaign_id=campaign.id, name=campaign.name, kind=campaign.kind,
        status=campaign.status, priority=campaign.priority, rules=dict(campaign.rules or {}),
    )
    rows = await session.execute(
        select(CallbackTask.status, CallbackTask.outcome, func.count(),
               func.count(CallbackTask.result_rating_id))
        .where(CallbackTask.campaign_id == campaign.id)
        .group_by(CallbackTask.status, CallbackTask.outcome)
    )
    for status, outcome, count, rated in rows:
        result.tasks[status] = result.tasks.get(status, 0) + count
        if outcome:
            result.outcomes[outcome] = result.outcomes.get(outcome, 0) + count
        result.total += count
        result.rated += rated
        if status == TaskStatus.COMPLETED or (
            status == TaskStatus.MANUAL_DONE and outcome == MANUAL_REACHED
        ):
            result.reached += count
    return result


async def list_campaigns(session: AsyncSession) -> list[Summary]:
    ids = await session.scalars(select(Campaign.id).order_by(Campaign.id))
    return [await summary(session, cid) for cid in list(ids)]


async def add_do_not_call(
    session: AsyncSession, number: ProtectedNumber, source: str, now: dt.datetime
) -> bool:
    """Put a number on the do-not-call list (DOMAIN.md rule 8); False if it was already."""
    found = await session.scalar(
        select(DoNotCall).where(DoNotCall.number_hash == number.digest))
    if found is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(DoNotCall(number_hash=number.digest, number_masked=number.masked,
                                  source=source[:32], created_at=now))
    except IntegrityError:
        return False
    return True
