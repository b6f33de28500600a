"""The 工单 system updates and reopens cases (issue 10: ``updateCase``, ``reopenCase``).
Updating the department reassigns the case's open 差评 item; both are audited."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bad_ratings import cases as svc
from hotline.clock import utcnow
from http_api.auth import requires
from http_api.bad_ratings import actor_of
from http_api.bodies import read_json, read_path, respond
from http_api.cases import CaseOut, CasePath, case_out
from http_api.errors import ApiError
from http_api.keys import app_ctx
from http_api.openapi import operation
from service.context import AppContext

TAGS = ["cases"]
ROLES = ("workorder", "supervisor")


class CaseUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department_code: str | None = Field(default=None, min_length=1, max_length=32)
    department_name: str | None = Field(default=None, min_length=1, max_length=128)


class ReopenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=4000)


@requires(*ROLES)
@operation(summary="Update a case; a new department takes over its open 差评 item", tags=TAGS,
           path=CasePath, request_body=CaseUpdateIn,
           responses={200: CaseOut, 404: "No such case"}, operation_id="updateCase")
async def update_case(request: web.Request) -> web.Response:
    path = read_path(request, CasePath)
    body = await read_json(request, CaseUpdateIn)
    ctx = app_ctx(request)
    try:
        async with ctx.db.transaction() as s:
            case = await svc.update_case(
                s, actor_of(request), path.case_number, department_code=body.department_code,
                department_name=body.department_name, policy=ctx.bad_rating_policy, now=utcnow())
    except svc.CaseNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return respond(case_out(case))


@requires(*ROLES)
@operation(summary="Reopen a closed case (its pending 回访 is cancelled)", tags=TAGS,
           path=CasePath, request_body=ReopenIn,
           responses={200: CaseOut, 404: "No such case", 409: "The case is not closed"},
           operation_id="reopenCase")
async def reopen_case(request: web.Request) -> web.Response:
    path = read_path(request, CasePath)
    body = await read_json(request, ReopenIn)
    ctx = app_ctx(request)
    try:
        async with ctx.db.transaction() as s:
            case = await svc.reopen_case(s, actor_of(request), path.case_number,
                                         reason=body.reason, now=utcnow())
    except svc.CaseNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except svc.CaseNotClosed as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    return respond(case_out(case))


def setup(app: web.Application, ctx: AppContext) -> None:
    app.router.add_patch("/api/v1/cases/{case_number}", update_case)
    app.router.add_post("/api/v1/cases/{case_number}/reopen", reopen_case)
