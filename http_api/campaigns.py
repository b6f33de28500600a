"""回访 / 邀评 campaigns and the manual follow-up list, for supervisors.

A campaign is created as a draft (rules default to the ``callback_*`` settings), filled by a
filter or a CSV upload (all rows or none), then started; pausing stops new dials at once.
Citizens the dialer could not reach are listed for a manual call, whose result a supervisor
records here (it counts toward 回访率, DOMAIN.md rule 5). Numbers are masked; one number is
revealed per request, and each reveal is logged (rule 8).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler import campaigns as camp
from callback_scheduler import tasks
from callback_scheduler.results import Answer
from callback_scheduler.rules import CampaignKind
from hotline.clock import utcnow
from hotline.levels import Level
from http_api.auth import requires
from http_api.bodies import Int32, RowId, read_json, read_path, read_query, respond
from http_api.cases import TaskOut, task_out
from http_api.errors import ApiError
from http_api.keys import app_ctx, principal
from http_api.openapi import operation
from service.context import AppContext
from storage.audit import record_audit

TAGS = ["campaigns"]
ROLES = ("supervisor",)
MAX_CSV_BYTES = 1024 * 1024  # the app's body limit; split larger files


class RulesIn(BaseModel):
    """Any field left out takes the ``callback_*`` setting."""

    model_config = ConfigDict(extra="forbid")

    windows: list[str] | None = Field(default=None, description='e.g. ["09:00-12:00"], Beijing')
    working_days_only: bool | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=10)
    retry_minutes: dict[str, int] | None = Field(
        default=None, description="per outcome: busy, no_answer, congestion, failed, "
        "answered_no_rating, unknown")
    calls_per_minute: int | None = Field(default=None, ge=1, le=10_000)
    max_concurrent: int | None = Field(default=None, ge=1, le=10_000)
    caller_id: str | None = Field(default=None, max_length=40)
    trunk: str | None = None
    deadline_working_days: int | None = Field(default=None, ge=1, le=365)


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    kind: CampaignKind
    priority: Int32 = 0
    rules: RulesIn = Field(default_factory=RulesIn)
    filter: camp.CampaignFilter | None = Field(default=None, description="fill at once")


class AddedOut(BaseModel):
    added: int
    already_in_campaign: int
    no_number: int
    do_not_call: int
    already_open: int = 0


class CampaignOut(BaseModel):
    id: int
    name: str
    kind: str
    status: str
    priority: int
    rules: dict[str, Any]
    tasks: dict[str, int]
    outcomes: dict[str, int]
    total: int
    reached: int
    rated: int
    callback_rate: float | None = Field(description="回访率: reached / tasks not cancelled")
    added: AddedOut | None = None


class CampaignPath(BaseModel):
    campaign_id: RowId


class ActionPath(BaseModel):
    campaign_id: RowId
    action: Literal["start", "pause", "cancel"]


class ManualQuery(BaseModel):
    campaign_id: RowId | None = None


class TaskPath(BaseModel):
    task_id: RowId


class ManualIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reached: bool
    level: int | None = Field(default=None, ge=1, le=5, description="1 非常满意 … 5 非常不满意")
    resolved: bool | None = None
    reason_codes: list[str] = Field(default_factory=list, max_length=10)
    comment: str | None = Field(default=None, max_length=2000)
    note: str | None = Field(default=None, max_length=2000)


class NumberOut(BaseModel):
    task_id: int
    number: str


def _out(s: camp.Summary, added: camp.AddResult | None = None) -> CampaignOut:
    return CampaignOut(
        id=s.campaign_id, name=s.name, kind=s.kind, status=s.status, priority=s.priority,
        rules=s.rules, tasks=s.tasks, outcomes=s.outcomes, total=s.total, reached=s.reached,
        rated=s.rated, callback_rate=s.callback_rate,
        added=AddedOut(**vars(added)) if added else None,
    )


async def _audit(s: AsyncSession, request: web.Request, action: str, campaign_id: int,
                 details: dict[str, Any]) -> None:
    """A supervisor's decision about a campaign (who is called, and when) is audited."""
    who = principal(request)
    await record_audit(s, actor=who.name, role=who.role, action=action,
                       subject_type="campaign", subject_id=campaign_id, details=details)


