"""Case (工单) events from the work-order system: create a case, close it (办结).

Closing a case that carries a 差评 schedules its 回访 automatically (DOMAIN.md rule 5). The
citizen's number goes in and never comes back out: responses show it masked (rule 8).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler import cases as svc
from hotline.clock import utcnow
from hotline.privacy import normalise_number
from http_api.auth import requires
from http_api.bodies import read_json, read_path, respond
from http_api.keys import app_ctx, principal
from http_api.openapi import Response, operation
from service.context import AppContext
from storage.audit import record_audit
from storage.models import CallbackTask, Case

TAGS = ["cases"]
ROLES = ("supervisor", "workorder")  # the 工单 system: its own role (admin passes too)


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_number: str = Field(min_length=1, max_length=64, description="工单号")
    department_code: str | None = Field(default=None, max_length=32)
    department_name: str | None = Field(default=None, max_length=128)
    citizen_number: str | None = Field(
        default=None, max_length=32, description="stored encrypted; never returned")
    call_linkedid: str | None = Field(
        default=None, max_length=64, description="the call the case came from")

    @field_validator("citizen_number")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = normalise_number(value)
        if not 5 <= len(digits.lstrip("+")) <= 20:
            raise ValueError("not a telephone number")
        return digits


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rectification_result: str | None = Field(default=None, max_length=4000,
                                             description="整改 result")
    bad_rating: bool | None = Field(
        default=None, description="a 差评 given through another channel (web, app)")
    closed_at: dt.datetime | None = Field(
        default=None, description="when it was closed (default: now); with a time zone")

    @field_validator("closed_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. +08:00)")
        return value


class CasePath(BaseModel):
    case_number: str = Field(min_length=1, max_length=64)


class TaskOut(BaseModel):
    id: int
    campaign_id: int | None
    status: str
    outcome: str | None
    attempts_made: int
    max_attempts: int
    next_attempt_at: dt.datetime | None
    deadline_at: dt.datetime | None
    number_masked: str


class CaseOut(BaseModel):
    case_number: str
    department_code: str | None
    department_name: str | None
    citizen_masked: str | None
    status: str
    has_bad_rating: bool
    needs_attention: bool
    rectification_result: str | None
    callback_due: dt.date | None
    rectification_due: dt.date | None
    closed_at: dt.datetime | None
    callback_task: TaskOut | None = None


class ClosedOut(BaseModel):
    case: CaseOut
    already_closed: bool
    callback: str = Field(description="what happens about the 回访")


def task_out(task: CallbackTask | None) -> TaskOut | None:
    if task is None:
        return None
    return TaskOut(
        id=task.id, campaign_id=task.campaign_id, status=task.status, outcome=task.outcome,
        attempts_made=task.attempts_made, max_attempts=task.max_attempts,
        next_attempt_at=task.next_attempt_at, deadline_at=task.deadline_at,
        number_masked=task.number_masked,
    )


def case_out(case: Case, task: CallbackTask | None = None) -> CaseOut:
    return CaseOut(
        case_number=case.case_number, department_code=case.department_code,
        department_name=case.department_name, citizen_masked=case.citizen_masked,
        status=case.status, has_bad_rating=case.has_bad_rating,
        needs_attention=case.needs_attention, rectification_result=case.rectification_result,
        callback_due=case.callback_due, rectification_due=case.rectification_due,
        closed_at=case.closed_at, callback_task=task_out(task),
    )


async def _audit(s: AsyncSession, request: web.Request, action: str, case_number: str,
                 details: dict[str, Any]) -> None:
    """The 工单 system's (or a supervisor's) change to a case is audited like a person's:
    a close decides the 回访. The citizen's number is never in ``details`` (rule 8)."""
    who = principal(request)
    await record_audit(s, actor=who.name, role=who.role, action=action,
                       subject_type="case", subject_id=case_number, details=details)


@requires(*ROLES)
@operation(
    summary="Report a new case (工单)", tags=TAGS, request_body=CaseIn,
    responses={201: Response("Created", CaseOut),
               200: Response("Already known with the same data (a retry)", CaseOut),
               409: "The case exists with different data"},
)
async def create_case(request: web.Request) -> web.Response:
    body = await read_json(request, CaseIn)
    ctx = app_ctx(request)
    async with ctx.db.transaction() as s:
        case, created = await svc.create_case(s, ctx, svc.NewCase(**body.model_dump()),
                                              utcnow())
        if created:  # a retry with the same data changes nothing
            await _audit(s, request, "case.create", case.case_number, {
                "department_code": case.department_code,
                "call_linkedid": body.call_linkedid})
    return respond(case_out(case), status=201 if created else 200)


@requires(*ROLES)
@operation(
    summary="Close a case (办结); a 差评 case gets its 回访 scheduled", tags=TAGS,
    request_body=CloseIn, path=CasePath, responses={200: ClosedOut, 404: "No such case"},
)
async def close_case(request: web.Request) -> web.Response:
    path = read_path(request, CasePath)
    body = await read_json(request, CloseIn)
    ctx = app_ctx(request)
    async with ctx.db.transaction() as s:
        closed = await svc.close_case(
            s, ctx, path.case_number, rectification_result=body.rectification_result,
            bad_rating=body.bad_rating, now=utcnow(), closed_at=body.closed_at,
        )
        if not closed.already_closed:
            await _audit(s, request, "case.close", path.case_number, {
                "bad_rating": closed.case.has_bad_rating, "callback": closed.callback})
    return respond(ClosedOut(case=case_out(closed.case, closed.task),
                             already_closed=closed.already_closed, callback=closed.callback))


@requires(*ROLES)
@operation(summary="A case and its 回访 task", tags=TAGS, path=CasePath,
           responses={200: CaseOut, 404: "No such case"})
async def get_case(request: web.Request) -> web.Response:
    path = read_path(request, CasePath)
    ctx = app_ctx(request)
    async with ctx.db.transaction() as s:
        case = await svc.get_case(s, path.case_number)
        task = await svc.callback_task_of(s, case) if case.has_bad_rating else None
    return respond(case_out(case, task))


def setup(app: web.Application, ctx: AppContext) -> None:
    app.router.add_post("/api/v1/cases", create_case)
    app.router.add_get("/api/v1/cases/{case_number}", get_case)
    app.router.add_post("/api/v1/cases/{case_number}/close", close_case)
