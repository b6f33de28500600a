"""Claiming the next due 回访 tasks among a million pending, on PostgreSQL.

    .venv/bin/python -m bench.callback_claim                      # 1,000,000 tasks
    .venv/bin/python -m bench.callback_claim --tasks 20000 --rounds 5

Fills a fresh database with ``--tasks`` pending tasks over a few running campaigns (half of
them due, half due later; one number each), then times the scheduler's own claim
(``callback_scheduler.claims.claim``, ``--want`` tasks a round) ``--rounds`` times, putting the
claimed tasks back between rounds. The candidate query is captured as the scheduler sends it and
shown with ``EXPLAIN (ANALYZE, BUFFERS)``: the plan must read an index, not the table.
The floor is the same database answering ``SELECT 1`` (one round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from bench.common import figure, fresh_database, percentile
from callback_scheduler.claims import claim
from hotline.clock import utcnow
from hotline.settings import load_settings
from service.context import AppContext

#: (priority, share of the tasks): the standing 差评回访 first, then supervisors' campaigns
CAMPAIGNS = ((100, 0.1), (0, 0.6), (0, 0.3))
RULES = ('{"windows": ["00:00-24:00"], "working_days_only": false, '
         '"calls_per_minute": 10000}')


async def _fill(ctx: AppContext, tasks: int) -> None:
    async with ctx.db.engine.begin() as conn:
        start = 1
        for n, (priority, share) in enumerate(CAMPAIGNS, start=1):
            await conn.execute(text(
                "INSERT INTO callback_campaigns (id, name, kind, status, priority, rules, "
                "created_at, updated_at) VALUES (:id, :name, 'satisfaction_followup', "
                "'running', :priority, CAST(:rules AS json), now(), now())"
            ), {"id": n, "name": f"bench {n}", "priority": priority, "rules": RULES})
            count = int(tasks * share) if n < len(CAMPAIGNS) else tasks - start + 1
            # half due (in the past, spread over a day), half later
            await conn.execute(text(
                "INSERT INTO callback_tasks (campaign_id, number_enc, number_hash, number_masked,"
                " status, priority, attempts_made, max_attempts, next_attempt_at, created_at,"
                " updated_at) SELECT :campaign, 'x', md5(i::text), '138****0000', 'pending', 0,"
                " 0, 3, now() + (CASE WHEN i % 2 = 0 THEN -1 ELSE 1 END)"
                " * (i % 86400) * interval '1 second', now(), now()"
                " FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i"
            ), {"campaign": n, "first": start, "last": start + count - 1})
            start += count
        await conn.execute(text("ANALYZE"))


async def _put_back(ctx: AppContext) -> None:
    async with ctx.db.engine.begin() as conn:
        await conn.execute(text(
            "UPDATE callback_tasks SET status = 'pending', attempts_made = 0 "
            "WHERE id IN (SELECT task_id FROM callback_attempts)"))
        await conn.execute(text("DELETE FROM callback_attempts"))


def _capture(ctx: AppContext, seen: list[tuple[str, Any]]) -> Any:
    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if "SKIP LOCKED" in statement and "callback_tasks" in statement:
            seen.append((statement, parameters))

    event.listen(ctx.db.engine.sync_engine, "before_cursor_execute", before)
    return before


async def _explain(ctx: AppContext, statement: str, parameters: Any) -> list[str]:
    async with ctx.db.engine.connect() as conn:
        result = await conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        lines = [row[0] for row in result]
        await conn.rollback()
    return lines


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    print(f"callback_claim: {args.tasks} pending tasks, want {args.want}, {args.rounds} rounds",
          flush=True)
    async with fresh_database("postgres", workdir) as url:
        settings = load_settings(
            Path("/dev/null"), data_dir=workdir, database_url=url,
            callback_max_concurrent_calls=100000,
            callback_trunks=[{"name": "carrier", "dial_string": "PJSIP/{number}@carrier",
                              "max_calls": 100000}],
        )
        ctx = AppContext.create(settings)
        try:
            started = time.perf_counter()
            await _fill(ctx, args.tasks)
            print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
            seen: list[tuple[str, Any]] = []
            _capture(ctx, seen)
            floor, took, claimed = [], [], 0
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                async with ctx.db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                floor.append(time.perf_counter() - t0)
                now = utcnow() + dt.timedelta(seconds=1)
                t0 = time.perf_counter()
                got = await claim(ctx, scheduler_id="bench", now=now, want=args.want)
                took.append(time.perf_counter() - t0)
                claimed += len(got)
                await _put_back(ctx)
            plan = await _explain(ctx, *seen[-1]) if seen else ["(the query was not seen)"]
        finally:
            await ctx.close()
    print("EXPLAIN of the candidate query:")
    for line in plan:
        print("   ", line)
    uses_index = any("Index" in line for line in plan) and not any(
        "Seq Scan on callback_tasks" in line for line in plan)
    median = 1000 * percentile(took, 0.5)
    figure("floor: SELECT 1 round trip, median", 1000 * percentile(floor, 0.5), "ms")
    figure(f"claim {args.want} due tasks among {args.tasks:,}, median", median, "ms",
           "< 10 ms", median < 10)
    figure(f"claim {args.want} due tasks among {args.tasks:,}, worst", 1000 * max(took), "ms")
    figure("tasks claimed per round", claimed / args.rounds, "tasks", f"= {args.want}",
           claimed == args.want * args.rounds)
    figure("EXPLAIN: the candidate query reads an index", "yes" if uses_index else "no", "",
           "index", uses_index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--want", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
