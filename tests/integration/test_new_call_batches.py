"""Issue 13: on PostgreSQL the call rows of calls reaching the survey together are written by
one statement (storage.calls.insert_new_calls, through storage.write_batch), each caller told
whether its call is new — the rule the survey's begin depends on (a call already stored is
decided against what is there, never surveyed twice: DOMAIN.md rule 1)."""

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
from storage.models import Call
from tests.conftest import make_settings


@pytest.fixture
async def pg(tmp_path: Path, postgres_url: str) -> AsyncIterator[AppContext]:
    ctx = AppContext.create(make_settings(tmp_path, database_url=postgres_url))
    yield ctx
    await ctx.close()


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
    statements: list[str] = []
    real = pg.db.fetch_direct

    async def counted(sql: str, arguments: Any) -> Any:
        statements.append(sql)
        return await real(sql, arguments)

    pg.db.fetch_direct = counted  # type: ignore[method-assign]
    ids = await asyncio.gather(*(insert_new_call(pg.db, row(f"burst.{n}")) for n in range(500)))
    assert all(i is not None for i in ids) and len(set(ids)) == 500
    assert len(statements) <= 50
    async with pg.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Call)) == 500
