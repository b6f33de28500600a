"""A committed rating wakes the forwarder instead of waiting for its next poll (issue 13:
keypress → receipt p99 < 1 s), on SQLite and PostgreSQL; on PostgreSQL a commit in another
process (another Database, another connection pool) wakes it by NOTIFY. The forwarder's own
bookkeeping never wakes it (no busy loop between its lanes)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from forwarder.simulated import Receiver, add_call_rating
from forwarder.worker import Forwarder
from hotline.levels import Level
from service.context import AppContext
from storage import outbox, outbox_wake
from storage.models import Call, OutboxStatus, RatingKind, RatingSource
from storage.ratings import RatingInput, project_no_for_call, save_rating
from tests.waiting import wait_until

#: far longer than any wait below: a delivery within it was woken, not polled
POLL = 60.0


async def test_a_committed_rating_wakes_and_a_rolled_back_one_does_not(
    tmp_path: Path, database_url: str
) -> None:
    async with Receiver() as rx:
        ctx = AppContext.create(rx.settings_for(tmp_path, database_url))
        try:
            signal = outbox_wake.signal_of(ctx.db)
            ticket = signal.ticket()
            try:
                async with ctx.db.transaction() as s:
                    call = Call(linkedid="1700000000.1", agent_id="A1")
                    s.add(call)
                    await s.flush()
                    await save_rating(
                        s,
                        RatingInput(
                            project_no=project_no_for_call(call.linkedid),
                            kind=RatingKind.PER_CALL,
                            source=RatingSource.KEYPAD,
                            level=Level.SATISFIED,
                            call_id=call.id,
                            agent_id="A1",
                        ),
                    )
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            assert not ticket.is_set()
            await add_call_rating(ctx, "1700000000.2", Level.SATISFIED)
            assert ticket.is_set()
            # the forwarder's own claim and outcome do not wake anybody
            ticket = signal.ticket()
            claimed = await outbox.claim(ctx.db, "w", 10, 60)
            assert len(claimed) == 1
            await outbox.finish_many(
                ctx.db, "w", [outbox.Finished(claimed[0].id, OutboxStatus.DELIVERED)]
            )
            await asyncio.sleep(0.2)  # a NOTIFY of our own would have arrived (PostgreSQL)
            assert not ticket.is_set()
        finally:
            await ctx.close()


async def test_an_idle_forwarder_sends_a_new_rating_at_once(
    tmp_path: Path, database_url: str
) -> None:
    async with Receiver() as rx:
        settings = rx.settings_for(tmp_path, database_url, forwarder_poll_interval=POLL)
        ctx = AppContext.create(settings)
        # the rating comes from another process on PostgreSQL (its own pool: only NOTIFY
        # can tell this forwarder), from this one on SQLite
        writer = ctx if ctx.db.is_sqlite else AppContext.create(settings)
        stopping = asyncio.Event()
        task = asyncio.create_task(Forwarder.from_context(ctx, name="idle").run(stopping))
        try:
            await asyncio.sleep(1.0)  # both lanes found nothing and sleep for POLL
            started = time.monotonic()
            key = await add_call_rating(writer, "1700000001.1", Level.VERY_SATISFIED)

            async def arrived() -> bool:
                return key in rx.stored

            await wait_until(arrived, within=10)
            assert time.monotonic() - started < 5, "delivered by the poll, not by a wake"
        finally:
            stopping.set()
            await asyncio.wait_for(task, 10)
            if writer is not ctx:
                await writer.close()
            await ctx.close()
