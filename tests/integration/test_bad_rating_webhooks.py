"""Signed webhook events from their own outbox, retried until accepted (issue 10 "Events out"):
差评 opened reaches a receiver that first fails, once, with a valid HMAC signature."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bad_ratings import webhooks
from hotline.clock import utcnow
from hotline.levels import Level
from service.context import AppContext
from storage.models import OutboxStatus, WebhookEvent
from tests.helpers.callbacks import NUMBER, add_call, rate_call

SECRET = "s3cret"


async def test_webhook_is_signed_retried_and_delivered_once(ctx: AppContext) -> None:
    received: list[dict[str, Any]] = []
    answers = iter([500, 200, 200])

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        assert webhooks.verify(SECRET, request.headers["X-Hotline-Signature"], body)
        assert not webhooks.verify("wrong", request.headers["X-Hotline-Signature"], body)
        received.append({"id": request.headers["X-Hotline-Event-Id"], **json.loads(body)})
        return web.Response(status=next(answers))

    app = web.Application()
    app.router.add_post("/hook", hook)
    await add_call(ctx, "WH-1")
    await rate_call(ctx, "WH-1", Level.VERY_DISSATISFIED)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
        url = str(server.make_url("/hook"))
        now = utcnow()
        send = dict(url=url, secret=SECRET, request_timeout=5.0)
        assert await webhooks.send_due(ctx.db, http, now=now, **send) == 0  # 500
        assert await webhooks.send_due(ctx.db, http, now=now, **send) == 0  # backing off
        later = now + dt.timedelta(seconds=webhooks.backoff(1) + 1)
        assert await webhooks.send_due(ctx.db, http, now=later, **send) == 1
        assert await webhooks.send_due(ctx.db, http, now=later, **send) == 0
    assert [r["event"] for r in received] == ["bad_rating.opened"] * 2
    assert received[0]["id"] == received[1]["id"]  # the receiver can drop a repeat
    assert received[0]["department_code"] == "D1"
    assert NUMBER not in json.dumps(received)  # rule 8
    async with ctx.db.sessions() as s:
        row = await s.scalar(select(WebhookEvent))
    assert row is not None and row.status == OutboxStatus.DELIVERED and row.attempts == 1


def test_backoff_is_capped_without_overflow() -> None:
    assert webhooks.backoff(1) == webhooks.BACKOFF_BASE
    assert webhooks.backoff(10_000) == webhooks.BACKOFF_MAX
