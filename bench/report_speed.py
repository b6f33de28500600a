"""How long a monthly and a yearly department 通报 take over a province-size year of ratings.

    .venv/bin/python -m bench.report_speed --ratings 1000000      # goal: month < 1 s, year < 3 s
    .venv/bin/python -m bench.report_speed --ratings 2000         # a quick run (CI does this)

Fills its own PostgreSQL database (``hotline_bench_report``, dropped and made again; the admin
DSN is ``$HOTLINE_BENCH_PG``, as for every benchmark) with one year of calls, as many ratings
(5 % defaults, 0.2 % found invalid, 10 % 差评) and the 差评 items they open, all by
``INSERT … SELECT`` from ``generate_series`` in the server, then VACUUM ANALYZE. Prints the
time of the department report of one month and of the whole year (figures, ranking with the
consecutive-period flag, 差评 reasons: what the 通报 needs) and the plan of the main ratings
query, to show it reads the covering index (migration 0007).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy import text

from bench.common import PG
from hotline.settings import load_settings
from reports.build import build_report
from reports.engine import Window
from reports.periods import Period
from service.context import AppContext
from storage import migrate
from storage.pg_admin import PgAdmin

YEAR = 2025
DEPARTMENTS = 40
AGENTS = 300

FILL = [
    """INSERT INTO calls (linkedid, agent_id, queue, department_code, started_at,
           survey_started_at, ended_at, survey_status, created_at, updated_at)
       SELECT 'B' || i, 'A' || (i % {agents}), 'q' || (i % 5),
              'D' || lpad((i % {departments})::text, 2, '0'), ts,
              CASE WHEN i % 10 <> 0 THEN ts END, ts, 'rated', ts, ts
       FROM (SELECT i, timestamptz '{year}-01-01 00:00+08' + (i - 1) * (interval '365 days'
                    / {n}) AS ts FROM generate_series(1, {n}) AS i) s""",
    """INSERT INTO ratings (project_no, assess_number, kind, source, level, reason_codes,
           call_id, agent_id, department_code, rated_at, valid, created_at, updated_at)
       SELECT 'CALL-' || c.linkedid, 1, 'per_call',
              CASE WHEN c.id % 20 = 0 THEN 'default' ELSE 'keypad' END,
              CASE WHEN c.id % 20 = 0 THEN 3
                   ELSE (ARRAY[1,1,1,1,2,2,2,3,4,5])[1 + (c.id * 7) % 10] END,
              CASE WHEN (c.id * 7) % 10 >= 8 THEN (1 + c.id % 4)::text END,
              c.id, c.agent_id, c.department_code, c.started_at + interval '5 minutes',
              c.id % 500 <> 0, c.started_at, c.started_at
       FROM calls c""",
    """INSERT INTO bad_rating_items (subject_key, project_no, call_id, department_code, agent_id,
           state, round, first_rating_id, latest_rating_id, opened_at, round_started_at,
           verify_due, rectify_due, verification, verified_at, rectification_reply,
           rectified_at, followup_at, followup_level, supervise_count, created_at, updated_at)
       SELECT 'call:' || r.project_no, r.project_no, r.call_id, r.department_code, r.agent_id,
              (ARRAY['closed','closed','followup','rectifying'])[1 + r.id % 4], 1, r.id, r.id,
              r.rated_at, r.rated_at, (r.rated_at + interval '3 days')::date,
              (r.rated_at + interval '21 days')::date, 'genuine',
              r.rated_at + interval '1 day', CASE WHEN r.id % 4 <> 3 THEN '已整改' END,
              CASE WHEN r.id % 4 <> 3 THEN r.rated_at + interval '10 days' END,
              CASE WHEN r.id % 4 < 2 THEN r.rated_at + interval '12 days' END,
              CASE WHEN r.id % 4 < 2 THEN 2 END, 0, r.rated_at, r.rated_at
       FROM ratings r WHERE r.valid AND r.source <> 'default' AND r.level >= 4""",
]


async def fill(url: str, n: int) -> float:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        for sql in FILL:
            await conn.execute(sql.format(n=n, year=YEAR, agents=AGENTS,
                                          departments=DEPARTMENTS))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def timed(ctx: AppContext, period: Period, now: dt.datetime) -> float:
    started = time.perf_counter()
    async with ctx.db.sessions() as session:
        await build_report(session, ctx.settings, period, "department",
                           parts={"ranking", "reasons"}, now=now)
    return time.perf_counter() - started


async def explain(ctx: AppContext, period: Period) -> str:
    start, end = period.bounds(ctx.settings.tz)
    window = Window(start, end)
    query = (
        "EXPLAIN SELECT department_code, count(*), sum(CASE WHEN level >= 4 THEN 1 ELSE 0 END)"
        " FROM ratings WHERE rated_at >= :start AND rated_at < :end AND valid IS true"
        " GROUP BY department_code"
    )
    async with ctx.db.sessions() as session:
        rows = await session.execute(text(query), {"start": window.start, "end": window.end})
        return "\n".join(f"    {r[0]}" for r in rows)


async def bench(ratings: int, keep: bool, admin: PgAdmin = PG) -> dict[str, float]:
    name = "hotline_bench_report"
    await admin.drop(name)
    url = await admin.create(name)
    try:
        await migrate.upgrade_async(url)
        filled = await fill(url, ratings)
        workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
        settings = load_settings(Path(os.devnull), data_dir=workdir, database_url=url)
        ctx = AppContext.create(settings)
        now = dt.datetime(YEAR + 1, 1, 10, tzinfo=dt.UTC)
        month = Period("month", dt.date(YEAR, 6, 1), dt.date(YEAR, 6, 30))
        year = Period("year", dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))
        try:
            await timed(ctx, month, now)  # warm the cache and the connection pool once
            figures = {"fill": filled, "month": await timed(ctx, month, now),
                       "year": await timed(ctx, year, now)}
            plans = {"month": await explain(ctx, month), "year": await explain(ctx, year)}
        finally:
            await ctx.close()
    finally:
        if not keep:
            await admin.drop(name)
    print(f"{ratings} ratings over {YEAR} on PostgreSQL (filled in {figures['fill']:.1f} s)")
    print(f"  monthly department report: {figures['month']:.3f} s (goal < 1 s)")
    print(f"  yearly department report:  {figures['year']:.3f} s (goal < 3 s)")
    for which, plan in plans.items():
        # (over a year that is the whole table, the planner may rightly prefer reading it all)
        print(f"  plan of the {which}ly ratings aggregate:")
        print(plan)
    figures["month_uses_index"] = float("ix_ratings_report" in plans["month"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    asyncio.run(bench(args.ratings, args.keep))


if __name__ == "__main__":
    main()
