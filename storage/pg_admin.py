"""PostgreSQL databases made and dropped whole, through an administrator's connection: the
fresh databases of the test suite and of the benchmarks (both use this one module; the
benchmarks import nothing from tests/). The service itself never creates a database."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class PgAdmin:
    """A server reached through ``dsn`` (asyncpg's ``postgresql://`` form), on whose
    connection databases are created and dropped."""

    dsn: str

    @classmethod
    def from_env(cls, variable: str) -> PgAdmin:
        """The DSN in the environment ``variable``, else the loopback default."""
        return cls(os.environ.get(variable, DEFAULT_ADMIN_DSN))

    def url(self, name: str) -> str:
        """The service's database URL (``postgresql+asyncpg://``) of database ``name``."""
        base = self.dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{name}"

    async def execute(self, sql: str) -> None:
        # imported when used: a run on SQLite never loads asyncpg
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def reachable(self) -> bool:
        try:
            await self.execute("SELECT 1")
        except Exception:
            return False
        return True

    async def create(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template`` if given); returns its URL."""
        copy = f' TEMPLATE "{template}"' if template else ""
        await self.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    async def drop(self, name: str) -> None:
        """Drop database ``name`` if it is there, ending the sessions still connected to it."""
        await self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
