"""A small asyncio AMI client: actions with ActionIDs and timeouts, list actions, event streams,
and reconnection that never re-sends an action.

Why never re-send: an ``Originate`` whose response was lost in a disconnect may already be
ringing a citizen; sending it again could dial them twice (DOMAIN.md rule 8). Such an action
fails with :class:`AmiDisconnected` ("outcome unknown"), and the caller reconciles, e.g. by
looking for its channel or waiting for an ``OriginateResponse`` carrying its ActionID. Only
actions that were never written fail with :class:`AmiNotConnected` and are safe to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from ami.protocol import ActionValue, Event, Message, Parser, Response, encode

log = logging.getLogger("hotline.ami")

#: synthetic events put into every event stream (whatever its name filter) when the connection
#: drops and when it is back: events in between were missed, so consumers should reconcile.
CLIENT_DISCONNECTED = "AmiClientDisconnected"
CLIENT_CONNECTED = "AmiClientConnected"
_SYNTHETIC = {CLIENT_DISCONNECTED.lower(), CLIENT_CONNECTED.lower()}


class AmiError(Exception):
    """Base of every AMI client error."""


class AmiConnectionError(AmiError):
    """Could not connect or log in."""


class AmiAuthError(AmiConnectionError):
    """The server refused the username/secret."""


class AmiNotConnected(AmiError):
    """The action was NOT sent (no connection within the timeout); it is safe to retry."""


class AmiDisconnected(AmiError):
    """The connection was lost after the action was sent and before its response arrived.

    Asterisk may or may not have executed it; the client does not re-send it."""


class AmiTimeout(AmiError, TimeoutError):
    """No response within the timeout; the action may still be executed."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"{response.get('Message') or 'error'} (ActionID {response.action_id})")
        self.response = response


@dataclass
class _Pending:
    action: str
    future: asyncio.Future[object]
    is_list: bool = False
    items: list[Event] = field(default_factory=list)


