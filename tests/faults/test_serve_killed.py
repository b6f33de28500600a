"""Fault run (a), issue 8: `hotline serve` (a real subprocess, PostgreSQL) is killed with
SIGKILL in the middle of a load of surveys, then started again. Every call has its record,
every vote the server moved on from is kept, every rating has its outbox entry, and every entry
is delivered to a counting receiver once.

The calls cut by the kill get what Asterisk gives them: the dialplan's hang-up handler runs
the survey route on the dead channel once the service answers again (in production it reaches
the second instance, or the CDR recovery records the call)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from forwarder.simulated import Receiver
from forwarder.worker import LANES
from hotline.settings import Settings
from tests.faults.harness import AckLog, Service, hang_up_handlers, load, tally, wait_for

BEFORE_KILL = 400
AFTER_RESTART = 150


async def test_sigkill_in_the_middle_of_surveys_loses_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    acks = AckLog()
    async with Receiver(behaviour=acks) as rx:
        service = Service(tmp_path, postgres_url, rx)
        await asyncio.to_thread(service.start)
        try:
            ids = [f"K.{n}" for n in range(BEFORE_KILL + AFTER_RESTART)]
            first = asyncio.create_task(
                load(service.agi_port, ids[:BEFORE_KILL], concurrency=200, pause=0.15))
            await asyncio.sleep(4)
            await asyncio.to_thread(service.kill)
            results = await first
            in_flight = sum(r.cut for r in results)
            # the second life begins here: nothing the receiver takes before it can come from
            # the new process, while a request the old one sent just before the kill may still
            # be taken after the kill (it was once counted in the wrong life: a "duplicate")
            second_life = time.monotonic()
            await asyncio.to_thread(service.start)
            await hang_up_handlers(service.agi_port,
                                   [r.linkedid for r in results if r.cut or r.hung_up])
            results += await load(service.agi_port, ids[BEFORE_KILL:], concurrency=100,
                                  pause=0.05)

            async def settled() -> bool:
                t = await tally(postgres_url, results)
                return t.rows == t.tried and t.undelivered == 0 and not service.journal_pending()

            await wait_for(settled, 60)
            figure = await tally(postgres_url, results)
        finally:
            await asyncio.to_thread(service.stop)
        duplicated, resent = acks.split([second_life])
    acknowledged = sum(r.acknowledged is not None for r in results)
    figure.print("SIGKILL of hotline serve mid-load", cut_by_kill=in_flight,
                 finished_before_kill=BEFORE_KILL - in_flight,
                 votes_acknowledged=acknowledged, duplicated=len(duplicated),
                 resent_same_key_across_kill=len(resent))
    assert in_flight > 0, "the kill came after the load: nothing was tested"
    assert figure.rows == figure.tried  # rule 1: every call has its record
    assert (figure.lost_votes, figure.downgraded) == ([], [])
    assert figure.without_entry == []
    assert figure.undelivered == 0
    assert duplicated == []
    # the forwarder can be killed after the receiver's answer and before its own bookkeeping:
    # those few go again under the same idempotency key (stored once): at most what one
    # forwarder holds at once, its lanes' batches
    assert len(resent) <= LANES * Settings.model_fields["forwarder_batch_size"].default
    assert len(rx.stored) == len(acks.times)
