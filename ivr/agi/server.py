"""The asyncio FastAGI server: one task per connection, routed by the ``agi://host:port/<route>``
path, bounded concurrency and a graceful stop.

Before a connection is a call it must pass two gates, and holds no call slot meanwhile:

* its peer address is on the allow-list (``allowed_peers``; issue 8 defect 8: anyone who can
  speak AGI to us could otherwise store ratings): others are refused at connect, one log line;
* it sends its whole AGI environment within ``environment_timeout`` seconds. A connection that
  stays silent, half-closes or sends garbage (a line over the 64 KiB stream limit included) is
  dropped without a traceback; such drops are summed up in one warning per
  ``DROP_SUMMARY_SECONDS`` (2,000 idle connections make one line, not 2,000 tracebacks).

Only then is a call slot taken (``max_calls``), so idle sockets can never make a real call
look busy.

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
import ipaddress
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from hotline import channel_vars as cv
from ivr.agi.channel import AgiChannel, AgiProtocolBroken, AgiTimeout, CallLog, ChannelGone

log = logging.getLogger("hotline.ivr.fastagi")

#: a route: (the context the server was given, the channel). The library does not know what
#: the context is (the service passes its AppContext), so it depends on nothing above it.
Handler = Callable[[Any, AgiChannel], Awaitable[object]]
VAR_ERROR = cv.HOTLINE_AGI_ERROR
#: how long a call turned away at capacity may take to hear "busy" and be recorded
REJECT_TIMEOUT = 5.0
#: connections dropped before their environment are summed up in one warning per this period
DROP_SUMMARY_SECONDS = 10.0

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def load_handler(target: str | Handler) -> Handler:
    """Routes are given as "module:function" so that a flow's module is imported only when the
    server starts (and the route table stays a plain list of names)."""
    if not isinstance(target, str):
        return target
    module, func = target.split(":")
    handler: Handler = getattr(importlib.import_module(module), func)
    return handler


class PeerFilter:
    """The FastAGI allow-list: addresses or networks (``127.0.0.1``, ``10.0.0.0/24``, ``::1``).
    An IPv4 peer seen through an IPv6 socket (``::ffff:10.0.0.5``) is matched as IPv4."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.networks: list[IpNetwork] = [
            ipaddress.ip_network(item, strict=False) for item in allowed
        ]

    def allows(self, peer: object) -> bool:
        host = peer[0] if isinstance(peer, tuple) and peer else peer
        if not isinstance(host, str):
            return False  # no address at all (a UNIX socket?) is nobody we know
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


class DropSummary:
    """Counts connections dropped before they became calls (by reason) and logs them in one
    warning per period, so a flood of idle or hostile connections costs one line."""

    def __init__(self, period: float = DROP_SUMMARY_SECONDS) -> None:
        self.period = period
        self.counts: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self._flush: asyncio.TimerHandle | None = None

    def add(self, reason: str) -> None:
        self.counts[reason] += 1
        self.total[reason] += 1
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.period, self.flush)

    def flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self.counts:
            log.warning("FastAGI dropped connections that never became calls",
                        extra={"dropped": dict(self.counts), "period_seconds": self.period})
            self.counts.clear()


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
        allowed_peers: Iterable[str] = ("127.0.0.1", "::1"),
        environment_timeout: float = 5.0,
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
        self.peers = PeerFilter(allowed_peers)
        self.environment_timeout = environment_timeout
        self.drops = DropSummary()
        self.refused_peers = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._waiting: set[asyncio.Task[None]] = set()  # connected, environment not complete
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
        for task in set(self._waiting):  # not calls yet: nothing to finish
            task.cancel()
        await asyncio.gather(*self._waiting, return_exceptions=True)
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
        self.drops.flush()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1)
        log.info("FastAGI stopped")

    async def _on_connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        if not self.peers.allows(peer):
            self.refused_peers += 1
            log.warning("FastAGI connection refused: peer not in fastagi_allowed_peers",
                        extra={"peer": peer[0] if isinstance(peer, tuple) else str(peer)})
            await _abort(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        channel = AgiChannel(reader, writer, read_timeout=self.read_timeout)
        self._waiting.add(task)
        try:
            await channel.read_environment(within=self.environment_timeout)
        except asyncio.CancelledError:
            await channel.close()
            raise
        except AgiTimeout:
            self.drops.add("no environment in time")
            await channel.close()
            return
        except AgiProtocolBroken:
            self.drops.add("malformed environment")
            await channel.close()
            return
        except ChannelGone:
            self.drops.add("closed before its environment")
            await channel.close()
            return
        except Exception:  # never a traceback per hostile connection
            self.drops.add("unreadable environment")
            await channel.close()
            return
        finally:
            self._waiting.discard(task)
        if self._stopping or len(self._sessions) >= self.max_calls:
            self._rejects.add(task)
            try:
                await self._reject(channel)
            finally:
                self._rejects.discard(task)
            return
        self._sessions.add(task)
        try:
            await self._session(channel)
        finally:
            self._sessions.discard(task)

    async def _reject(self, channel: AgiChannel) -> None:
        """Over capacity: no survey, but the dialplan learns why (HOTLINE_AGI_ERROR=busy)."""
        channel.read_timeout = REJECT_TIMEOUT
        try:
            async with asyncio.timeout(REJECT_TIMEOUT):
                log.warning("FastAGI at capacity; call rejected",
                            extra={"uniqueid": channel.env.uniqueid, "max_calls": self.max_calls})
                await channel.set_variable(VAR_ERROR, cv.AGI_ERROR_BUSY)
                if self.on_reject is not None:
                    await self.on_reject(self.ctx, channel)
        except Exception:  # a reject must never raise (ChannelGone included)
            log.warning("rejected call could not be recorded", exc_info=True)
        finally:
            await channel.close()

    async def _session(self, channel: AgiChannel) -> None:
        env = channel.env
        session_log = CallLog(log, {"route": env.route, "uniqueid": env.uniqueid})
        channel.log = session_log
        try:
            handler = self.routes.get(env.route)
            if handler is None:
                session_log.warning("unknown FastAGI route")
                await channel.set_variable(VAR_ERROR, cv.AGI_ERROR_UNKNOWN_ROUTE)
                return
            await handler(self.ctx, channel)
        except AgiProtocolBroken as exc:
            session_log.warning("AGI session dropped: protocol error", extra={"error": str(exc)})
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


async def _abort(writer: asyncio.StreamWriter) -> None:
    """Close a refused connection at once, without reading anything from it."""
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), timeout=1)