class EventStream:
    """Events matching a name filter, as an async iterator. Bounded: when the consumer falls
    behind, the oldest events are dropped (and logged) rather than memory grow."""

    def __init__(self, client: AmiClient, names: frozenset[str], maxsize: int) -> None:
        self._client = client
        self._names = names
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self._closed = False

    def _offer(self, event: Event | None) -> None:
        if event is not None and self._names:
            name = event.name.lower()
            if name not in self._names and name not in _SYNTHETIC:
                return
        while self._queue.full():
            lost = self._queue.get_nowait()
            # a consumer this far behind may miss an outcome (the dialer then reconciles)
            log.warning("AMI event dropped: consumer too slow",
                        extra={"event": lost.name if lost else None})
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        """The next event (wrap in asyncio.timeout to bound the wait); StopAsyncIteration once
        the stream is closed."""
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._closed = True
            raise StopAsyncIteration
        return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        if not self._closed:
            self._client._streams.discard(self)
            self._offer(None)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AmiClient:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        timeout: float = 10.0,
        reconnect: bool = True,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 10.0,
        keepalive: float | None = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self._username, self._secret = username, secret
        self.timeout = timeout
        self.reconnect = reconnect
        self.reconnect_delay, self.reconnect_max_delay = reconnect_delay, reconnect_max_delay
        self.keepalive = keepalive
        self.banner: str | None = None
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)  # ActionIDs unique across client instances
        self._pending: dict[str, _Pending] = {}
        self._streams: set[EventStream] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()  # logged in and usable
        self._generation = 0
        self._closing = False

    # ------------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_connected(self) -> None:
        """Wait until (re)connected and logged in (wrap in asyncio.timeout to bound it)."""
        await self._ready.wait()

    async def connect(self) -> None:
        """Connect and log in (one attempt; raises AmiConnectionError/AmiAuthError)."""
        self._closing = False
        await self._open()
        if self.keepalive and self._keepalive_task is None:
            self._keepalive_task = asyncio.create_task(self._keepalive_loop())

    async def _open(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise AmiConnectionError(f"cannot connect to AMI at {self.host}:{self.port}: {exc}")\
                from exc
        self._generation += 1
        generation = self._generation
        self._writer = writer
        parser = Parser()
        self._reader_task = asyncio.create_task(self._read_loop(reader, parser, generation))
        try:
            response = await self._request(
                {"Action": "Login", "Username": self._username, "Secret": self._secret,
                 "Events": "on"},
                limit=self.timeout, check=False,
            )
        except BaseException as exc:  # also a cancelled connect: leave no half-open session
            self._drop(generation, exc)
            if isinstance(exc, AmiError | TimeoutError):
                raise AmiConnectionError(f"AMI login failed: {exc!r}") from exc
            raise
        if not response.ok:
            self._drop(generation, AmiAuthError(response.message))
            raise AmiAuthError(f"AMI login as {self._username!r} refused: {response.message}")
        self.banner = parser.banner
        self._ready.set()
        self._broadcast(Event((("Event", CLIENT_CONNECTED),)))
        log.info("AMI connected", extra={"ami": f"{self.host}:{self.port}", "banner": self.banner})

    async def _read_loop(self, reader: asyncio.StreamReader, parser: Parser, gen: int) -> None:
        error: BaseException = ConnectionError("AMI connection closed by the server")
        try:
            while data := await reader.read(65536):
                for message in parser.feed(data):
                    self._dispatch(message)
        except asyncio.CancelledError:
            error = ConnectionError("AMI client closed")
            raise
        except (OSError, asyncio.IncompleteReadError) as exc:
            error = exc
        finally:
            self._drop(gen, error)

    def _drop(self, generation: int, error: BaseException) -> None:
        """The connection of ``generation`` is gone: fail what waits on it, maybe reconnect."""
        if generation != self._generation or self._writer is None:
            return
        was_ready = self._ready.is_set()
        self._ready.clear()
        writer, self._writer = self._writer, None
        writer.close()
        pending, self._pending = self._pending, {}
        for action_id, item in pending.items():
            if not item.future.done():
                item.future.set_exception(AmiDisconnected(
                    f"AMI connection lost before the response to {item.action} "
                    f"(ActionID {action_id}); it may have been executed and is not re-sent"
                ))
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        if was_ready:
            log.warning("AMI connection lost", extra={"error": str(error)})
            self._broadcast(Event((("Event", CLIENT_DISCONNECTED), ("Reason", str(error)))))
        if was_ready and self.reconnect and not self._closing and self._reconnect_task is None:
            self._reconnect_task = asyncio.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay = self.reconnect_delay
        try:
            while not self._closing:
                await asyncio.sleep(delay)
                try:
                    await self._open()
                    return
                except AmiError as exc:
                    log.warning("AMI reconnect failed", extra={"error": str(exc)})
                delay = min(delay * 2, self.reconnect_max_delay)
        finally:
            self._reconnect_task = None

    async def _keepalive_loop(self) -> None:
        # A half-open TCP connection (host gone, no FIN) would otherwise hang every action.
        assert self.keepalive
        while not self._closing:
            await asyncio.sleep(self.keepalive)
            if not self.connected:
                continue
            generation = self._generation
            try:
                await self.send({"Action": "Ping"}, timeout=self.timeout)
            except AmiTimeout:
                self._drop(generation, TimeoutError("AMI Ping unanswered"))
            except AmiError:
                pass

    async def close(self) -> None:
        """Log off and disconnect; waiting actions fail with AmiDisconnected."""
        self._closing = True
        for task in (self._keepalive_task, self._reconnect_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._keepalive_task = self._reconnect_task = None
        if self.connected:
            with contextlib.suppress(AmiError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._submit({"Action": "Logoff"}, is_list=False)
        self._drop(self._generation, ConnectionError("AMI client closed"))
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None
        for stream in list(self._streams):
            stream.close()

    async def __aenter__(self) -> AmiClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ actions
    # The timeout parameters below are part of the contract (ASYNC109 would have callers wrap
    # them in asyncio.timeout): expiring before the action is written (AmiNotConnected, safe
    # to retry) and after (AmiTimeout, outcome unknown) must be told apart.
    async def send(
        self, action: Mapping[str, ActionValue], *, timeout: float | None = None,  # noqa: ASYNC109
        check: bool = True,
    ) -> Response:
        """Send one action and return its response (AmiActionError on ``Error`` if check).

        A missing ``ActionID`` is generated; give your own to match later events (such as the
        ``OriginateResponse`` of an ``Async`` Originate) even across a reconnect. While the
        client is reconnecting, the action waits (within ``timeout``) to be sent."""
        response = await self._call(action, timeout, is_list=False)
        assert isinstance(response, Response)
        if check and not response.ok:
            raise AmiActionError(response)
        return response

    async def send_list(
        self, action: Mapping[str, ActionValue], *, timeout: float | None = None  # noqa: ASYNC109
    ) -> list[Event]:
        """Send a list action (CoreShowChannels, QueueStatus...) and return its item events,
        without the closing ``...Complete`` event."""
        items = await self._call(action, timeout, is_list=True)
        assert isinstance(items, list)
        return items

    async def _call(
        self, action: Mapping[str, ActionValue], limit: float | None, *, is_list: bool
    ) -> object:
        timeout = self.timeout if limit is None else limit
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._closing:
            raise AmiNotConnected(f"AMI client is closed; {action.get('Action')} not sent")
        try:
            async with asyncio.timeout_at(deadline):
                await self._ready.wait()
        except TimeoutError:
            raise AmiNotConnected(
                f"AMI not connected within {timeout} s; {action.get('Action')} not sent"
            ) from None
        try:
            async with asyncio.timeout_at(deadline):
                return await self._submit(action, is_list=is_list)
        except TimeoutError:
            raise AmiTimeout(
                f"no AMI response to {action.get('Action')} within {timeout} s"
            ) from None

    async def _request(
        self, action: Mapping[str, ActionValue], *, limit: float | None, check: bool
    ) -> Response:
        async with asyncio.timeout(limit):
            response = await self._submit(action, is_list=False)
        assert isinstance(response, Response)
        if check and not response.ok:
            raise AmiActionError(response)
        return response

    async def _submit(self, action: Mapping[str, ActionValue], *, is_list: bool) -> object:
        fields = dict(action)
        action_id = str(fields.get("ActionID") or f"{self._id_prefix}.{next(self._ids)}")
        fields["ActionID"] = action_id
        data = encode(fields)  # may raise ProtocolError: nothing was sent
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AmiNotConnected(f"AMI not connected; {fields.get('Action')} not sent")
        if action_id in self._pending:
            raise AmiError(f"ActionID {action_id} is already waiting for a response")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = _Pending(str(fields.get("Action")), future, is_list)
        writer.write(data)
        try:
            return await future
        finally:
            self._pending.pop(action_id, None)

    # ------------------------------------------------------------------ incoming
    def _dispatch(self, message: Message) -> None:
        pending = self._pending.get(message.action_id or "")
        if isinstance(message, Response):
            if pending is None:
                log.debug("AMI response to no waiting action", extra={"id": message.action_id})
            elif not pending.is_list or not message.ok:
                if pending.is_list:
                    pending.future.set_exception(AmiActionError(message))
                else:
                    pending.future.set_result(message)
            elif message.event_list != "start":  # a list action that had nothing to list
                pending.future.set_result([])
            return
        if isinstance(message, Event):
            if pending is not None and pending.is_list:
                if message.event_list == "complete":
                    pending.future.set_result(pending.items)
                else:
                    pending.items.append(message)
                return
            self._broadcast(message)

    def _broadcast(self, event: Event) -> None:
        for stream in list(self._streams):
            stream._offer(event)

    def events(self, *names: str, maxsize: int = 10000) -> EventStream:
        """A stream of the named events (all events if none are named); close it when done,
        or use it as a context manager: ``with client.events("Hangup") as stream: ...``."""
        stream = EventStream(self, frozenset(n.lower() for n in names), maxsize)
        self._streams.add(stream)
        return stream
