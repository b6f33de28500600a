"""A FastAGI server on loopback with the service's routes (or given ones), for a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ivr.agi.server import FastAgiServer, Handler
from service import agi as server
from service.context import AppContext

HOST = "127.0.0.1"


@contextlib.asynccontextmanager
async def running(
    ctx: AppContext, routes: Mapping[str, str | Handler] | None = None, **kw: Any
) -> AsyncIterator[FastAgiServer]:
    options: dict[str, Any] = {"host": HOST, "port": 0, "max_calls": 10, "read_timeout": 5.0,
                               "shutdown_grace": 2.0}
    options.update(kw)
    srv = FastAgiServer(ctx, routes if routes is not None else server.ROUTES, **options)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
