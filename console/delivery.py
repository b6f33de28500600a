"""Delivery to the province, for the console's 推送 page: the outbox figures (also what
monitoring reads, with a supervisor's or the admin's token), the dead letters (records the
receiver refused for good) and their retry after the cause is fixed."""

from __future__ import annotations

import datetime as dt
import logging

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from http_api.auth import requires
from http_api.bodies import read_json, respond
from http_api.keys import app_ctx, principal
from http_api.openapi import operation
from service.context import AppContext
from storage import outbox

log = logging.getLogger("hotline.console.delivery")

TAGS = ["delivery"]
ROLES = ("supervisor",)


class OutboxStatusOut(BaseModel):
    """The delivery queue's figures."""

    pending: int
    held: int
    inflight: int
    delivered: int
    dead: int
    oldest_pending_age_seconds: float | None


class DeadLetter(BaseModel):
    id: int
    project_no: str
    assess_number: int
    event: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(default_factory=list, max_length=1000)
    all_dead: bool = False


class RetryOut(BaseModel):
    requeued: int


@requires(*ROLES)
@operation(summary="Delivery queue figures: pending, held, in flight, delivered, dead-letter, "
           "oldest age", tags=[*TAGS, "monitoring"], operation_id="getOutboxStatus",
           responses={200: OutboxStatusOut})
async def outbox_status(request: web.Request) -> web.Response:
    found = await outbox.counts(app_ctx(request).db)
    return respond(OutboxStatusOut(**found.as_dict()))


@requires(*ROLES)
@operation(summary="Records the receiver refused for good (dead letters)", tags=TAGS,
           operation_id="listDeadLetters", responses={200: list[DeadLetter]})
async def dead_letters(request: web.Request) -> web.Response:
    rows = await outbox.dead_entries(app_ctx(request).db, limit=500)
    return respond([
        DeadLetter(id=e.id, project_no=e.project_no, assess_number=e.assess_number,
                   event=e.event, attempts=e.attempts, last_error=e.last_error,
                   created_at=e.created_at)
        for e in rows
    ])


@requires(*ROLES)
@operation(summary="Send dead letters again (some by id, or all)", tags=TAGS,
           operation_id="retryDeadLetters", request_body=RetryIn, responses={200: RetryOut})
async def retry(request: web.Request) -> web.Response:
    body = await read_json(request, RetryIn)
    db = app_ctx(request).db
    who = principal(request)
    if body.all_dead:
        count = await outbox.retry_all_dead(db, actor=who.name, role=who.role)
    else:
        count = len((await outbox.retry(db, body.ids, actor=who.name, role=who.role)).requeued)
    log.info("dead letters re-queued", extra={"count": count, "by": who.name})
    return respond(RetryOut(requeued=count))


def setup(app: web.Application, ctx: AppContext) -> None:
    app.router.add_get("/api/v1/outbox", outbox_status)
    app.router.add_get("/api/v1/outbox/dead", dead_letters)
    app.router.add_post("/api/v1/outbox/retry", retry)
