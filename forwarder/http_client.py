"""The forwarder's HTTP/1.1 client: ``POST`` over a pool of kept-alive connections per
endpoint, and nothing else (issue 13: aiohttp's client cost about as much CPU per request as
the rest of a record's delivery together).

The answer is parsed by :class:`ResponseParser`, a state machine fed bytes (no sockets): the
status line, the headers, and a body by ``Content-Length``, chunked transfer encoding, or up to
the end of the connection. What the forwarder relies on:

* redirects are never followed: a 3xx is returned like any answer (forwarder.outcome);
* one total timeout per request, connecting included; a request that timed out, failed or got
  a malformed answer closes its connection (a late answer must never be read as the next
  request's);
* a request on a kept-alive connection that the server had closed meanwhile is sent again once,
  on a fresh connection, only when not one byte of an answer came back; any other failure is
  the caller's to retry (the receiver drops repeats by idempotency key, but a silent repeat is
  avoided all the same);
* ``Connection: close`` (and HTTP/1.0 without keep-alive) is honoured: that connection is not
  used again.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import ssl
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

#: the status line and headers together; a longer head is not a receiver's answer
MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
#: body bytes kept; the rest of a huge error page is read and dropped (only a few hundred
#: characters of it are ever stored as the reason)
MAX_BODY = 1024 * 1024
#: a kept-alive connection unused this long is closed rather than reused (servers close
#: theirs after 5–75 s; sending on one they just closed costs a retry)
IDLE_SECONDS = 15.0


class HttpError(Exception):
    """The exchange failed: no usable answer (the message says why)."""


class ProtocolError(HttpError):
    """The bytes received are not an HTTP/1.x answer."""


class ConnectionClosed(HttpError):
    """The server closed (or reset) the connection before the answer was complete."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        #: whether any byte of the answer had arrived (then the request is never resent here)
        self.answered = answered


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively; a repeated header's values are joined
    with ", " (RFC 9110 5.3)."""

    __slots__ = ("_items",)

    def __init__(self, pairs: list[tuple[str, str]] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in pairs or ():
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        found = self._items.get(key)
        self._items[key] = (name, value if found is None else f"{found[1]}, {value}")

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        # Mapping.get goes through __getitem__ and a KeyError for every missing header
        found = self._items.get(name.lower())
        return default if found is None else found[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Response(NamedTuple):
    status: int
    reason: str
    headers: Headers
    body: bytes

    def text(self) -> str:
        """The body as text: the charset the answer names, else UTF-8; bad bytes replaced."""
        charset = "utf-8"
        for part in (self.headers.get("Content-Type") or "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = "utf-8"
        return self.body.decode(charset, errors="replace")


# ---------------------------------------------------------------------------- the parser
_STATUS, _HEADERS, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, \
    _DONE = range(9)


class ResponseParser:
    """One answer, from the bytes of a connection. :meth:`feed` what arrives, :meth:`feed_eof`
    when the connection ends; :attr:`done` then says the answer is complete, and
    :attr:`leftover` holds bytes received after it (a server must not send any unasked)."""

    def __init__(self, *, head_only: bool = False) -> None:
        self.head_only = head_only  # the answer to a HEAD request has no body
        self.state = _STATUS
        self.received = False  # any byte at all (then the request is never resent)
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = Headers()
        self.keep_alive = False
        self.leftover = b""
        self._buf = bytearray()
        self._body: list[bytes] = []
        self._kept = 0  # body bytes kept so far
        self._remaining = 0  # of the Content-Length body or of the current chunk
        self._head_size = 0
        self._header_count = 0

    @property
    def done(self) -> bool:
        return self.state == _DONE

    def response(self) -> Response:
        assert self.done, "the answer is not complete"
        body = b"".join(self._body)
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate") and body:
            body = _decompress(body, encoding)
        return Response(self.status, self.reason, self.headers, body)

    # ------------------------------------------------------------------ feeding
    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.received = True
        if self.state == _DONE:
            self.leftover += data
            return
        self._buf += data
        while True:
            if self.state == _STATUS and self._buf[:1] not in (b"\r", b"\n"):
                end = self._buf.find(b"\r\n\r\n")
                if end >= 0 and self._head_size + end + 4 <= MAX_HEAD and self._whole_head(end):
                    continue
            if not self._step():
                return

    def _whole_head(self, end: int) -> bool:
        """The usual case, the head arrived whole: parsed in one go, not line by line."""
        head = bytes(self._buf[:end])
        if head.count(b"\n") != head.count(b"\r\n"):
            return False  # a bare LF somewhere: line by line, which takes either
        lines = head.split(b"\r\n")
        del self._buf[: end + 4]
        self._head_size += end + 4
        self._status_line(lines[0])
        for line in lines[1:]:
            self._header_line(line)
        self._end_of_head()
        return True

    def feed_eof(self) -> None:
        """The connection ended: completes an answer delimited by the close; otherwise the
        answer is cut short (:class:`ConnectionClosed`)."""
        if self.state == _UNTIL_CLOSE:
            self.keep_alive = False
            self.state = _DONE
            return
        if self.state != _DONE:
            raise ConnectionClosed(
                "the server closed the connection before the answer was complete"
                if self.received else "the server closed the connection without an answer",
                answered=self.received,
            )

    def _line(self) -> bytes | None:
        """The next CRLF- (or LF-) terminated line of the head, without its end."""
        end = self._buf.find(b"\n")
        if end < 0:
            if self._head_size + len(self._buf) > MAX_HEAD:
                raise ProtocolError("the answer's head is too long")
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        self._head_size += end + 1
        if self._head_size > MAX_HEAD:
            raise ProtocolError("the answer's head is too long")
        return line[:-1] if line.endswith(b"\r") else line

    def _step(self) -> bool:
        """Advance by one line or one piece of body; False when more bytes are needed."""
        state = self.state
        if state == _STATUS:
            line = self._line()
            if line is None:
                return False
            if not line and not self.status:
                return True  # tolerated: blank lines before the status line
            self._status_line(line)
            self.state = _HEADERS
            return True
        if state == _HEADERS:
            line = self._line()
            if line is None:
                return False
            if line:
                self._header_line(line)
                return True
            self._end_of_head()
            return True
        if state in (_LENGTH, _CHUNK_DATA):
            if not self._buf:
                return False
            piece = self._take(self._remaining)
            self._remaining -= len(piece)
            self._keep(piece)
            if self._remaining == 0:
                if state == _LENGTH:
                    self._finish()
                else:
                    self.state = _CHUNK_END
            return True
        if state == _CHUNK_SIZE:
            line = self._chunk_line()
            if line is None:
                return False
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            if size < 0 or len(size_text) > 16:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
            if size == 0:
                self.state = _TRAILERS
            else:
                self._remaining = size
                self.state = _CHUNK_DATA
            return True
        if state == _CHUNK_END:
            line = self._chunk_line()
            if line is None:
                return False
            if line:
                raise ProtocolError("chunk data longer than its size")
            self.state = _CHUNK_SIZE
            return True
        if state == _TRAILERS:
            line = self._chunk_line()
            if line is None:
                return False
            if not line:
                self._finish()
            return True  # trailer fields are read and dropped
        if state == _UNTIL_CLOSE:
            if self._buf:
                self._keep(bytes(self._buf))
                self._buf.clear()
            return False
        return False  # _DONE

    def _chunk_line(self) -> bytes | None:
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > 4096:
                raise ProtocolError("chunk line too long")
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def _take(self, most: int) -> bytes:
        piece = bytes(self._buf[:most])
        del self._buf[:most]
        return piece

    def _keep(self, piece: bytes) -> None:
        room = MAX_BODY - self._kept
        if room > 0:
            piece = piece[:room]
            self._body.append(piece)
            self._kept += len(piece)

    def _status_line(self, line: bytes) -> None:
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"not an HTTP/1.x status line: {line[:60]!r}")
        if len(parts[1]) != 3 or not parts[1].isdigit():
            raise ProtocolError(f"bad status code {parts[1][:10]!r}")
        self.version = parts[0].decode("ascii", "replace")
        self.status = int(parts[1])
        self.reason = parts[2].decode("latin-1") if len(parts) > 2 else ""

    def _header_line(self, line: bytes) -> None:
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError("folded header lines are not accepted")
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line[:60]!r}")
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            raise ProtocolError("too many headers")
        self.headers.add(name.decode("latin-1"), value.strip().decode("latin-1"))

    def _end_of_head(self) -> None:
        status, headers = self.status, self.headers
        if 100 <= status < 200:
            # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self.status, self.reason, self.headers, self._header_count = 0, "", Headers(), 0
            self.state = _STATUS
            return
        connection = headers.get("Connection")
        tokens = (
            {t.strip().lower() for t in connection.split(",")} if connection else set()
        )
        if self.version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in tokens
        else:
            self.keep_alive = "close" not in tokens
        if self.head_only or status in (204, 304):
            self._finish()
            return
        coding = headers.get("Transfer-Encoding")
        if coding is not None:
            if coding.split(",")[-1].strip().lower() != "chunked":
                # the body runs to the close (RFC 9112 6.3, point 4)
                self.keep_alive = False
                self.state = _UNTIL_CLOSE
                return
            self.state = _CHUNK_SIZE
            return
        length = headers.get("Content-Length")
        if length is not None:
            values = {v.strip() for v in length.split(",")}
            if len(values) != 1 or not (text := values.pop()).isdigit() or len(text) > 15:
                raise ProtocolError(f"bad Content-Length {length[:30]!r}")
            self._remaining = int(text)
            if self._remaining == 0:
                self._finish()
            else:
                self.state = _LENGTH
            return
        self.keep_alive = False
        self.state = _UNTIL_CLOSE

    def _finish(self) -> None:
        self.state = _DONE
        if self._buf:
            self.leftover = bytes(self._buf)
            self._buf.clear()


def _decompress(body: bytes, encoding: str) -> bytes:
    try:
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some send
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    except zlib.error as exc:
        raise ProtocolError(f"cannot decode the {encoding} body: {exc}") from None


# ---------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class Endpoint:
    """Where requests for a URL go: one pool per (scheme, host, port)."""

    scheme: str
    host: str
    port: int
    host_header: str
    authorization: str | None


def endpoint_and_target(url: str) -> tuple[Endpoint, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise HttpError(f"not an http(s) URL: {parts.scheme or '(no scheme)'}")
    if not parts.hostname:
        raise HttpError("the URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    default = port == (443 if parts.scheme == "https" else 80)
    authorization = None
    if parts.username is not None:  # credentials in the URL: Basic, as other clients do
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (
        Endpoint(parts.scheme, host, port, shown if default else f"{shown}:{port}",
                 authorization),
        target,
    )


def request_head(endpoint: Endpoint, target: str, headers: Mapping[str, str],
                 length: int) -> bytes:
    """The bytes of a POST's request line and headers."""
    start, after_length = _head_frame(endpoint, target)
    return _head(start, after_length, headers, length)


