"""The forwarder's statements run as SQL text by the driver (storage.driver_sql, issue 13), on
SQLite and the real PostgreSQL: the batch lookup read in the claim's own transaction, and the
claim reading its candidates from the partial index of open entries, whatever the backlog."""

from __future__ import annotations

import datetime as dt

from forwarder import lookup
from forwarder.record import Extra
from forwarder.simulated import add_backlog, add_call_rating
from hotline.levels import Level
from service.context import AppContext
from storage import driver_sql, outbox
from storage.models import Case, RatingKind, RatingSource
from storage.ratings import RatingInput, save_rating


async def _case(ctx: AppContext, number: str, department: str | None, citizen: str | None,
                linked: bool) -> None:
    async with ctx.db.transaction() as s:
        case = Case(case_number=number, department_code="D01", department_name=department)
        if citizen:
            case.citizen_enc = ctx.vault.protect(citizen).encrypted
        s.add(case)
        await s.flush()
        await save_rating(s, RatingInput(
            project_no=number, kind=RatingKind.PER_CASE, source=RatingSource.CALLBACK,
            level=Level.SATISFIED, case_id=case.id if linked else None, case_number=number,
        ))


async def test_the_lookup_in_the_claims_transaction(ctx: AppContext) -> None:
    await _case(ctx, "GD1", "市住建局", "13911112222", linked=True)
    await _case(ctx, "GD2", "市交通局", None, linked=False)  # found by its case number
    await _case(ctx, "GD3", None, None, linked=True)  # a case without a department name
    await add_call_rating(ctx, "9.1", Level.SATISFIED, caller="13812345678")
    async with ctx.db.transaction() as session:
        batch = await outbox.claim_in(session, "w", 10, 30)
        payloads = [e.payload for e in batch]
        with_identity = await lookup.extras_in(session, ctx.vault, payloads, with_identity=True)
        without = await lookup.extras_in(session, ctx.vault, payloads, with_identity=False)
        assert await lookup.extras_in(session, ctx.vault, [], with_identity=True) == {}
    by_project = {e.project_no: e.payload["rating_id"] for e in batch}
    assert {p: with_identity[r] for p, r in by_project.items()} == {
        "GD1": Extra("市住建局", "13911112222"),  # 一事一评: the citizen of the case
        "GD2": Extra("市交通局", None),
        "GD3": Extra(None, None),
        "CALL-9.1": Extra(None, "13812345678"),  # 一次一评: the caller of the call
    }
    assert {p: without[r] for p, r in by_project.items()} == {
        "GD1": Extra("市住建局"), "GD2": Extra("市交通局"), "GD3": Extra(), "CALL-9.1": Extra(),
    }


async def test_the_claim_reads_the_open_entries_index(ctx: AppContext) -> None:
    """Thousands delivered and pending: the claim's candidates come from ix_outbox_open, in
    id order, not from a read of every pending entry and a sort (issue 13)."""
    await add_backlog(ctx, 3000)
    done = await outbox.claim(ctx.db, "w", 1000, 30)
    await outbox.finish_many(ctx.db, "w", [outbox.Finished(e.id, "delivered") for e in done])
    sqlite = ctx.db.is_sqlite
    sql = outbox._claim_sql(sqlite)
    now = dt.datetime.now(dt.UTC)
    async with ctx.db.transaction() as session:
        conn = await session.connection()
        if not sqlite:
            await conn.exec_driver_sql("ANALYZE outbox")
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        time = driver_sql.time_binder(conn.dialect)
        plan = "\n".join(
            str(row[-1]) for row in await conn.exec_driver_sql(
                explain + sql, ("w", time(now), time(now), 200)
            )
        )
    assert "ix_outbox_open" in plan, plan
    assert "TEMP B-TREE" not in plan  # no sort: the index gives the order
    claimed = await outbox.claim(ctx.db, "w", 200, 30)
    assert [e.id for e in claimed] == sorted(e.id for e in claimed)
    assert claimed[0].id > done[-1].id and len(claimed) == 200
