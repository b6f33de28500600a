"""The ``serve_scheduler`` worker end to end against the scripted AMI server (SQLite and
PostgreSQL): closed 差评 cases are dialled without anyone calling a function by hand, the
simultaneous-call cap holds (DOMAIN.md rule 8), and a stop ends the loop cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from ami.client import AmiClient
from callback_scheduler import worker
from service.context import AppContext
from service.serve import WORKERS
from storage.models import CallbackAttempt, CallbackTask
from tests.conftest import make_settings
from tests.helpers.callbacks import NOW, closed_bad_case
from tests.helpers.fake_ami import SECRET, FakeAsterisk


async def test_worker_dials_due_tasks_within_the_cap_and_stops(
    tmp_path: Path, database_url: str, fake: FakeAsterisk,
) -> None:
    ctx = AppContext.create(make_settings(
        tmp_path, database_url=database_url, callback_poll_interval=0.05,
        callback_max_concurrent_calls=2, callback_response_grace_seconds=1.0))
    ami = AmiClient("127.0.0.1", fake.port, "hotline", SECRET, timeout=1.0, keepalive=None)
    await ami.connect()
    stopping = asyncio.Event()
    try:
        for i in range(5):
            await closed_bad_case(ctx, f"W-{i}", number=f"1380000{i}005")  # all busy
        peak = 0
        runner = asyncio.create_task(worker.run(ctx, stopping, ami=ami, clock=lambda: NOW))
        async with asyncio.timeout(20):
            while True:
                async with ctx.db.sessions() as s:
                    statuses = list(await s.scalars(select(CallbackTask.status)))
                    active = await s.scalar(select(func.count()).select_from(CallbackAttempt)
                                            .where(CallbackAttempt.status != "ended"))
                peak = max(peak, active or 0)
                if statuses and all(x == "pending" for x in statuses) and len(
                        fake.originates) == 5:
                    break
                await asyncio.sleep(0.02)
        stopping.set()
        await asyncio.wait_for(runner, 10)
        async with ctx.db.sessions() as s:
            tasks = list(await s.scalars(select(CallbackTask)))
            attempts = list(await s.scalars(select(CallbackAttempt)))
        assert len(attempts) == 5 and {a.status for a in attempts} == {"ended"}
        assert {t.next_attempt_at for t in tasks} == {NOW + dt.timedelta(minutes=30)}
        assert 0 < peak <= 2
    finally:
        stopping.set()
        await ami.close()
        await ctx.close()


def test_the_scheduler_is_a_service_worker() -> None:
    assert ("serve_scheduler", "callback_scheduler.worker:run") in WORKERS
