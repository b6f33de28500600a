"""Webhook events for the 工单 system or a messaging bot: 差评 opened, 即将超期, 超期, 督办,
回访 result (issue 10 "Events out").

Written to ``webhook_outbox`` in the transaction of the change that causes them (nothing is sent
from memory alone), then POSTed by :func:`send_due` as JSON with an HMAC-SHA256 signature of
``<timestamp>.<body>`` in ``X-Hotline-Signature: t=<timestamp>,v1=<hex>`` (setting
``webhook_secret``); retried with capped exponential backoff until a 2xx. ``dedupe_key`` is
unique, so an event noticed twice (two watchers, a retry) is stored once; the receiver gets it
as ``X-Hotline-Event-Id`` to drop repeats after a lost acknowledgement.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.signing import hmac_sha256
from storage.db import Database
from storage.models import OutboxStatus, WebhookEvent

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("hotline.bad_ratings.webhooks")

OPENED = "bad_rating.opened"
DUE_SOON = "bad_rating.due_soon"
OVERDUE = "bad_rating.overdue"
SUPERVISED = "bad_rating.supervised"
FOLLOWUP_RESULT = "bad_rating.followup_result"

BACKOFF_BASE = 5.0
BACKOFF_MAX = 3600.0
BATCH = 50


async def emit(
    session: AsyncSession,
    event: str,
    dedupe_key: str,
    payload: dict[str, Any],
    *,
    subject_id: int | str | None,
    now: dt.datetime,
    subject_type: str = "bad_rating",
) -> None:
    """Store an event once per ``dedupe_key`` (a repeat is silently ignored)."""
    values = {
        "event": event, "dedupe_key": dedupe_key[:128], "subject_type": subject_type,
        "subject_id": None if subject_id is None else str(subject_id),
        "payload": {"event": event, **payload}, "status": OutboxStatus.PENDING, "attempts": 0,
        "next_attempt_at": now, "created_at": now,
    }
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(WebhookEvent).values(**values).on_conflict_do_nothing(
            index_elements=["dedupe_key"]
        )
    )


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac_sha256(secret, timestamp, body, separator=".")


def verify(secret: str, header: str, body: bytes) -> bool:
    """For receivers (and tests): check an ``X-Hotline-Signature`` header."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        return False
    return hmac.compare_digest(signature(secret, parts["t"], body), parts["v1"])


def backoff(attempts: int) -> float:
    # cap the exponent before computing: a week-long outage must not overflow
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(attempts - 1, 20))


async def send_due(
    db: Database, http: aiohttp.ClientSession, *, url: str, secret: str, request_timeout: float,
    now: dt.datetime,
) -> int:
    """Send the due events, oldest first; returns how many were delivered."""
    # imported here: aiohttp (~10 MB RSS) is loaded only by a process that sends webhooks
    import aiohttp

    async with db.transaction() as s:
        rows = list(await s.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.status == OutboxStatus.PENDING,
                   WebhookEvent.next_attempt_at <= now)
            .order_by(WebhookEvent.id).limit(BATCH).with_for_update(skip_locked=True)
        ))
        lease = now + dt.timedelta(seconds=request_timeout * 2 + 5)
        for row in rows:
            row.status = OutboxStatus.INFLIGHT
            row.claimed_until = lease
        jobs = [(r.id, r.event, r.payload) for r in rows]
    delivered = 0
    for event_id, event, payload in jobs:
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
        stamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "X-Hotline-Event": event,
            "X-Hotline-Event-Id": str(event_id),
            "X-Hotline-Signature": f"t={stamp},v1={signature(secret, stamp, body)}",
        }
        error: str | None = None
        try:
            async with http.post(url, data=body, headers=headers, allow_redirects=False,
                                 timeout=aiohttp.ClientTimeout(total=request_timeout)) as resp:
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        async with db.transaction() as s:
            row = await s.get(WebhookEvent, event_id, with_for_update=True)
            if row is None:
                continue
            row.claimed_until = None
            if error is None:
                row.status = OutboxStatus.DELIVERED
                row.delivered_at = now
                delivered += 1
            else:
                row.status = OutboxStatus.PENDING
                row.attempts += 1
                row.last_error = error
                row.next_attempt_at = now + dt.timedelta(seconds=backoff(row.attempts))
                log.warning("webhook not delivered, will retry",
                            extra={"event_id": event_id, "error": error})
    return delivered


async def release_expired(db: Database, now: dt.datetime) -> None:
    """An in-flight event whose sender died goes back to pending."""
    async with db.transaction() as s:
        for row in await s.scalars(
            select(WebhookEvent).where(WebhookEvent.status == OutboxStatus.INFLIGHT,
                                       WebhookEvent.claimed_until < now)
        ):
            row.status = OutboxStatus.PENDING
            row.claimed_until = None
