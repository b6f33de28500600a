"""差评 items over HTTP (issue 10): list and read them, and every step of the loop — assign,
核实, 整改, 延期, 退回, 督办, 申诉, 复核, reopen — plus the audit log.

Every route checks the role (``@requires``) and then the scope in bad_ratings.service: a
department token only ever sees its own departments' items, an agent token its own; another's
item answers 404 exactly like a missing one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bad_ratings import followup, service, store
from bad_ratings.machine import LABELS, Action, Command, Finding, State
from hotline.clock import utcnow
from http_api.auth import requires
from http_api.bodies import read_json, read_path, read_query, respond
from http_api.keys import app_ctx, principal
from http_api.openapi import operation
from service.context import AppContext
from storage.audit import list_audit
from storage.models import BadRatingEvent, BadRatingItem

TAGS = ["bad ratings"]
READERS = ("department", "reviewer", "agent", "supervisor", "workorder")
MAX_ID = 2**63 - 1
NOTE = Field(min_length=1, max_length=4000)


class ItemPath(BaseModel):
    item_id: int = Field(ge=1, le=MAX_ID)


class ListQuery(BaseModel):
    state: State | None = None
    department: str | None = Field(default=None, max_length=32)
    unassigned: bool | None = Field(default=None, description="only items with no department")
    overdue: bool | None = Field(default=None, description="超期 (true) or not (false)")
    due_soon: bool | None = Field(default=None, description="即将超期 (true) or not (false)")
    due_before: dt.date | None = Field(default=None, description="running deadline before")
    agent: str | None = Field(default=None, max_length=32)
    since: dt.datetime | None = Field(default=None, description="opened at or after")
    until: dt.datetime | None = Field(default=None, description="opened before")
    order: Literal["asc", "desc"] = Field(
        default="asc", description="asc: oldest first (ids above `after`); desc: newest first "
        "(ids below `after`, 0 = from the newest)")
    after: int = Field(default=0, ge=0, le=MAX_ID, description="page cursor: the last id seen")
    limit: int = Field(default=100, ge=1, le=1000)


class EventOut(BaseModel):
    id: int
    round: int
    at: dt.datetime
    actor: str
    role: str
    action: str
    from_state: str | None
    to_state: str | None
    rating_id: int | None
    note: str | None
    data: dict[str, Any]


class ItemOut(BaseModel):
    id: int
    state: State
    state_label: str
    due_status: Literal["on_time", "due_soon", "overdue"] | None = Field(
        description="即将超期 / 超期 of the running deadline (核实 or 整改)")
    round: int
    department_code: str | None
    case_number: str | None
    project_no: str
    agent_id: str | None
    opened_at: dt.datetime
    verify_due: dt.date | None
    rectify_due: dt.date | None
    verification: str | None
    verification_note: str | None
    rectification_reply: str | None
    citizen_result: str | None
    extension_status: str | None
    extension_due: dt.date | None
    extension_reason: str | None
    review_origin: str | None
    supervised_at: dt.datetime | None
    supervised_by: str | None
    supervise_count: int
    followup_solved: bool | None
    followup_level: int | None
    closed_at: dt.datetime | None
    first_rating_id: int
    latest_rating_id: int
    timeline: list[EventOut] | None = None


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department_code: str = Field(min_length=1, max_length=32)
    note: str | None = Field(default=None, max_length=4000)


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    finding: Finding = Field(description="属实 genuine, 误评 mistaken, 恶意 malicious")
    explanation: str = NOTE


class RectifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reply: str = Field(min_length=1, max_length=4000, description="the 整改 reply")
    citizen_result: str = Field(min_length=1, max_length=200,
                                description="short result the 回访 reads to the citizen")


class ExtensionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    due: dt.date = Field(description="the new deadline asked for")
    reason: str = NOTE


class ExtensionDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approve: bool
    reason: str | None = Field(default=None, max_length=4000)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = NOTE


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=4000)


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["upheld", "invalid"]
    finding: Literal["mistaken", "malicious"] | None = Field(
        default=None, description="with decision invalid: 误评 or 恶意")
    reason: str = NOTE


class AuditQuery(BaseModel):
    subject_type: str | None = Field(default=None, max_length=32)
    subject_id: str | None = Field(default=None, max_length=64)
    action: str | None = Field(default=None, max_length=48)
    actor: str | None = Field(default=None, max_length=128)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    after: int = Field(default=0, ge=0, le=MAX_ID)
    limit: int = Field(default=100, ge=1, le=1000)


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    role: str
    action: str
    subject_type: str
    subject_id: str | None
    details: dict[str, Any]


def actor_of(request: web.Request) -> service.Actor:
    who = principal(request)
    return service.Actor(name=f"api:{who.name}", role=who.role, departments=who.departments,
                         agent_id=who.agent_id)


def item_out(ctx: AppContext, row: BadRatingItem, now: dt.datetime,
             events: list[BadRatingEvent] | None = None) -> ItemOut:
    status = store.due_status(row, ctx.bad_rating_policy, now)
    fields = {name: getattr(row, name) for name in ItemOut.model_fields
              if name not in {"state", "state_label", "due_status", "timeline"}}
    return ItemOut(
        **fields, state=State(row.state), state_label=LABELS[State(row.state)],
        due_status=status.value if status else None,
        timeline=None if events is None else [
            EventOut.model_validate(e, from_attributes=True) for e in events],
    )


async def _act(request: web.Request, cmd: Command) -> web.Response:
    path = read_path(request, ItemPath)
    ctx, actor, now = app_ctx(request), actor_of(request), utcnow()
    # not found (404), wrong role (403), wrong state (409), incomplete (422): DOMAIN_ERRORS
    async with ctx.db.transaction() as s:
        row = await service.act(s, actor, path.item_id, cmd, policy=ctx.bad_rating_policy,
                                now=now)
        await followup.after_act(s, ctx, row, now)
        events = await store.timeline(s, row.id)
    return respond(item_out(ctx, row, now, events))


_ACT_RESPONSES: dict[int, Any] = {
    200: ItemOut, 404: "No such item, or not yours",
    409: "Not possible in the item's state", 422: "A required field is missing or invalid",
}


@requires(*READERS)
@operation(summary="差评 items, filtered (a department sees only its own)", tags=TAGS,
           query=ListQuery, responses={200: list[ItemOut]}, operation_id="listBadRatings")
async def list_bad_ratings(request: web.Request) -> web.Response:
    q = read_query(request, ListQuery)
    ctx, actor, now = app_ctx(request), actor_of(request), utcnow()
    filters = store.Filters(
        state=q.state.value if q.state else None, department=q.department,
        overdue=q.overdue, due_soon=q.due_soon, due_before=q.due_before, agent=q.agent,
        since=q.since, until=q.until, unassigned=q.unassigned,
    )
    async with ctx.db.sessions() as s:
        rows = await service.list_items(s, actor, filters, policy=ctx.bad_rating_policy, now=now,
                                        limit=q.limit, after_id=q.after,
                                        newest_first=q.order == "desc")
    return respond([item_out(ctx, r, now) for r in rows])


@requires(*READERS)
@operation(summary="One 差评 item with its full timeline", tags=TAGS, path=ItemPath,
           responses={200: ItemOut, 404: "No such item, or not yours"},
           operation_id="getBadRating")
async def get_bad_rating(request: web.Request) -> web.Response:
    path = read_path(request, ItemPath)
    ctx, actor, now = app_ctx(request), actor_of(request), utcnow()
    async with ctx.db.sessions() as s:
        row, events = await service.get_with_timeline(s, actor, path.item_id)
    return respond(item_out(ctx, row, now, events))


@requires("supervisor", "workorder")
@operation(summary="Assign (or reassign) an item to a department", tags=TAGS, path=ItemPath,
           request_body=AssignIn, responses=_ACT_RESPONSES, operation_id="assignBadRating")
async def assign_bad_rating(request: web.Request) -> web.Response:
    body = await read_json(request, AssignIn)
    return await _act(request, Command(Action.ASSIGN, principal(request).role, note=body.note,
                                       department_code=body.department_code))


@requires("department")
@operation(summary="核实: 属实, 误评 or 恶意, with the department's explanation", tags=TAGS,
           path=ItemPath, request_body=VerifyIn, responses=_ACT_RESPONSES,
           operation_id="verifyBadRating")
async def verify_bad_rating(request: web.Request) -> web.Response:
    body = await read_json(request, VerifyIn)
    return await _act(request, Command(Action.VERIFY, principal(request).role,
                                       finding=body.finding, note=body.explanation))


@requires("department")
@operation(summary="整改 reply, with the short result for the citizen", tags=TAGS,
           path=ItemPath, request_body=RectifyIn, responses=_ACT_RESPONSES,
           operation_id="rectifyBadRating")
async def rectify_bad_rating(request: web.Request) -> web.Response:
    body = await read_json(request, RectifyIn)
    return await _act(request, Command(Action.RECTIFY, principal(request).role, note=body.reply,
                                       citizen_result=body.citizen_result))


@requires("department")
@operation(summary="延期: ask for a later deadline, with the reason", tags=TAGS, path=ItemPath,
           request_body=ExtensionIn, responses=_ACT_RESPONSES, operation_id="requestExtension")
async def request_extension(request: web.Request) -> web.Response:
    body = await read_json(request, ExtensionIn)
    return await _act(request, Command(Action.REQUEST_EXTENSION, principal(request).role,
                                       note=body.reason, due=body.due))


@requires("supervisor")
@operation(summary="Approve or refuse a 延期 request", tags=TAGS, path=ItemPath,
           request_body=ExtensionDecisionIn, responses=_ACT_RESPONSES,
           operation_id="decideExtension")
async def decide_extension(request: web.Request) -> web.Response:
    body = await read_json(request, ExtensionDecisionIn)
    return await _act(request, Command(Action.DECIDE_EXTENSION, principal(request).role,
                                       approve=body.approve, note=body.reason))


@requires("supervisor")
@operation(summary="退回: return an unsatisfactory 整改 reply", tags=TAGS, path=ItemPath,
           request_body=ReasonIn, responses=_ACT_RESPONSES, operation_id="returnBadRating")
async def return_bad_rating(request: web.Request) -> web.Response:
    body = await read_json(request, ReasonIn)
    return await _act(request, Command(Action.RETURN, principal(request).role, note=body.reason))


@requires("supervisor")
@operation(summary="督办: escalate an item (recorded and announced)", tags=TAGS, path=ItemPath,
           request_body=NoteIn, responses=_ACT_RESPONSES, operation_id="superviseBadRating")
async def supervise_bad_rating(request: web.Request) -> web.Response:
    body = await read_json(request, NoteIn)
    return await _act(request, Command(Action.SUPERVISE, principal(request).role, note=body.note))


@requires("agent")
@operation(summary="申诉: an agent appeals a 差评 on their own service", tags=TAGS,
           path=ItemPath, request_body=ReasonIn, responses=_ACT_RESPONSES,
           operation_id="fileAppeal")
async def file_appeal(request: web.Request) -> web.Response:
    body = await read_json(request, ReasonIn)
    return await _act(request, Command(Action.APPEAL, principal(request).role, note=body.reason))


@requires("reviewer")
@operation(summary="复核: uphold the 差评, or find it invalid (误评/恶意)", tags=TAGS,
           path=ItemPath, request_body=ReviewIn, responses=_ACT_RESPONSES,
           operation_id="reviewBadRating")
async def review_bad_rating(request: web.Request) -> web.Response:
    body = await read_json(request, ReviewIn)
    return await _act(request, Command(
        Action.REVIEW, principal(request).role, note=body.reason,
        invalid=body.decision == "invalid",
        finding=Finding(body.finding) if body.finding else None,
    ))


@requires("reviewer")
@operation(summary="Reopen an item whose 整改 was not real (new 整改 round)", tags=TAGS,
           path=ItemPath, request_body=ReasonIn, responses=_ACT_RESPONSES,
           operation_id="reopenBadRating")
async def reopen_bad_rating(request: web.Request) -> web.Response:
    body = await read_json(request, ReasonIn)
    return await _act(request, Command(Action.REOPEN, principal(request).role, note=body.reason))


@requires("supervisor", "reviewer")
@operation(summary="The audit log, oldest first (append-only)", tags=["audit"], query=AuditQuery,
           responses={200: list[AuditOut]}, operation_id="listAuditLog")
async def list_audit_log(request: web.Request) -> web.Response:
    q = read_query(request, AuditQuery)
    ctx = app_ctx(request)
    async with ctx.db.sessions() as s:
        rows = await list_audit(
            s, limit=q.limit, after_id=q.after, subject_type=q.subject_type,
            subject_id=q.subject_id, action=q.action, actor=q.actor, since=q.since,
            until=q.until,
        )
    return respond([AuditOut.model_validate(r, from_attributes=True) for r in rows])


def setup(app: web.Application, ctx: AppContext) -> None:
    r = app.router
    base = "/api/v1/bad-ratings"
    r.add_get(base, list_bad_ratings)
    r.add_get(base + "/{item_id}", get_bad_rating)
    r.add_post(base + "/{item_id}/assign", assign_bad_rating)
    r.add_post(base + "/{item_id}/verify", verify_bad_rating)
    r.add_post(base + "/{item_id}/rectify", rectify_bad_rating)
    r.add_post(base + "/{item_id}/extension", request_extension)
    r.add_post(base + "/{item_id}/extension/decision", decide_extension)
    r.add_post(base + "/{item_id}/return", return_bad_rating)
    r.add_post(base + "/{item_id}/supervise", supervise_bad_rating)
    r.add_post(base + "/{item_id}/appeal", file_appeal)
    r.add_post(base + "/{item_id}/review", review_bad_rating)
    r.add_post(base + "/{item_id}/reopen", reopen_bad_rating)
    r.add_get("/api/v1/audit", list_audit_log)
