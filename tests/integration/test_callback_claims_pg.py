"""Two scheduler processes against one backlog on PostgreSQL (DOMAIN.md rule 8: a citizen is
never called twice by accident; the simultaneous-call cap holds across processes).

Each worker process claims attempts in a loop, "calls" for a moment and ends the attempt as
rated. The test watches the database's count of calls under way while they run, then checks
that every task was claimed exactly once, by one process or the other.

Run as ``python -m tests.integration.test_callback_claims_pg URL DATA_DIR NAME`` it is one
worker process.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callback_scheduler import tasks
from callback_scheduler.claims import claim
from callback_scheduler.lifecycle import ACTIVE_ATTEMPT_STATUSES
from callback_scheduler.rules import Outcome
from hotline.settings import PROJECT_ROOT
from service.context import AppContext
from storage.models import CallbackAttempt, CallbackTask
from tests.conftest import make_settings
from tests.helpers.callbacks import NOW, closed_bad_case

CAP = 4
TASKS = 40

pytestmark = pytest.mark.postgres


async def _worker(url: str, data_dir: str, name: str) -> None:
    # calls per minute high enough not to be the limit here: the cap is under test
    ctx = AppContext.create(make_settings(Path(data_dir), database_url=url,
                                          callback_max_concurrent_calls=CAP,
                                          callback_calls_per_minute=1000))
    idle = 0
    try:
        while idle < 20:
            claims = await claim(ctx, scheduler_id=name, now=NOW, want=3)
            if not claims:
                idle += 1
                await asyncio.sleep(0.02)
                continue
            idle = 0
            for c in claims:
                print(c.task_id, flush=True)
            await asyncio.sleep(0.03)  # the calls take a moment
            for c in claims:
                async with ctx.db.transaction() as s:
                    await tasks.finish_attempt(s, ctx, c.attempt_id, Outcome.RATED, now=NOW)
    finally:
        await ctx.close()


async def test_rule8_two_processes_dial_every_task_once_within_the_cap(
    tmp_path: Path, postgres_url: str,
) -> None:
    ctx = AppContext.create(make_settings(tmp_path, database_url=postgres_url,
                                          callback_max_concurrent_calls=CAP))
    try:
        for i in range(TASKS):
            await closed_bad_case(ctx, f"MP-{i}", number=f"138{i:08d}")
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.integration.test_callback_claims_pg",
                postgres_url, str(tmp_path / f"w{n}"), f"w{n}",
                cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE,
            )
            for n in range(2)
        ]
        outputs = [asyncio.create_task(p.communicate()) for p in procs]
        peak = 0
        while not all(o.done() for o in outputs):
            async with ctx.db.sessions() as s:
                active = await s.scalar(select(func.count()).select_from(CallbackAttempt).where(
                    CallbackAttempt.status.in_([a.value for a in ACTIVE_ATTEMPT_STATUSES])))
            peak = max(peak, active or 0)
            await asyncio.sleep(0.005)
        assert [p.returncode for p in procs] == [0, 0]
        claimed = [[int(x) for x in (await o)[0].split()] for o in outputs]
        everything = claimed[0] + claimed[1]
        assert sorted(everything) == sorted(set(everything)) and len(everything) == TASKS
        assert all(claimed), "both processes took part"
        assert 0 < peak <= CAP
        async with ctx.db.sessions() as s:
            per_task = (await s.execute(
                select(CallbackAttempt.task_id, func.count()).group_by(CallbackAttempt.task_id)
            )).all()
            statuses = set(await s.scalars(select(CallbackTask.status)))
        assert len(per_task) == TASKS and {n for _, n in per_task} == {1}
        assert statuses == {"completed"}
    finally:
        await ctx.close()


if __name__ == "__main__":
    asyncio.run(_worker(*sys.argv[1:4]))
