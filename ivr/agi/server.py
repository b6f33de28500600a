"""The asyncio FastAGI server: one task per connection, routed by the ``agi://host:port/<route>``
path, bounded concurrency and a graceful stop.

Every way a session can end leaves the dialplan able to decide: a route that does not exist,
a server at capacity and an internal error set ``HOTLINE_AGI_ERROR`` (``unknown-route``,
``busy``, ``internal``) before the socket is closed. (Asterisk's own ``AGISTATUS`` is SUCCESS
whenever the server closes the connection, so it cannot tell these apart; it is FAILURE only
when the server cannot be reached.)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hotline import channel_vars as cv
from ivr.agi.channel import AgiChannel, CallLog, ChannelGone

log = logging.getLogger("hotline.ivr.fastagi")

#: a route: (the context the server was given, the channel). The library does not know what
#: the context is (the service passes its AppContext), so it depends on nothing above it.
Handler = Callable[[Any, AgiChannel], Awaitable[object]]
VAR_ERROR = cv.HOTLINE_AGI_ERROR
#: how long a rejected connection may take to say who it is and hear "busy"
REJECT_TIMEOUT = 5.0


def load_handler(target: str | Handler) -> Handler:
    """Routes are given as "module:function" so that a flow's module is imported only when the
    server starts (and the route table stays a plain list of names)."""
    if not isinstance(target, str):
        return target
    module, func = target.split(":")
    handler: Handler = getattr(importlib.import_module(module), func)
    return handler


class FastAgiServer:
    def __init__(
        self,
        ctx: Any,
        routes: Mapping[str, str | Handler],
        *,
        host: str,
        port: int,
        max_calls: int,
        read_timeout: float,
        shutdown_grace: float,
        on_reject: Handler | None = None,
    ) -> None:
        self.ctx = ctx
        #: called (bounded by REJECT_TIMEOUT) for a call turned away at capacity, so the flow
        #: can still record it (rule 1: a call that got no survey is not rated, never lost)
        self.on_reject = on_reject
        self.routes = {name: load_handler(target) for name, target in routes.items()}
        self.host = host
        self.port = port
        self.max_calls = max_calls
        self.read_timeout = read_timeout
        self.shutdown_grace = shutdown_grace
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._rejects: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def active_calls(self) -> int:
        return len(self._sessions)

    @property
    def bound_port(self) -> int:
        """The listening port (useful with port 0 in tests)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        # a burst of calls connects at once: asyncio's default backlog (100) makes the kernel
        # drop the rest of the SYNs, and each retry costs the caller a second before the menu
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, reuse_address=True,
            backlog=max(100, self.max_calls),
        )
        log.info("FastAGI listening", extra={"host": self.host, "port": self.bound_port,
                                             "routes": sorted(self.routes)})

    async def stop(self) -> None:
        """Stop accepting, let calls in progress finish for up to the grace period, then cut
        the rest (their rating, if any, is already saved step by step)."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        pending = set(self._sessions)
        if pending:
            log.info("FastAGI draining", extra={"calls": len(pending),
                                                "grace_seconds": self.shutdown_grace})
            if self.shutdown_grace > 0:
                _, still = await asyncio.wait(pending, timeout=self.shutdown_grace)
            else:
                still = {t for t in pending if not t.done()}
            for task in still:
                task.cancel()
            if still:
                log.warning("FastAGI cut calls at shutdown", extra={"calls": len(still)})
                await asyncio.gather(*still, return_exceptions=True)
        for task in set(self._rejects):
            task.cancel()
        await asyncio.gather(*self._rejects, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1)
        log.info("FastAGI stopped")

    async def _on_connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._stopping or len(self._sessions) >= self.max_calls:
            self._rejects.add(task)
            try:
                await self._reject(reader, writer)
            finally:
                self._rejects.discard(task)
            return
        self._sessions.add(task)
        try:
            await self._session(reader, writer)
        finally:
            self._sessions.discard(task)

    async def _reject(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Over capacity: no survey, but the dialplan learns why (HOTLINE_AGI_ERROR=busy)."""
        channel = AgiChannel(reader, writer, read_timeout=REJECT_TIMEOUT)
        try:
            async with asyncio.timeout(REJECT_TIMEOUT):
                await channel.read_environment()
                log.warning("FastAGI at capacity; call rejected",
                            extra={"uniqueid": channel.env.uniqueid, "max_calls": self.max_calls})
                await channel.set_variable(VAR_ERROR, cv.AGI_ERROR_BUSY)
                if self.on_reject is not None:
                    await self.on_reject(self.ctx, channel)
        except Exception:  # a reject must never raise (ChannelGone included)
            log.warning("rejected call could not be recorded", exc_info=True)
        finally:
            await channel.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = AgiChannel(reader, writer, read_timeout=self.read_timeout)
        session_log = CallLog(log, {})
        try:
            env = await channel.read_environment()
            session_log = CallLog(log, {"route": env.route, "uniqueid": env.uniqueid})
            channel.log = session_log
            handler = self.routes.get(env.route)
            if handler is None:
                session_log.warning("unknown FastAGI route")
                await channel.set_variable(VAR_ERROR, cv.AGI_ERROR_UNKNOWN_ROUTE)
                return
            await handler(self.ctx, channel)
        except ChannelGone as exc:
            session_log.info("AGI session ended: %s", exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            session_log.exception("AGI session failed")
            with contextlib.suppress(Exception):
                await channel.set_variable(VAR_ERROR, cv.AGI_ERROR_INTERNAL)
        finally:
            await channel.close()
