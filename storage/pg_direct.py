"""The survey's single-statement writes on PostgreSQL, run by asyncpg directly.

Each is one statement over arrays (a column of values per array: the call rows of
storage/calls.py, the first votes of ivr/survey_store.py), so it is prepared once and serves one
row or a batch of a thousand (storage/write_batch.py), on a pool of connections kept in
autocommit. Through SQLAlchemy the same statement cost more of the survey server's CPU than the
database took to run it: parameter construction, the execution context, the greenlet bridge and
the pool checkout were ~10 % of the server's CPU under load (issue 13, py-spy). Only the hot
statements of the survey take this path; everything else stays on SQLAlchemy sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import URL

_DIALECT = asyncpg_dialect.dialect()


async def _keep(_conn: asyncpg.Connection) -> None:
    """Nothing to reset on release: these connections only run single autocommit statements.
    asyncpg's default reset is a statement of its own, one more round trip per write."""


class DirectPool:
    """asyncpg connections for the direct statements, opened on first use and kept (up to
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
