"""Token storage on both SQLite and PostgreSQL: hashed, verifiable, revocable."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from http_api import tokens
from storage.db import Database
from storage.models import ApiToken


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.close()


async def test_create_stores_only_the_hash(db: Database) -> None:
    async with db.transaction() as session:
        row, secret = await tokens.create_token(session, name=" crm sync ", role="agent")
    assert secret.startswith("hl_") and len(secret) > 40
    async with db.sessions() as session:
        stored = (await session.scalars(select(ApiToken))).one()
    assert stored.id == row.id
    assert stored.name == "crm sync"
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {stored.token_hash, stored.name}


async def test_tokens_are_random(db: Database) -> None:
    async with db.transaction() as session:
        _, first = await tokens.create_token(session, name="a", role="agent")
        _, second = await tokens.create_token(session, name="a", role="agent")
    assert first != second


async def test_verify_and_revoke(db: Database) -> None:
    async with db.transaction() as session:
        row, secret = await tokens.create_token(session, name="desk", role="supervisor")
    async with db.sessions() as session:
        found = await tokens.verify_token(session, secret)
        assert found == tokens.Principal(token_id=row.id, name="desk", role="supervisor")
        assert await tokens.verify_token(session, secret + "x") is None
        assert await tokens.verify_token(session, "") is None
        assert await tokens.verify_token(session, "x" * 10_000) is None
    async with db.transaction() as session:
        revoked = await tokens.revoke_token(session, row.id)
    assert revoked is not None and revoked.revoked_at is not None
    async with db.sessions() as session:
        assert await tokens.verify_token(session, secret) is None


async def test_revoke_twice_keeps_first_time_and_unknown_id_is_none(db: Database) -> None:
    async with db.transaction() as session:
        row, _ = await tokens.create_token(session, name="x", role="reviewer")
    async with db.transaction() as session:
        first = (await tokens.revoke_token(session, row.id)).revoked_at  # type: ignore[union-attr]
    async with db.transaction() as session:
        again = await tokens.revoke_token(session, row.id)
        missing = await tokens.revoke_token(session, row.id + 1000)
    assert again is not None and again.revoked_at == first
    assert missing is None


async def test_list_in_creation_order(db: Database) -> None:
    async with db.transaction() as session:
        for name, role in [("one", "agent"), ("two", "admin"), ("three", "aggregator")]:
            await tokens.create_token(session, name=name, role=role)
    async with db.sessions() as session:
        rows = await tokens.list_tokens(session)
    assert [(r.name, r.role) for r in rows] == [
        ("one", "agent"), ("two", "admin"), ("three", "aggregator")
    ]


async def test_bad_role_or_name_is_refused(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(tokens.TokenError, match="unknown role"):
            await tokens.create_token(session, name="x", role="root")
        with pytest.raises(tokens.TokenError, match="name"):
            await tokens.create_token(session, name="   ", role="agent")
        with pytest.raises(tokens.TokenError, match="name"):
            await tokens.create_token(session, name="n" * 129, role="agent")

