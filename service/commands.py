"""Plumbing shared by every CLI command handler: the user-facing error and running async work
against the database with a clear message instead of a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from hotline.settings import Settings
from service.context import AppContext

T = TypeVar("T")

_NOT_MIGRATED = ("no such table", "does not exist")


class CommandError(RuntimeError):
    """A command failed in a way the user can act on; printed without a traceback."""


def with_context(settings: Settings, work: Callable[[AppContext], Awaitable[T]]) -> T:
    """Run ``work`` with a fresh :class:`AppContext`, closed afterwards."""

    async def _main() -> T:
        ctx = AppContext.create(settings)
        try:
            return await work(ctx)
        except (SQLAlchemyError, OSError) as exc:
            if any(marker in str(exc) for marker in _NOT_MIGRATED):
                raise CommandError(
                    "the database has no schema yet; run `hotline db upgrade` first"
                ) from exc
            raise CommandError(f"database error: {exc}") from exc
        finally:
            await ctx.close()

    return asyncio.run(_main())
