"""Issue 13: on PostgreSQL the call rows of calls reaching the survey together are written by
one statement (storage.calls.insert_new_calls, through storage.write_batch), each caller told
whether its call is new — the rule the survey's begin depends on (a call already stored is
decided against what is there, never surveyed twice: DOMAIN.md rule 1); and the first votes of
calls voting together are one statement too (storage.first_votes), each rating
with its outbox entry, exactly once (DOMAIN.md: every rating reaches the aggregation system)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hotline.clock import utcnow
from service.context import AppContext
from storage.calls import NEW_CALL_COLUMNS, insert_new_call, insert_new_calls
from storage.first_votes import store_first_vote
from storage.models import Call, OutboxEntry, Rating, SurveyStatus
from storage.ratings import snapshot
from tests.conftest import make_settings


@pytest.fixture
async def pg(tmp_path: Path, postgres_url: str) -> AsyncIterator[AppContext]:
    ctx = AppContext.create(make_settings(tmp_path, database_url=postgres_url))
    yield ctx
    await ctx.close()


def counting(ctx: AppContext) -> list[str]:
    """The direct statements ``ctx`` runs from now on."""
    statements: list[str] = []
    real = ctx.db.fetch_direct

    async def counted(sql: str, arguments: Any) -> Any:
        statements.append(sql)
        return await real(sql, arguments)

    ctx.db.fetch_direct = counted  # type: ignore[method-assign]
    return statements


def row(linkedid: str, **values: Any) -> dict[str, Any]:
    now = utcnow()
    base: dict[str, Any] = dict.fromkeys(NEW_CALL_COLUMNS)
    base.update(linkedid=linkedid, started_at=now, created_at=now, updated_at=now,
                survey_status="in_progress", survey_started_at=now, **values)
    return base


async def test_one_statement_writes_many_new_calls_and_tells_which_were_new(
    pg: AppContext,
) -> None:
    assert await insert_new_call(pg.db, row("old.1")) is not None
    ids = await insert_new_calls(pg.db, [
        row("new.1", agent_id="A1", caller_masked="138****0000"), row("old.1"),
        row("new.2", queue="q"), row("new.1"),
    ])
    assert ids[0] is not None and ids[2] is not None
    assert ids[1] is None  # stored before: decided against what is there
    assert ids[3] is None  # the same call twice in one batch: the first row is the new one
    async with pg.db.sessions() as s:
        calls = {c.linkedid: c for c in await s.scalars(select(Call))}
    assert set(calls) == {"old.1", "new.1", "new.2"}
    assert (calls["new.1"].id, calls["new.1"].agent_id, calls["new.1"].caller_masked) == (
        ids[0], "A1", "138****0000")
    assert calls["new.2"].queue == "q" and calls["new.2"].survey_started_at is not None


async def test_a_burst_of_new_calls_takes_few_statements(pg: AppContext) -> None:
    """500 calls arriving at once: every row written once, in far fewer statements."""
    statements = counting(pg)
    ids = await asyncio.gather(*(insert_new_call(pg.db, row(f"burst.{n}")) for n in range(500)))
    assert all(i is not None for i in ids) and len(set(ids)) == 500
    assert len(statements) <= 50
    async with pg.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Call)) == 500


async def test_calls_voting_together_are_stored_by_few_statements_each_once(
    pg: AppContext,
) -> None:
    ids = await insert_new_calls(pg.db, [row(f"vote.{n}", agent_id=f"A{n}") for n in range(300)])
    async with pg.db.transaction() as s:  # one call defaulted meanwhile: its vote falls back
        await s.execute(Call.__table__.update().where(Call.id == ids[7])
                        .values(survey_status=SurveyStatus.DEFAULTED))
    statements = counting(pg)
    now = utcnow()
    votes = [store_first_vote(pg.db, call_id, f"CALL-vote.{n}", 2, None, None, now, now)
             for n, call_id in enumerate(ids)]
    votes.append(store_first_vote(pg.db, ids[0], "CALL-vote.0", 2, None, None, now, now))
    rating_ids = await asyncio.gather(*votes)
    assert len(statements) <= 30
    assert rating_ids[7] is None  # defaulted: the general path decides
    assert rating_ids[300] is None  # the same call twice: the second finds it stored
    assert all(r is not None for n, r in enumerate(rating_ids[:300]) if n != 7)
    async with pg.db.sessions() as s:
        ratings = {r.id: r for r in await s.scalars(select(Rating))}
        entries = list(await s.scalars(select(OutboxEntry)))
    assert len(ratings) == 299 and len(entries) == 299
    for entry in entries:
        rating = ratings[entry.rating_id]
        assert entry.payload == snapshot(rating)
        assert rating.agent_id == f"A{rating.project_no.rsplit('.', 1)[1]}"