def _head_frame(endpoint: Endpoint, target: str) -> tuple[str, str]:
    """A request head's text before and after the Content-Length value: the same for every
    request to a URL (issue 13: made once per URL, not per request)."""
    after = "\r\nUser-Agent: hotline-forwarder\r\n"
    if endpoint.authorization:
        after += f"Authorization: {endpoint.authorization}\r\n"
    return f"POST {target} HTTP/1.1\r\nHost: {endpoint.host_header}\r\nContent-Length: ", after


def _head(start: str, after_length: str, headers: Mapping[str, str], length: int) -> bytes:
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    # a CR or LF in a name or a value would start a header (or a request) of its own: the
    # text has exactly one of each per header, or it is refused
    count = len(headers)
    if fields.count("\n") != count or fields.count("\r") != count or not _names_ok(headers):
        bad = next((n for n, v in headers.items()
                    if "\r" in n or "\n" in n or "\r" in v or "\n" in v or ":" in n), "")
        raise HttpError(f"header {bad[:40]!r} has a line break or a colon in its name")
    return f"{start}{length}{after_length}{fields}\r\n".encode("latin-1", errors="strict")


#: header names already found good (a profile sends the same few on every request)
_GOOD_NAMES: set[str] = set()


def _names_ok(headers: Mapping[str, str]) -> bool:
    for name in headers:
        if name not in _GOOD_NAMES:
            if ":" in name or not name:
                return False
            if len(_GOOD_NAMES) < 256:
                _GOOD_NAMES.add(name)
    return True


