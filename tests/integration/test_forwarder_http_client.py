"""The forwarder's HTTP client against real servers on 127.0.0.1: connections kept alive and
reused, a chunked answer, ``Connection: close``, a server that closes an idle connection or
drops a request unanswered, one that stalls (the timeout), a redirect (returned, never
followed), and TLS with a private CA (the setting ``forwarder_ca_file``, end to end)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from forwarder.http_client import ConnectionClosed, HttpClient
from forwarder.simulated import Receiver, add_call_rating
from hotline.levels import Level
from storage.models import OutboxStatus
from tests.helpers.forwarding import all_in, context, forwarding
from tests.waiting import wait_until

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Server:
    """A raw HTTP/1.1 server: ``handler`` gets each connection and its number (from 1)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []  # each request's body, in arrival order
        self._server: asyncio.Server | None = None

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        self.requests.append(body)
        return body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/push"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def answering(answer: bytes = OK) -> Handler:
    """Answers every request on a connection with ``answer`` until the client closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      nth: int) -> None:
        server: Server = handler.server  # type: ignore[attr-defined]
        while await server.read_request(reader) is not None:
            writer.write(answer)
            await writer.drain()

    return handler


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Server]:
    server = Server(handler)
    handler.server = server  # type: ignore[attr-defined]
    async with server:
        yield server


async def test_connections_are_kept_alive_and_reused() -> None:
    async with serving(answering()) as server, HttpClient(timeout=2, limit=4) as http:
        for n in range(5):
            response = await http.post(server.url, f"r{n}".encode(), {"X-N": str(n)})
            assert (response.status, response.body) == (200, b"ok")
        # four at once: the pool grows to four, and keeps them
        answers = await asyncio.gather(*(http.post(server.url, b"x", {}) for _ in range(4)))
        assert [a.status for a in answers] == [200] * 4
        await http.post(server.url, b"y", {})
    assert server.connections == 4
    assert server.requests[:5] == [b"r0", b"r1", b"r2", b"r3", b"r4"]


async def test_a_chunked_answer() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\n{\"co\r\na\r\nde\":\"0\"}  \r\n0\r\n\r\n")
    async with serving(answering(chunked)) as server, HttpClient(timeout=2) as http:
        first = await http.post(server.url, b"a", {})
        second = await http.post(server.url, b"b", {})
    assert first.body == second.body == b'{"code":"0"}  '
    assert server.connections == 1  # the connection survived the chunked answer


async def test_connection_close_is_honoured() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with serving(answering(closing)) as server, HttpClient(timeout=2) as http:
        for _ in range(3):
            assert (await http.post(server.url, b"a", {})).status == 200
    assert server.connections == 3


async def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   nth: int) -> None:
        await server.read_request(reader)
        writer.write(OK)  # kept alive, says the answer; then closed all the same
        await writer.drain()

    async with serving(once) as server, HttpClient(timeout=2) as http:
        await http.post(server.url, b"first", {})
        await asyncio.sleep(0.1)  # the close has arrived
        assert (await http.post(server.url, b"second", {})).status == 200
    assert server.requests == [b"first", b"second"]  # nothing sent twice
    assert server.connections == 2


async def test_a_request_dropped_unanswered_on_a_reused_connection_is_sent_once_more() -> None:
    """The server closed a kept-alive connection just as the request went out: no byte of an
    answer came, so it goes again, once, on a fresh connection."""

    async def drop_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          nth: int) -> None:
        if nth == 1:
            await server.read_request(reader)
            writer.write(OK)
            await writer.drain()
            await server.read_request(reader)  # and closed without a word
            return
        while await server.read_request(reader) is not None:
            writer.write(OK)
            await writer.drain()

    async with serving(drop_second) as server, HttpClient(timeout=2) as http:
        await http.post(server.url, b"first", {})
        assert (await http.post(server.url, b"second", {})).status == 200
    assert server.requests == [b"first", b"second", b"second"]
    assert server.connections == 2


async def test_a_partial_answer_is_never_resent() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   nth: int) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")  # then closed
        await writer.drain()

    async with serving(half) as server, HttpClient(timeout=2) as http:
        await http.post(server.url, b"first", {})
        with pytest.raises(ConnectionClosed) as cut:
            await http.post(server.url, b"second", {})
    assert cut.value.answered
    assert server.requests == [b"first", b"second"]


async def test_a_fresh_connection_closed_unanswered_is_not_resent() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   nth: int) -> None:
        await server.read_request(reader)

    async with serving(mute) as server, HttpClient(timeout=2) as http:
        with pytest.raises(ConnectionClosed):
            await http.post(server.url, b"only", {})
    assert server.requests == [b"only"]


async def test_a_stalled_server_times_out_and_its_connection_is_dropped() -> None:
    async def stall_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          nth: int) -> None:
        await server.read_request(reader)
        if nth == 1:
            await asyncio.sleep(0.6)  # answers after the client gave up
        writer.write(OK)
        await writer.drain()
        while await server.read_request(reader) is not None:
            writer.write(OK)
            await writer.drain()

    loop = asyncio.get_running_loop()
    async with serving(stall_first) as server, HttpClient(timeout=0.3) as http:
        started = loop.time()
        with pytest.raises(TimeoutError):
            await http.post(server.url, b"slow", {})
        assert 0.25 < loop.time() - started < 0.6
        await asyncio.sleep(0.5)  # the late answer arrives meanwhile: on a closed connection
        assert (await http.post(server.url, b"next", {})).body == b"ok"
    assert server.connections == 2


async def test_a_redirect_is_returned_not_followed() -> None:
    redirect = (b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/elsewhere\r\n"
                b"Content-Length: 0\r\n\r\n")
    async with serving(answering(redirect)) as server, HttpClient(timeout=2) as http:
        response = await http.post(server.url, b"signed", {})
    assert response.status == 307
    assert response.headers["location"] == "http://127.0.0.1:9/elsewhere"
    assert server.requests == [b"signed"]


async def test_refused_connection_is_an_oserror() -> None:
    async with serving(answering()) as server:
        url = server.url
    async with HttpClient(timeout=2) as http:
        with pytest.raises(OSError):
            await http.post(url, b"x", {})


# ---------------------------------------------------------------------------- TLS
def _private_ca(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA of our own and a certificate it signed for 127.0.0.1: the CA's file, and the
    server's TLS context."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hotline test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "province-ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return ca_file, server


async def test_tls_with_a_private_ca_and_without_it(tmp_path: Path) -> None:
    ca_file, server_tls = _private_ca(tmp_path)
    handler = answering()
    server = Server(handler)
    handler.server = server  # type: ignore[attr-defined]
    listening = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=server_tls)
    port = listening.sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{port}/push"
    try:
        trusting = ssl.create_default_context(cafile=str(ca_file))
        async with HttpClient(timeout=2, ssl_context=trusting) as http:
            assert (await http.post(url, b"1", {})).body == b"ok"
            assert (await http.post(url, b"2", {})).body == b"ok"
        assert server.connections == 1
        async with HttpClient(timeout=2) as http:  # the system's CAs do not know ours
            with pytest.raises(ssl.SSLCertVerificationError):
                await http.post(url, b"3", {})
    finally:
        listening.close()
    assert server.requests == [b"1", b"2"]


async def test_the_forwarder_delivers_over_tls_with_forwarder_ca_file(
    tmp_path: Path, database_url: str
) -> None:
    ca_file, server_tls = _private_ca(tmp_path)
    keys: list[str] = []

    async def push(request: web.Request) -> web.Response:
        await request.read()
        keys.append(request.headers["Idempotency-Key"])
        return web.json_response({"code": "0", "msg": "ok"})

    app = web.Application()
    app.router.add_post("/push", push)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        settings = Receiver().settings_for(
            tmp_path, database_url, forwarder_endpoint=f"https://127.0.0.1:{port}/push",
            forwarder_ca_file=ca_file,
        )
        async with context(settings) as ctx:
            key = await add_call_rating(ctx, "13.1", Level.SATISFIED)
            async with forwarding(ctx):
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=30)
    finally:
        await runner.cleanup()
    assert keys == [key]


async def test_failed_connections_are_let_go() -> None:
    """A long outage must not pile up dead connections in the client."""

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   nth: int) -> None:
        await server.read_request(reader)

    async with serving(mute) as server, HttpClient(timeout=2) as http:
        for _ in range(5):
            with pytest.raises(ConnectionClosed):
                await http.post(server.url, b"x", {})
        assert http._open == set()
