"""Statements run as SQL text by the database driver (``exec_driver_sql``): no statement
compilation or cache-key walk per execution, no result processing per row (issue 13: for the
forwarder's fixed statements that machinery cost more CPU than the database's own work). What
differs between SQLite and PostgreSQL in such a statement is written here once: parameter
markers, a list of ids as one parameter, and how a time is bound.

Parameters are numbered (``?1`` in SQLite, ``$1`` in PostgreSQL): a statement is written once
with :func:`numbered` markers and reuses a value by its number.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import UtcDateTime

_MARK = re.compile(r"\?(\d+)")


def numbered(sql: str, sqlite: bool) -> str:
    """``sql`` written with ``?N`` markers, in the dialect's own (``$N`` on PostgreSQL)."""
    return sql if sqlite else _MARK.sub(r"$\1", sql)


def in_list(column: str, number: int, sqlite: bool, pg_type: str = "bigint") -> str:
    """``column`` is one of the values given as parameter ``number`` (:func:`values`): one
    statement text whatever their number, so the driver's prepared statement is reused."""
    if sqlite:
        return f"{column} IN (SELECT value FROM json_each(?{number}))"
    return f"{column} = ANY(?{number}::{pg_type}[])"


def values(items: Sequence[int | str], sqlite: bool) -> Any:
    """The parameter for :func:`in_list`: a JSON array on SQLite, an array on PostgreSQL."""
    return json.dumps(list(items), ensure_ascii=False) if sqlite else list(items)


def json_value(value: Any) -> Any:
    """A JSON column as the driver hands it back (text), decoded."""
    return json.loads(value) if isinstance(value, str | bytes) else value


async def rows(session: AsyncSession, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
    """Every row of ``sql`` (with the dialect's parameters ``params``) in ``session``'s
    transaction.

    On SQLite the statement is executed and its rows fetched in one call to aiosqlite's
    thread, where SQLAlchemy's adapter makes three or four (cursor, execute, fetch, close):
    each call waits for that thread to get the GIL from a busy event loop, up to the
    interpreter's switch interval (issue 13: a claim took 40–60 ms of wall time for ~10 ms
    of work). The transaction is the sqlite3 connection's own, the session's too: its
    commit or rollback covers these statements. Errors are SQLAlchemy's, as from
    exec_driver_sql. On PostgreSQL asyncpg runs on the event loop: exec_driver_sql."""
    conn = await session.connection()
    if conn.dialect.name != "sqlite":
        return list((await conn.exec_driver_sql(sql, tuple(params))).all())
    raw = await conn.get_raw_connection()
    try:
        return list(await raw.driver_connection.execute_fetchall(sql, tuple(params)))
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, tuple(params), exc, sqlite3.Error) from exc


_TIMES: dict[str, Callable[[dt.datetime], Any]] = {}


def time_binder(dialect: Dialect) -> Callable[[dt.datetime], Any]:
    """How an aware UTC time is bound for ``dialect``: exactly as the ORM stores it
    (storage.models.UtcDateTime), or comparisons with stored times would go wrong."""
    found = _TIMES.get(dialect.name)
    if found is None:
        process = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
        found = _TIMES[dialect.name] = process if process is not None else (lambda v: v)
    return found
