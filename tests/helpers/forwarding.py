"""A forwarder running beside a test, and the outbox as it stands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select

from forwarder.worker import Forwarder
from hotline.settings import Settings
from service.context import AppContext
from storage.models import OutboxEntry


@asynccontextmanager
async def context(settings: Settings) -> AsyncIterator[AppContext]:
    ctx = AppContext.create(settings)
    try:
        yield ctx
    finally:
        await ctx.close()


@asynccontextmanager
async def forwarding(ctx: AppContext, name: str = "fwd") -> AsyncIterator[asyncio.Task[None]]:
    """A forwarder running in the background; stopped cleanly at the end."""
    stopping = asyncio.Event()
    task = asyncio.create_task(Forwarder.from_context(ctx, name=name).run(stopping))
    try:
        yield task
    finally:
        stopping.set()
        if not task.done():
            await asyncio.wait_for(task, 10)


async def outbox_entries(ctx: AppContext) -> list[OutboxEntry]:
    async with ctx.db.sessions() as s:
        return list((await s.scalars(select(OutboxEntry).order_by(OutboxEntry.id))).all())


def all_in(status: str, ctx: AppContext) -> Callable[[], Any]:
    async def check() -> bool:
        return all(e.status == status for e in await outbox_entries(ctx))

    return check
