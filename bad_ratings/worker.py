"""The ``serve_bad_ratings`` worker: every ``bad_rating_watch_interval_seconds`` it gives an
item to any 差评 saved without one (``sweep``), notices 即将超期 / 超期 items (each once per
deadline, webhooks' dedupe) and sends the due webhook events. A failure of one pass is logged
and the next pass tries again: the loop never stops the service (a webhook receiver or a
database blip must not stop surveys, issue 8)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from bad_ratings import service, sweep, webhooks
from hotline.clock import utcnow
from service.context import AppContext

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("hotline.bad_ratings.worker")


async def one_pass(ctx: AppContext, http: aiohttp.ClientSession | None) -> int:
    now = utcnow()
    lookback = dt.timedelta(days=ctx.settings.bad_rating_sweep_lookback_days)
    await sweep.sweep(ctx.db, policy=ctx.bad_rating_policy, now=now, lookback=lookback)
    async with ctx.db.transaction() as s:
        await service.watch_deadlines(s, policy=ctx.bad_rating_policy, now=now)
    s = ctx.settings
    if http is None or not s.webhook_url:
        return 0
    await webhooks.release_expired(ctx.db, now)
    return await webhooks.send_due(ctx.db, http, url=s.webhook_url, secret=s.webhook_secret,
                                   request_timeout=s.webhook_request_timeout, now=now)


async def run(ctx: AppContext, stopping: asyncio.Event) -> None:
    if not ctx.settings.webhook_url:
        # no webhook to send: no HTTP client, so aiohttp (~10 MB RSS) stays out of a process
        # that serves no HTTP (a FastAGI-only `hotline serve`, issue 13 memory)
        await _passes(ctx, stopping, None)
        return
    import aiohttp

    async with aiohttp.ClientSession() as http:
        await _passes(ctx, stopping, http)


async def _passes(ctx: AppContext, stopping: asyncio.Event,
                  http: aiohttp.ClientSession | None) -> None:
    while not stopping.is_set():
        try:
            await one_pass(ctx, http)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("差评 deadline/webhook pass failed; next pass retries", exc_info=exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(),
                                   ctx.settings.bad_rating_watch_interval_seconds)
