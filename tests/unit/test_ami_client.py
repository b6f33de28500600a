"""The AMI client against a fake AMI server: responses, lists, events, errors, and above all
that an action whose response was lost in a disconnect is failed, never re-sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from ami.client import (
    CLIENT_CONNECTED,
    CLIENT_DISCONNECTED,
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiDisconnected,
    AmiNotConnected,
    AmiTimeout,
)
from ami.protocol import Message, Parser

SECRET = "s3cret"


class FakeAmi:
    """Just enough of Asterisk's manager: Login, Ping, a list action, an Originate that it
    swallows (``drop_on_originate``: then it cuts the connection), and event pushing."""

    def __init__(self) -> None:
        self.received: list[Message] = []
        self.logins = 0
        self.drop_on_originate = False
        self.silent: set[str] = set()  # actions never answered
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.disconnect_all()
        await self.server.wait_closed()

    def disconnect_all(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    def push(self, text: str) -> None:
        for writer in self.writers:
            writer.write(text.encode())

    def actions(self, name: str) -> list[Message]:
        return [m for m in self.received if (m.get("Action") or "").lower() == name.lower()]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = Parser(expect_banner=False)
        try:
            while data := await reader.read(4096):
                for msg in parser.feed(data):
                    self.received.append(msg)
                    self._answer(msg, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _answer(self, msg: Message, writer: asyncio.StreamWriter) -> None:
        action, aid = (msg.get("Action") or "").lower(), msg.action_id
        if action in self.silent:
            return
        if action == "login":
            if msg.get("Secret") != SECRET:
                writer.write(f"Response: Error\r\nActionID: {aid}\r\n"
                             "Message: Authentication failed\r\n\r\n".encode())
                writer.close()
                return
            self.logins += 1
            writer.write(f"Response: Success\r\nActionID: {aid}\r\n"
                         "Message: Authentication accepted\r\n\r\n".encode())
        elif action == "originate" and self.drop_on_originate:
            writer.close()  # the call may be ringing; the response never arrives
        elif action == "coreshowchannels":
            writer.write(
                f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
                "Message: Channels will follow\r\n\r\n"
                f"Event: CoreShowChannel\r\nActionID: {aid}\r\nChannel: Local/a-1;1\r\n\r\n"
                f"Event: CoreShowChannel\r\nActionID: {aid}\r\nChannel: Local/a-1;2\r\n\r\n"
                f"Event: CoreShowChannelsComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
                "ListItems: 2\r\n\r\n".encode()
            )
        elif action == "nosuchthing":
            writer.write(f"Response: Error\r\nActionID: {aid}\r\n"
                         "Message: Invalid/unknown command\r\n\r\n".encode())
        else:
            writer.write(f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n\r\n".encode())


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(fake: FakeAmi) -> AsyncIterator[AmiClient]:
    ami = AmiClient("127.0.0.1", fake.port, "hotline", SECRET, timeout=2.0,
                    reconnect_delay=0.05, keepalive=None)
    await ami.connect()
    yield ami
    await ami.close()


async def test_send_and_action_ids(client: AmiClient, fake: FakeAmi) -> None:
    first = await client.send({"Action": "Ping"})
    second = await client.send({"Action": "Ping", "ActionID": "mine-1"})
    assert first.ok and first["Ping"] == "Pong"
    assert second.action_id == "mine-1"
    assert first.action_id != second.action_id
    assert client.banner == "Asterisk Call Manager/11.0.0"
    (login,) = fake.actions("Login")
    assert login["Events"] == "on" and login["Username"] == "hotline"


async def test_error_response(client: AmiClient) -> None:
    with pytest.raises(AmiActionError) as caught:
        await client.send({"Action": "NoSuchThing"})
    assert caught.value.response.message == "Invalid/unknown command"
    unchecked = await client.send({"Action": "NoSuchThing"}, check=False)
    assert not unchecked.ok


async def test_send_list(client: AmiClient) -> None:
    items = await client.send_list({"Action": "CoreShowChannels"})
    assert [e["Channel"] for e in items] == ["Local/a-1;1", "Local/a-1;2"]
    assert all(e.name == "CoreShowChannel" for e in items)


async def test_event_stream_filters_by_name(client: AmiClient, fake: FakeAmi) -> None:
    with client.events("Hangup") as stream:
        fake.push("Event: Newchannel\r\nChannel: X\r\n\r\nEvent: Hangup\r\nChannel: X\r\n"
                  "Cause: 16\r\n\r\n")
        async with asyncio.timeout(2):
            event = await stream.get()
    assert event.name == "Hangup" and event["Cause"] == "16"


async def test_timeout_keeps_connection(client: AmiClient, fake: FakeAmi) -> None:
    fake.silent.add("command")
    with pytest.raises(AmiTimeout):
        await client.send({"Action": "Command", "Command": "core show uptime"}, timeout=0.2)
    assert (await client.send({"Action": "Ping"})).ok


async def test_disconnect_fails_pending_action_and_never_resends_it(
    client: AmiClient, fake: FakeAmi
) -> None:
    fake.drop_on_originate = True
    with client.events("OriginateResponse") as stream:
        with pytest.raises(AmiDisconnected):
            await client.send({"Action": "Originate", "Channel": "Local/s@callback",
                               "Context": "callback", "Exten": "s", "Priority": 1,
                               "Async": True})
        async with asyncio.timeout(2):
            gone, back = await stream.get(), await stream.get()
        assert (gone.name, back.name) == (CLIENT_DISCONNECTED, CLIENT_CONNECTED)
    fake.drop_on_originate = False
    # the client logged in again, and new actions work on the new connection...
    assert fake.logins == 2
    assert (await client.send({"Action": "Ping"})).ok
    await asyncio.sleep(0.2)
    # ...but the Originate reached the server exactly once.
    assert len(fake.actions("Originate")) == 1


async def test_action_waits_for_reconnect_then_is_sent_once(
    client: AmiClient, fake: FakeAmi
) -> None:
    with client.events() as stream:
        fake.disconnect_all()
        async with asyncio.timeout(2):
            assert (await stream.get()).name == CLIENT_DISCONNECTED
    # sent while the client is reconnecting: it waits, then goes out on the new connection
    response = await client.send({"Action": "Ping", "ActionID": "after-drop"}, timeout=3)
    assert response.ok
    assert [m.action_id for m in fake.actions("Ping")] == ["after-drop"]


async def test_not_connected_means_not_sent(fake: FakeAmi) -> None:
    ami = AmiClient("127.0.0.1", fake.port, "hotline", SECRET, timeout=2.0,
                    reconnect_delay=0.05, keepalive=None)
    await ami.connect()
    port = fake.port
    stream = ami.events()
    await fake.stop()  # Asterisk is gone and stays gone
    try:
        async with asyncio.timeout(2):
            assert (await stream.get()).name == CLIENT_DISCONNECTED
        with pytest.raises(AmiNotConnected):
            await ami.send({"Action": "Originate", "Channel": "Local/s@x"}, timeout=0.3)
        assert fake.actions("Originate") == []
    finally:
        await ami.close()
    await fake.start(port)  # for the fixture's teardown


async def test_bad_secret(fake: FakeAmi) -> None:
    ami = AmiClient("127.0.0.1", fake.port, "hotline", "wrong", timeout=2.0, keepalive=None)
    with pytest.raises(AmiAuthError):
        await ami.connect()
    await ami.close()


async def test_keepalive_detects_a_dead_connection(fake: FakeAmi) -> None:
    ami = AmiClient("127.0.0.1", fake.port, "hotline", SECRET, timeout=0.2,
                    reconnect_delay=0.05, keepalive=0.1)
    await ami.connect()
    try:
        with ami.events() as stream:
            fake.silent.add("ping")  # a hung server: TCP up, no answers
            async with asyncio.timeout(3):
                assert (await stream.get()).name == CLIENT_DISCONNECTED
                fake.silent.clear()
                assert (await stream.get()).name == CLIENT_CONNECTED
        assert fake.logins == 2
    finally:
        await ami.close()


async def test_close_ends_streams(fake: FakeAmi) -> None:
    ami = AmiClient("127.0.0.1", fake.port, "hotline", SECRET, keepalive=None)
    await ami.connect()
    stream = ami.events()
    await ami.close()
    names = [event.name async for event in stream]
    assert names == [CLIENT_DISCONNECTED]
    assert fake.actions("Logoff")


async def test_a_consumer_too_slow_loses_the_oldest_events_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Memory stays bounded, and the loss is logged: a lost OriginateResponse makes the
    dialer reconcile, and a person reading the log must be able to see why."""
    from ami.protocol import Event

    caplog.set_level(logging.WARNING, logger="hotline.ami")  # whatever earlier tests configured
    ami = AmiClient("127.0.0.1", 1, "hotline", SECRET, keepalive=None)
    stream = ami.events("Hangup", maxsize=2)
    for uniqueid in ("1", "2", "3"):
        stream._offer(Event((("Event", "Hangup"), ("Uniqueid", uniqueid))))
    got = [(await stream.get()).get("Uniqueid") for _ in range(2)]
    assert got == ["2", "3"]
    assert "AMI event dropped" in caplog.text
    stream.close()
