"""Storage on both SQLite and PostgreSQL: migrations, UTC times, ratings with their outbox."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hotline.clock import format_local, utcnow
from hotline.levels import Level
from service.context import AppContext
from storage import migrate
from storage.models import Call, OutboxEntry, OutboxStatus, Rating, RatingKind, RatingSource
from storage.ratings import RatingInput, project_no_for_call, save_rating
from storage.ratings import release_rating as release


def _keypad(linkedid: str, level: Level, **kw: object) -> RatingInput:
    return RatingInput(
        project_no=project_no_for_call(linkedid),
        kind=RatingKind.PER_CALL,
        source=RatingSource.KEYPAD,
        level=level,
        **kw,  # type: ignore[arg-type]
    )


async def test_times_are_stored_utc_and_shown_in_beijing(ctx: AppContext) -> None:
    started = dt.datetime(2026, 3, 1, 16, 30, tzinfo=dt.UTC)
    async with ctx.db.transaction() as s:
        s.add(Call(linkedid="1700000000.1", started_at=started))
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == "1700000000.1"))
    assert call is not None
    assert call.started_at == started and call.started_at.tzinfo is not None
    assert format_local(call.started_at) == "2026-03-02 00:30:00"


async def test_rating_and_outbox_entry_commit_together(ctx: AppContext) -> None:
    async with ctx.db.transaction() as s:
        rating = await save_rating(s, _keypad("1.1", Level.SATISFIED))
    async with ctx.db.sessions() as s:
        entries = (await s.scalars(select(OutboxEntry))).all()
    assert [(e.rating_id, e.project_no, e.assess_number, e.status) for e in entries] == [
        (rating.id, "CALL-1.1", 1, OutboxStatus.PENDING)
    ]
    assert entries[0].payload["level"] == 2


async def test_failed_transaction_writes_neither_rating_nor_outbox(ctx: AppContext) -> None:
    with pytest.raises(RuntimeError):
        async with ctx.db.transaction() as s:
            await save_rating(s, _keypad("1.2", Level.SATISFIED))
            raise RuntimeError("crash after the write")
    async with ctx.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Rating)) == 0
        assert await s.scalar(select(func.count()).select_from(OutboxEntry)) == 0


async def test_step_by_step_saves_keep_one_rating_and_one_held_entry(ctx: AppContext) -> None:
    """Survey saves after every step: level, then reasons, then comment; one record results."""
    hold = utcnow() + dt.timedelta(minutes=10)
    async with ctx.db.transaction() as s:
        r = await save_rating(s, _keypad("1.3", Level.DISSATISFIED), hold_until=hold)
    async with ctx.db.transaction() as s:
        await save_rating(
            s, _keypad("1.3", Level.DISSATISFIED, reason_codes=["2"]), hold_until=hold
        )
    async with ctx.db.transaction() as s:
        await save_rating(
            s, _keypad("1.3", Level.DISSATISFIED, comment_recording="c/1.3.wav"), hold_until=hold
        )
    async with ctx.db.sessions() as s:
        ratings = (await s.scalars(select(Rating))).all()
        entries = (await s.scalars(select(OutboxEntry))).all()
    assert len(ratings) == 1 and ratings[0].reason_codes == "2"
    assert ratings[0].comment_recording == "c/1.3.wav"
    assert len(entries) == 1
    assert entries[0].payload["reason_codes"] == ["2"]
    assert entries[0].ready_at > utcnow()
    async with ctx.db.transaction() as s:
        await release(s, r.id)
    async with ctx.db.sessions() as s:
        entry = await s.scalar(select(OutboxEntry))
    assert entry is not None and entry.ready_at <= utcnow()


async def test_update_after_delivery_is_a_new_outbox_entry(ctx: AppContext) -> None:
    async with ctx.db.transaction() as s:
        await save_rating(s, _keypad("1.4", Level.SATISFIED))
    async with ctx.db.transaction() as s:
        entry = await s.scalar(select(OutboxEntry))
        assert entry is not None
        entry.status = OutboxStatus.DELIVERED
    async with ctx.db.transaction() as s:
        await save_rating(s, _keypad("1.4", Level.VERY_SATISFIED))
    async with ctx.db.sessions() as s:
        levels = [
            e.payload["level"]
            for e in (await s.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))
        ]
    assert levels == [2, 1]


async def test_natural_key_is_unique(ctx: AppContext) -> None:
    """(projectNo, assessNumber) is the natural idempotency key (DOMAIN.md push record)."""
    with pytest.raises(IntegrityError):
        async with ctx.db.transaction() as s:
            for _ in range(2):
                s.add(
                    Rating(
                        project_no="P1", assess_number=1, kind="per_case", source="manual", level=3
                    )
                )
                await s.flush()


def test_migrations_downgrade_and_upgrade_again(database_url: str) -> None:
    migrate.downgrade(database_url, "base")
    migrate.upgrade(database_url)


async def test_models_and_migrations_agree(database_url: str) -> None:
    """A future autogenerate must not propose changes: the models are the schema's one source."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.db import make_engine
    from storage.models import Base

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []
