"""Routes every deployment has: liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from hotline import clock
from hotline.calendar_coverage import coverage
from http_api.auth import public
from http_api.bodies import respond
from http_api.errors import ApiError
from http_api.keys import app_ctx
from http_api.openapi import ErrorBody, Response, build_document, operation
from service.context import AppContext

log = logging.getLogger("hotline.http")

#: A database that has not answered by then counts as down: a probe must not hang.
READY_TIMEOUT = 5.0

OPENAPI_PATH = "/api/v1/openapi.json"
_DOC: web.AppKey[dict[str, Any]] = web.AppKey("hotline_openapi_doc", dict)


class Status(BaseModel):
    status: Literal["ok"]


@public
@operation(summary="Liveness: the process is up", tags=["system"], responses={200: Status})
async def healthz(request: web.Request) -> web.Response:
    return respond(Status(status="ok"))


class WorkerStatus(BaseModel):
    state: Literal["running", "restarting", "stopped", "failed"]
    restarts: int
    last_error: str | None = None


class Ready(BaseModel):
    status: Literal["ok"]
    #: each ``hotline serve`` worker in this process (service.supervisor)
    workers: dict[str, WorkerStatus] = {}


@public
@operation(
    summary="Readiness: the database answers, every worker of this process runs, and the "
    "working-day calendar reaches far enough",
    tags=["system"],
    responses={200: Ready, 503: Response(
        "The database does not answer, a worker is being restarted after a failure, or the "
        "calendar ends before today's longest deadline",
        ErrorBody)},
)
async def readyz(request: web.Request) -> web.Response:
    ctx = app_ctx(request)
    try:
        ok = await asyncio.wait_for(ctx.db.ping(), READY_TIMEOUT)
        reason = "database did not answer SELECT 1"
    except TimeoutError:
        ok, reason = False, f"database did not answer within {READY_TIMEOUT:g} s"
    workers = {name: state.as_dict() for name, state in ctx.workers.items()}
    down = sorted(name for name, state in ctx.workers.items() if not state.ready)
    if ok and down:
        ok, reason = False, "worker(s) restarting after a failure: " + ", ".join(
            f"{name} ({ctx.workers[name].last_error})" for name in down)
    if ok:
        ok, reason = _calendar_ready(ctx)
    if not ok:
        log.warning("not ready", extra={"reason": reason})
        raise ApiError(503, "not_ready", reason, headers={"Retry-After": "5"})
    return respond(Ready(status="ok", workers=workers))  # type: ignore[arg-type]


def _calendar_ready(ctx: AppContext) -> tuple[bool, str]:
    """Not ready when a deadline computed today runs past the official calendar: it would
    count holidays as working days (issue 8 defect 7)."""
    today = clock.local_today(ctx.settings.tz)
    problem = coverage(ctx.settings, ctx.workdays, today).problem
    return problem is None, problem or ""


@public
@operation(
    summary="This API's OpenAPI 3.1 document",
    tags=["system"],
    responses={200: Response("OpenAPI document", dict[str, Any])},
)
async def openapi_json(request: web.Request) -> web.Response:
    return respond(request.app[_DOC])


async def _build_doc(app: web.Application) -> None:
    # At startup the routing table is final; building here also makes a documentation
    # mistake (duplicate operationId ...) stop the start instead of breaking the endpoint.
    app[_DOC] = build_document(app)


def setup(app: web.Application, ctx: AppContext) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get(OPENAPI_PATH, openapi_json)
    app.on_startup.append(_build_doc)
