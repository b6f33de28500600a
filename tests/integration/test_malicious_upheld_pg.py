"""A 恶意 finding upheld by a reviewer, end to end on the real PostgreSQL with the forwarder
running against the provincial receiver (forwarder/simulated.py) (issue 10 "Tests"; DOMAIN.md
rule 6: an invalid 差评 is kept for audit and left out of the statistics; rule 9: the
invalidation goes upstream): the rating is invalid, the invalidation reaches the receiver as
its own record after the 差评 itself, the pending 回访 is cancelled, every step audited."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from callback_scheduler.cases import NewCase, close_case, create_case
from forwarder.simulated import Receiver
from forwarder.worker import Forwarder
from hotline.clock import utcnow
from hotline.levels import Level
from http_api.app import build_app
from service.context import AppContext
from storage.models import AuditEntry, BadRatingItem, CallbackTask, OutboxEntry, Rating
from tests.conftest import bearer
from tests.helpers.bad_ratings import BASE, post
from tests.helpers.callbacks import NUMBER, add_call, rate_call
from tests.waiting import wait_until


@contextlib.asynccontextmanager
async def forwarding(ctx: AppContext) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(Forwarder.from_context(ctx, name="fwd").run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


async def test_rule6_malicious_upheld_is_invalid_upstream_and_its_callback_cancelled(
    tmp_path: Path, postgres_url: str,
) -> None:
    async with Receiver() as rx:
        ctx = AppContext.create(rx.settings_for(tmp_path, postgres_url))
        try:
            await add_call(ctx, "MP-1")
            await rate_call(ctx, "MP-1", Level.VERY_DISSATISFIED)
            async with ctx.db.transaction() as s:
                await create_case(s, ctx, NewCase("GD-MP-1", "D1", "住建局", NUMBER, "MP-1"),
                                  utcnow())
                closed = await close_case(s, ctx, "GD-MP-1", rectification_result=None,
                                          bad_rating=None, now=utcnow())
                assert closed.task is not None
                task_id = closed.task.id
                item = await s.scalar(select(BadRatingItem))
                assert item is not None
            key = "CALL-MP-1:1"
            rx.order = {"CALL-MP-1": [key, key + ":invalidation"]}
            async with forwarding(ctx), \
                    TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as client:
                dep = await bearer(ctx, "department", departments=("D1",))
                rev = await bearer(ctx, "reviewer")
                await post(client, f"{BASE}/{item.id}/verify", dep,
                           {"finding": "malicious", "explanation": "来电人辱骂并威胁"})
                out = await post(client, f"{BASE}/{item.id}/review", rev, {
                    "decision": "invalid", "finding": "malicious", "reason": "录音证实恶意"})
                assert out["state"] == "invalid"

                async def both_upstream() -> bool:
                    return set(rx.stored) == {key, key + ":invalidation"}

                await wait_until(both_upstream, within=20)
            async with ctx.db.sessions() as s:
                rating = await s.get(Rating, item.first_rating_id)
                task = await s.get(CallbackTask, task_id)
                events = list(await s.scalars(select(OutboxEntry.event).order_by(OutboxEntry.id)))
                audit = list(await s.scalars(select(AuditEntry.action).where(
                    AuditEntry.subject_id == str(item.id)).order_by(AuditEntry.id)))
        finally:
            await ctx.close()
    rx.assert_clean()  # the invalidation arrived after the 差评 was acknowledged
    assert rating is not None and (rating.valid, rating.invalid_reason) == (False, "录音证实恶意")
    assert events == ["rating", "invalidation"]
    sent = rx.stored[key + ":invalidation"]
    assert (sent["isValid"], sent["invalidReason"], sent["satisfaction"]) == (
        "0", "录音证实恶意", 1)
    assert rx.stored[key]["isValid"] == "1"
    assert task is not None and (task.status, task.outcome) == ("cancelled", "cancelled")
    assert audit == ["bad_rating.open", "bad_rating.verify", "bad_rating.review"]
