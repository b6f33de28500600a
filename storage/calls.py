"""The one upsert of a call by its Asterisk ``linkedid``: the survey (ivr/survey_store.py) and
the HTTP API (http_api/calls.py) both write the same ``calls`` row, sometimes at the same moment,
so both go through here.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import Call, SurveyStatus

if TYPE_CHECKING:
    from storage.pg_direct import PgStatement

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
def _insert_new(is_sqlite: bool) -> Insert:
    """Built once: the statement's values come as execution parameters, so a call costs no
    statement construction, only the (cached) compiled form (issue 13, profile)."""
    dialect = sqlite if is_sqlite else postgresql
    insert: Insert = dialect.insert(Call)
    return insert.on_conflict_do_nothing(  # type: ignore[attr-defined,no-any-return]
        index_elements=[Call.linkedid]
    ).returning(Call.id)


@functools.cache
def _insert_new_direct() -> PgStatement:
    from storage.pg_direct import PgStatement

    return PgStatement(_insert_new(False), NEW_CALL_COLUMNS)


async def insert_new_call(db: Database, values: dict[str, Any]) -> int | None:
    """The row of a call not stored yet, in ONE statement outside any transaction (issue 13: the
    write before the survey's menu), ``values`` holding every one of :data:`NEW_CALL_COLUMNS`.
    Returns its id, or None when the linkedid is already stored (the caller then takes
    :func:`upsert_call`'s path, which decides against what is there)."""
    if db.is_sqlite:
        async with db.autocommit() as conn:
            return await conn.scalar(_insert_new(True), values)
    row = await db.fetchrow_direct(_insert_new_direct(), values)
    return None if row is None else int(row[0])