class _Route:
    """What a request to one URL needs, worked out once: where it goes, its head's fixed
    text, and the idle connections of its endpoint (shared by the endpoint's URLs)."""

    __slots__ = ("after_length", "endpoint", "idle", "start")

    def __init__(self, endpoint: Endpoint, target: str, idle: deque[_Connection]) -> None:
        self.endpoint = endpoint
        self.start, self.after_length = _head_frame(endpoint, target)
        self.idle = idle


class _Connection(asyncio.Protocol):
    """One kept-alive connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: ResponseParser | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._drained: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        parser, waiter = self._parser, self._waiter
        if parser is None or waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        try:
            parser.feed(data)
            if not parser.done:
                return
            response = parser.response()
        except HttpError as exc:
            waiter.set_exception(exc)
            self.close()
            return
        if parser.leftover or not parser.keep_alive:
            self.close(gracefully=not parser.leftover)
        waiter.set_result(response)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        parser, waiter = self._parser, self._waiter
        if parser is None or waiter is None or waiter.done():
            return
        try:
            parser.feed_eof()
            response = parser.response()
        except ConnectionClosed as error:
            if exc is not None:  # a reset rather than a close: say so
                error = ConnectionClosed(f"{type(exc).__name__}: {exc}", answered=error.answered)
            waiter.set_exception(error)
        except HttpError as error:
            waiter.set_exception(error)
        else:
            waiter.set_result(response)

    def pause_writing(self) -> None:
        self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # ------------------------------------------------------------------ use
    def close(self, *, gracefully: bool = False) -> None:
        """Never to be used again. Abortive unless the last answer was complete: an answer
        to a request we gave up on may still be on its way."""
        self.closed = True
        if self.transport is not None:
            if gracefully:
                self.transport.close()
            else:
                self.transport.abort()

    async def exchange(self, data: bytes, deadline: float) -> Response:
        assert self.transport is not None and self._waiter is None
        self._parser = ResponseParser()
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_at(deadline, self._timed_out, waiter)
        try:
            self.transport.write(data)
            if self._drained is not None:
                await self._drained
            return await waiter
        except BaseException:
            self.close()  # cancelled, timed out or failed: never reused
            raise
        finally:
            timer.cancel()
            self._parser = None
            self._waiter = None

    def _timed_out(self, waiter: asyncio.Future[Response]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())
        self.close()


class HttpClient:
    """POSTs with a total timeout over kept-alive connections, at most ``limit`` kept idle per
    endpoint. TLS with ``ssl_context`` (None: the system's default verification)."""

    def __init__(self, *, timeout: float, limit: int = 8,
                 ssl_context: ssl.SSLContext | None = None,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self.timeout = timeout
        self.limit = limit
        self.idle_seconds = idle_seconds
        self._ssl = ssl_context
        self._idle: dict[Endpoint, deque[_Connection]] = {}
        self._routes: dict[str, _Route] = {}
        self._open: set[_Connection] = set()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        for idle in self._idle.values():
            idle.clear()  # the routes hold them too
        self._idle.clear()
        self._routes.clear()

    def _route(self, url: str) -> _Route:
        found = self._routes.get(url)
        if found is None:
            endpoint, target = endpoint_and_target(url)
            found = _Route(endpoint, target, self._idle.setdefault(endpoint, deque()))
            if len(self._routes) < 64:  # a profile has a handful of URLs
                self._routes[url] = found
        return found

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Response:
        """The answer to one POST (any status: redirects are not followed). Raises
        TimeoutError past the timeout, HttpError or OSError (ssl.SSLError included) when
        there is no answer."""
        route = self._routes.get(url) or self._route(url)
        data = _head(route.start, route.after_length, headers, len(body)) + body
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self.timeout
        conn = self._idle_connection(route.idle, now)
        if conn is not None:
            try:
                response = await conn.exchange(data, deadline)
            except ConnectionClosed as exc:
                self._open.discard(conn)  # closed by exchange(): never reused
                if exc.answered:
                    raise
                # closed by the server while idle, before it read this request: once more
                # on a fresh connection (nothing of an answer came, so nothing is lost)
            except BaseException:
                self._open.discard(conn)
                raise
            else:
                self._release(route.idle, conn, loop.time())
                return response
        conn = await self._connect(route.endpoint, deadline)
        try:
            response = await conn.exchange(data, deadline)
        except BaseException:
            self._open.discard(conn)
            raise
        self._release(route.idle, conn, loop.time())
        return response

    def _idle_connection(self, idle: deque[_Connection], now: float) -> _Connection | None:
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be stale
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                self._open.discard(conn)
                continue
            if now - conn.idle_since > self.idle_seconds:
                conn.close()
                self._open.discard(conn)
                continue
            return conn
        return None

    async def _connect(self, endpoint: Endpoint, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if endpoint.scheme == "https":
            tls = self._ssl or _default_tls()
        async with asyncio.timeout_at(deadline):
            _, conn = await loop.create_connection(
                lambda: _Connection(loop), endpoint.host, endpoint.port, ssl=tls,
                server_hostname=endpoint.host if tls else None,
            )
        self._open.add(conn)
        return conn

    def _release(self, idle: deque[_Connection], conn: _Connection, now: float) -> None:
        if conn.closed:
            self._open.discard(conn)
            return
        if len(idle) >= self.limit:
            conn.close()
            self._open.discard(conn)
            return
        conn.idle_since = now
        idle.append(conn)


_DEFAULT_TLS: ssl.SSLContext | None = None


def _default_tls() -> ssl.SSLContext:
    global _DEFAULT_TLS
    if _DEFAULT_TLS is None:
        _DEFAULT_TLS = ssl.create_default_context()
    return _DEFAULT_TLS