@requires(*ROLES)
@operation(summary="Create a draft campaign, optionally filled by a filter", tags=TAGS,
           request_body=CampaignIn, responses={201: CampaignOut},
           operation_id="createCampaign")
async def create_campaign(request: web.Request) -> web.Response:
    body = await read_json(request, CampaignIn)
    ctx, who = app_ctx(request), principal(request)
    now = utcnow()
    async with ctx.db.transaction() as s:
        c = await camp.create_campaign(
            s, ctx, name=body.name, kind=body.kind.value, priority=body.priority,
            rules=body.rules.model_dump(exclude_none=True, mode="json"),
            created_by=f"api:{who.name}", now=now)
        added = await camp.add_by_filter(s, ctx, c.id, body.filter, now) if body.filter \
            else None
        await _audit(s, request, "campaign.create", c.id, {
            "name": c.name, "kind": c.kind, "priority": c.priority,
            "added": None if added is None else added.added})
        summary = await camp.summary(s, c.id)
    return respond(_out(summary, added), status=201)


@requires(*ROLES)
@operation(summary="All campaigns with their progress", tags=TAGS,
           responses={200: list[CampaignOut]},
           operation_id="listCampaigns")
async def list_campaigns(request: web.Request) -> web.Response:
    ctx = app_ctx(request)
    async with ctx.db.sessions() as s:
        found = await camp.list_campaigns(s)
    return respond([_out(x) for x in found])


@requires(*ROLES)
@operation(summary="One campaign's progress and 回访率", tags=TAGS, path=CampaignPath,
           responses={200: CampaignOut, 404: "No such campaign"},
           operation_id="getCampaign")
async def get_campaign(request: web.Request) -> web.Response:
    path = read_path(request, CampaignPath)
    ctx = app_ctx(request)
    async with ctx.db.sessions() as s:
        summary = await camp.summary(s, path.campaign_id)
    return respond(_out(summary))


@requires(*ROLES)
@operation(summary="Start (or resume), pause or cancel a campaign", tags=TAGS, path=ActionPath,
           responses={200: CampaignOut, 404: "No such campaign",
                      422: "Not possible from the campaign's status"},
           operation_id="changeCampaignStatus")
async def campaign_action(request: web.Request) -> web.Response:
    path = read_path(request, ActionPath)
    ctx = app_ctx(request)
    async with ctx.db.transaction() as s:
        await camp.change_status(s, ctx, path.campaign_id, path.action, utcnow())
        await _audit(s, request, f"campaign.{path.action}", path.campaign_id, {})
        summary = await camp.summary(s, path.campaign_id)
    return respond(_out(summary))


@requires(*ROLES)
@operation(summary="Add tasks by filter", tags=TAGS, path=CampaignPath,
           request_body=camp.CampaignFilter, responses={200: AddedOut},
           operation_id="addCampaignTasks")
async def add_by_filter(request: web.Request) -> web.Response:
    path = read_path(request, CampaignPath)
    flt = await read_json(request, camp.CampaignFilter)
    ctx = app_ctx(request)
    async with ctx.db.transaction() as s:
        added = await camp.add_by_filter(s, ctx, path.campaign_id, flt, utcnow())
        await _audit(s, request, "campaign.add_tasks", path.campaign_id, {
            "filter": flt.model_dump(exclude_none=True, mode="json"), "added": added.added})
    return respond(AddedOut(**vars(added)))


