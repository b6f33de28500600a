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
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Dialect

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


_TIMES: dict[str, Callable[[dt.datetime], Any]] = {}


def time_binder(dialect: Dialect) -> Callable[[dt.datetime], Any]:
    """How an aware UTC time is bound for ``dialect``: exactly as the ORM stores it
    (storage.models.UtcDateTime), or comparisons with stored times would go wrong."""
    found = _TIMES.get(dialect.name)
    if found is None:
        process = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
        found = _TIMES[dialect.name] = process if process is not None else (lambda v: v)
    return found
