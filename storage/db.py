"""Engine and sessions for SQLite (aiosqlite, the embedded default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:  # imported when used: a run on SQLite never loads asyncpg
    from storage.pg_direct import DirectPool
    from storage.write_batch import WriteBatcher


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the FastAGI server read while the forwarder writes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    # A database that is away must fail a caller's step quickly (the survey then journals it)
    # rather than after asyncpg's 60 s connect or the pool's 30 s checkout wait.
    kwargs.setdefault("pool_timeout", 10)
    kwargs.setdefault("connect_args", {"timeout": 5})
    return create_async_engine(url, **kwargs)


#: PostgreSQL connections kept for the survey's single-statement writes
#: (:meth:`Database.fetch_direct`)
AUTOCOMMIT_POOL_SIZE = 10
#: seconds to open one of them: a database that is away fails a caller's step quickly (the
#: survey then journals it)
DIRECT_CONNECT_TIMEOUT = 5


class Database:
    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._direct: DirectPool | None = None
        self._batchers: dict[str, WriteBatcher[Any, Any]] = {}
        #: copied into every session's ``info``: the composition root puts write-path hooks
        #: here (storage.ratings.AFTER_SAVE) so storage need not import the rooms above it
        self.info: dict[str, Any] = {}
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, info=self.info)
        self._slots: asyncio.Semaphore | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        """Places for the survey's writes: on PostgreSQL as many as :meth:`autocommit` keeps
        connections (more would open and close overflow connections, in either pool), on SQLite
        as many as its pool has. A burst's writers (2,000 surveys saving at once) wait here,
        as plain asyncio waiters, rather than inside SQLAlchemy's pool checkout, where each
        waiter holds a greenlet with its own copy of the stack: that cost CPU and most of the
        server's memory under a burst (issue 13). Only for callers that hold one session at a
        time (a caller nesting two would wait for itself)."""
        if self._slots is None:
            if self.is_sqlite:
                pool = self.engine.pool
                size = getattr(pool, "size", lambda: 1)() + max(
                    0, getattr(pool, "_max_overflow", 0)
                )
            else:  # the kept connections of fetch_direct(): never one opened per write
                size = AUTOCOMMIT_POOL_SIZE
            self._slots = asyncio.Semaphore(max(1, size))
        return self._slots

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """SQLite: a connection whose every statement commits by itself (a file: no round trips
        to save). On PostgreSQL the survey's single-statement writes take
        :meth:`fetch_direct` instead."""
        if not self.is_sqlite:
            raise RuntimeError("autocommit() is SQLite's; PostgreSQL uses fetch_direct()")
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def fetch_direct(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        """PostgreSQL: run ONE statement in autocommit, by asyncpg directly, and return its rows:
        a survey write costs one round trip and little CPU under a burst (issue 13;
        :mod:`storage.pg_direct`).

        The connections come from a pool of their own, as many as :data:`AUTOCOMMIT_POOL_SIZE`,
        kept (opening one is connect, TLS negotiation and authentication), and not pinged before
        use (a ping is a round trip): a statement on a connection the server dropped fails, the
        connection is discarded, and the survey's retry (ivr.survey_store) runs on a new one."""
        if self._direct is None:
            from storage.pg_direct import DirectPool

            self._direct = DirectPool(self.engine.url, AUTOCOMMIT_POOL_SIZE,
                                      DIRECT_CONNECT_TIMEOUT)
        return await self._direct.fetch(sql, arguments)

    def batcher(self, name: str, make: Callable[[], WriteBatcher[Any, Any]]
                ) -> WriteBatcher[Any, Any]:
        """The one :class:`~storage.write_batch.WriteBatcher` of this database for ``name``."""
        found = self._batchers.get(name)
        if found is None:
            found = self._batchers[name] = make()
        return found

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self.engine.dispose()
        if self._direct is not None:
            await self._direct.close()