@requires(*ROLES)
@operation(
    summary="Add tasks from a CSV file (body: text/csv)",
    description="Header row with case_number or linkedid, and optionally number. Any bad row "
    "rejects the whole file (422, details list every line); nothing is half-imported.",
    tags=TAGS, path=CampaignPath,
    responses={200: AddedOut, 415: "Not text/csv", 422: "Bad rows, with their line numbers"},
    operation_id="importCampaignList",
)
async def import_csv(request: web.Request) -> web.Response:
    path = read_path(request, CampaignPath)
    if request.content_type not in ("text/csv", "application/csv", "text/plain"):
        raise ApiError(415, "unsupported_media_type", "send the file as text/csv")
    data = await request.read()
    ctx = app_ctx(request)
    async with ctx.db.transaction() as s:
        added = await camp.import_csv(s, ctx, path.campaign_id, data, utcnow())
        await _audit(s, request, "campaign.import", path.campaign_id,
                     {"bytes": len(data), "added": added.added})
    return respond(AddedOut(**vars(added)))


@requires(*ROLES)
@operation(summary="The manual follow-up list: citizens the dialer could not reach",
           tags=TAGS, query=ManualQuery, responses={200: list[tasks.ManualItem]},
           operation_id="listManualFollowups")
async def manual_list(request: web.Request) -> web.Response:
    query = read_query(request, ManualQuery)
    ctx = app_ctx(request)
    async with ctx.db.sessions() as s:
        items = await tasks.manual_list(s, campaign_id=query.campaign_id)
    return respond(items)


@requires(*ROLES)
@operation(summary="Record the result of a manual call (counts toward 回访率)", tags=TAGS,
           path=TaskPath, request_body=ManualIn,
           responses={200: TaskOut, 404: "No such task", 409: "Under way or already done"},
           operation_id="recordManualResult")
async def record_manual(request: web.Request) -> web.Response:
    path = read_path(request, TaskPath)
    body = await read_json(request, ManualIn)
    ctx, who = app_ctx(request), principal(request)
    if body.level is None and (body.reason_codes or body.comment or body.resolved is not None):
        raise ApiError(422, "validation_failed", "resolved, reason_codes and comment need level")
    answer = None
    if body.level is not None:
        answer = Answer(Level(body.level), resolved=body.resolved,
                        reason_codes=tuple(body.reason_codes), comment_text=body.comment)
    async with ctx.db.transaction() as s:
        task = await tasks.record_manual(s, ctx, path.task_id, reached=body.reached,
                                         answer=answer, note=body.note,
                                         by=f"api:{who.name}", now=utcnow())
    return respond(task_out(task))  # type: ignore[arg-type]


class RevealQuery(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why (audited)")


@requires(*ROLES)
@operation(summary="One task's number, for a manual call (each reveal is audited with its "
           "reason)", tags=TAGS, path=TaskPath, query=RevealQuery,
           responses={200: NumberOut, 404: "No such task"},
           operation_id="revealNumber")
async def reveal_number(request: web.Request) -> web.Response:
    path = read_path(request, TaskPath)
    query = read_query(request, RevealQuery)
    ctx, who = app_ctx(request), principal(request)
    async with ctx.db.transaction() as s:
        number = await tasks.reveal_number(s, ctx, path.task_id, f"api:{who.name}",
                                           reason=query.reason, role=who.role)
    return respond(NumberOut(task_id=path.task_id, number=number))


def setup(app: web.Application, ctx: AppContext) -> None:
    r = app.router
    r.add_post("/api/v1/campaigns", create_campaign)
    r.add_get("/api/v1/campaigns", list_campaigns)
    r.add_get("/api/v1/campaigns/{campaign_id}", get_campaign)
    r.add_post("/api/v1/campaigns/{campaign_id}/tasks", add_by_filter)
    r.add_post("/api/v1/campaigns/{campaign_id}/import", import_csv)
    r.add_post("/api/v1/campaigns/{campaign_id}/{action}", campaign_action)
    r.add_get("/api/v1/callbacks/manual", manual_list)
    r.add_post("/api/v1/callbacks/tasks/{task_id}/manual-result", record_manual)
    r.add_get("/api/v1/callbacks/tasks/{task_id}/number", reveal_number)
