"""CLI plumbing: a database without the schema gets an instruction, not a traceback, on both
SQLite and PostgreSQL (their errors differ: "no such table" / "does not exist")."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from service.commands import CommandError, with_context
from service.context import AppContext
from storage.models import ApiToken
from tests.conftest import PG, make_settings


async def _read_tokens(ctx: AppContext) -> list[ApiToken]:
    async with ctx.db.sessions() as s:
        return list(await s.scalars(select(ApiToken)))


def test_empty_sqlite_database_says_to_upgrade(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
    with pytest.raises(CommandError, match="hotline db upgrade"):
        with_context(settings, _read_tokens)


def test_empty_postgres_database_says_to_upgrade(tmp_path: Path, pg_template: str | None) -> None:
    if pg_template is None:
        from tests.conftest import missing

        missing("PostgreSQL at 127.0.0.1:5432")
    name = f"hotline_e_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(PG.create(name))
    try:
        settings = make_settings(tmp_path, database_url=url)
        with pytest.raises(CommandError, match="hotline db upgrade"):
            with_context(settings, _read_tokens)
    finally:
        asyncio.run(PG.drop(name))


def test_migrated_database_runs_the_work(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    assert with_context(settings, _read_tokens) == []
