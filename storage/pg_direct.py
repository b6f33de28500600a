"""The survey's single-statement writes on PostgreSQL, run by asyncpg directly.

SQLAlchemy builds each statement from the models (the one description of the schema) and
compiles it ONCE; at run time the statement goes to asyncpg with its values in position, on a
pool of connections kept in autocommit. Through SQLAlchemy the same statement cost more of the
survey server's CPU than the database took to run it: parameter construction, the execution
context, the greenlet bridge and the pool checkout were ~10 % of the server's CPU under load
(issue 13, py-spy). Only the hot statements of the survey take this path; everything else
stays on SQLAlchemy sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import URL
from sqlalchemy.sql import Executable

_DIALECT = asyncpg_dialect.dialect()


class PgStatement:
    """A statement compiled once for asyncpg. ``names`` are the values given at each run; every
    other parameter of the compiled statement (SQLAlchemy's literals) is fixed here."""

    def __init__(self, statement: Executable, names: Sequence[str]) -> None:
        compiled = statement.compile(dialect=_DIALECT, column_keys=list(names))
        self.sql = compiled.string
        given = set(names)
        fixed = compiled.construct_params(dict.fromkeys(given))
        order = compiled.positiontup or []
        unknown = given - set(order)
        if unknown:
            raise ValueError(f"not parameters of the statement: {sorted(unknown)}")
        #: per position: (True, name) for a value given at run time, (False, value) for a fixed one
        self._slots = [(name in given, name if name in given else fixed[name]) for name in order]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[ref] if given else ref for given, ref in self._slots]


async def _keep(_conn: asyncpg.Connection) -> None:
    """Nothing to reset on release: these connections only run single autocommit statements.
    asyncpg's default reset is a statement of its own, one more round trip per write."""


class DirectPool:
    """asyncpg connections for :class:`PgStatement`, opened on first use and kept (up to
    ``size``). A connection the server dropped fails its statement and is discarded by asyncpg;
    the caller's retry gets a new one."""

    def __init__(self, url: URL, size: int, connect_timeout: float) -> None:
        _, kwargs = _DIALECT.create_connect_args(url)
        self._connect = {**kwargs, "timeout": connect_timeout}
        self.size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    min_size=0, max_size=self.size, reset=_keep, **self._connect
                )
        return self._pool

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        pool = self._pool or await self._open()
        return await pool.fetch(sql, *arguments)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
