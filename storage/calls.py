"""The one upsert of a call by its Asterisk ``linkedid``: the survey (ivr/survey_store.py) and
the HTTP API (http_api/calls.py) both write the same ``calls`` row, sometimes at the same moment,
so both go through here.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import Call, SurveyStatus
from storage.write_batch import WriteBatcher, first_of_each

T = TypeVar("T")


async def upsert_call(
    db: Database,
    linkedid: str,
    change: Callable[[AsyncSession, Call], Awaitable[T]],
    *,
    create: bool = True,
    started_at: dt.datetime | None = None,
) -> T | None:
    """Lock the call's row (inserted as ``pending`` when missing, if ``create``) and apply
    ``change`` to it in the same transaction; its result is returned. None: no row and not
    ``create``. Another session inserting the same linkedid at the same moment makes the
    insert fail on the unique key: then the change is applied once more, to their row."""
    for attempt in (1, 2):
        try:
            async with db.transaction() as session:
                call = await session.scalar(
                    select(Call).where(Call.linkedid == linkedid).with_for_update()
                )
                if call is None:
                    if not create:
                        return None
                    call = Call(linkedid=linkedid, survey_status=SurveyStatus.PENDING)
                    if started_at is not None:
                        call.started_at = started_at
                    session.add(call)
                return await change(session, call)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


#: the columns of a new call's row, all given by the writer (ORM defaults do not run for it)
NEW_CALL_COLUMNS = (
    "linkedid", "uniqueid", "channel", "caller_enc", "caller_hash", "caller_masked",
    "agent_id", "queue", "case_number", "department_code", "started_at", "survey_started_at",
    "ended_at", "survey_status", "created_at", "updated_at",
)


@functools.cache
def _insert_new_sqlite() -> Insert:
    """Built once: the values come as execution parameters (issue 13, profile)."""
    insert: Insert = sqlite.insert(Call)
    return insert.on_conflict_do_nothing(  # type: ignore[attr-defined,no-any-return]
        index_elements=[Call.linkedid]
    ).returning(Call.id)


@functools.cache
def _insert_new_rows_sql() -> str:
    """Many new calls in ONE statement: a column of values per array, so the statement is the
    same (prepared once) whatever the number of rows."""
    table = Call.__table__
    dialect = postgresql.dialect()
    arrays = ", ".join(f"${n}::{table.c[name].type.compile(dialect=dialect)}[]"
                       for n, name in enumerate(NEW_CALL_COLUMNS, 1))
    return (f"INSERT INTO {table.name} ({', '.join(NEW_CALL_COLUMNS)}) SELECT * FROM "
            f"unnest({arrays}) ON CONFLICT (linkedid) DO NOTHING RETURNING linkedid, id")


async def insert_new_calls(db: Database, rows: Sequence[dict[str, Any]]) -> list[int | None]:
    """PostgreSQL: :func:`insert_new_call` for many calls in one statement, a result per row.
    The same linkedid twice: the first row is the new call, the second finds it stored."""
    first = first_of_each([row["linkedid"] for row in rows])
    new = [row for row, is_first in zip(rows, first, strict=True) if is_first]
    stored = await db.fetch_direct(
        _insert_new_rows_sql(), [[row[name] for row in new] for name in NEW_CALL_COLUMNS])
    ids = {linkedid: call_id for linkedid, call_id in stored}
    return [ids.get(row["linkedid"]) if is_first else None
            for row, is_first in zip(rows, first, strict=True)]


async def insert_new_call(
    db: Database, values: dict[str, Any], on_sent: Callable[[bool], None] | None = None
) -> int | None:
    """The row of a call not stored yet, in ONE statement outside any transaction (issue 13: the
    write before the survey's menu), ``values`` holding every one of :data:`NEW_CALL_COLUMNS`.
    Returns its id, or None when the linkedid is already stored (the caller then takes
    :func:`upsert_call`'s path, which decides against what is there).

    On PostgreSQL the calls arriving together are written together (a burst's thousand rows
    in a few statements: :mod:`storage.write_batch`), on the connections of
    :attr:`Database.slots`; ``on_sent`` tells when this row is in the database. On SQLite (no
    round trips to save) the caller holds a slot and the row is written alone."""
    if db.is_sqlite:
        async with db.autocommit() as conn:
            return await conn.scalar(_insert_new_sqlite(), values)
    batcher = db.batcher("new_calls", lambda: WriteBatcher(
        lambda rows: insert_new_calls(db, rows), db.slots))
    return await batcher.submit(values, on_sent)  # type: ignore[no-any-return]
