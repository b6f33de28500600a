"""A scripted AMI server (fixture ``fake``, tests/integration/conftest.py): the citizen number's
last two digits decide each call (tests/integration/test_callback_dialer.py lists them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ami.protocol import Message, Parser

SECRET = "fake-secret"


class FakeAsterisk:
    def __init__(self) -> None:
        self.originates: list[Message] = []
        self.channels: dict[str, str] = {}  # Uniqueid → ChannelState
        self.writers: list[asyncio.StreamWriter] = []
        self.on_answer: Callable[[int], Awaitable[None]] | None = None
        self.server: asyncio.Server | None = None
        self.port = 0
        self._jobs: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
        for job in self._jobs:
            job.cancel()
        await self.server.wait_closed()

    def push(self, **headers: object) -> None:
        text = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        for w in self.writers:
            w.write(text.encode())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = Parser(expect_banner=False)
        try:
            while data := await reader.read(4096):
                for msg in parser.feed(data):
                    self._answer(msg, writer)
        except ConnectionError:
            pass
        finally:
            if writer in self.writers:
                self.writers.remove(writer)
            writer.close()

    def _reply(self, writer: asyncio.StreamWriter, aid: str | None, **headers: str) -> None:
        text = f"Response: Success\r\nActionID: {aid}\r\n"
        text += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(text.encode())

    def _answer(self, msg: Message, writer: asyncio.StreamWriter) -> None:
        action, aid = (msg.get("Action") or "").lower(), msg.action_id
        if action == "originate":
            self.originates.append(msg)
            number = (msg.get("Channel") or "").split("/")[1].split("@")[0]
            behaviour = number[-2:]
            if behaviour in ("09", "06"):
                if behaviour == "06":
                    self.channels[msg["ChannelId"]] = "6"  # the citizen answered meanwhile
                    self._later(self._hang_up_later(msg["ChannelId"], 2.0))
                writer.close()  # the response is lost with the connection
                return
            if behaviour == "07":  # slow: no response in time, the channel comes later
                self._later(self._slow_call(msg))
                return
            self._reply(writer, aid, Message="Originate successfully queued")
            self._later(self._call(msg, behaviour))
        elif action == "coreshowchannels":
            self._reply(writer, aid, EventList="start", Message="Channels will follow")
            for uid, state in self.channels.items():
                writer.write(f"Event: CoreShowChannel\r\nActionID: {aid}\r\nUniqueid: {uid}\r\n"
                             f"ChannelState: {state}\r\n\r\n".encode())
            writer.write(f"Event: CoreShowChannelsComplete\r\nActionID: {aid}\r\n"
                         f"EventList: Complete\r\nListItems: {len(self.channels)}\r\n\r\n"
                         .encode())
        else:
            self._reply(writer, aid, Message="ok")

    def _later(self, coro: Awaitable[None]) -> None:
        job = asyncio.ensure_future(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _call(self, msg: Message, behaviour: str) -> None:
        await asyncio.sleep(0.05)
        uid, aid = msg["ChannelId"], msg.action_id
        failure = {"05": (5, 17), "03": (3, 19), "08": (8, 34)}.get(behaviour)
        if failure is not None:
            reason, cause = failure
            self.push(Event="Hangup", Uniqueid=uid, Cause=cause)
            self.push(Event="OriginateResponse", ActionID=aid, Response="Failure",
                      Reason=reason, Uniqueid=uid)
            return
        self.channels[uid] = "6"
        self.push(Event="OriginateResponse", ActionID=aid, Response="Success", Reason=4,
                  Uniqueid=uid)
        if self.on_answer is not None:
            variable = next(v for v in msg.get_all("Variable") if v.startswith("CALLBACK_"))
            await self.on_answer(int(variable.split("=")[1]))
        await self._hang_up_later(uid, 0.05)

    async def _slow_call(self, msg: Message) -> None:
        """An Asterisk too busy to acknowledge the Originate within the client's timeout:
        the channel appears only later, is answered, and hangs up without a rating."""
        await asyncio.sleep(1.5)
        uid, aid = msg["ChannelId"], msg.action_id
        self.channels[uid] = "6"
        self.push(Event="OriginateResponse", ActionID=aid, Response="Success", Reason=4,
                  Uniqueid=uid)
        await self._hang_up_later(uid, 0.5)

    async def _hang_up_later(self, uid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self.channels.pop(uid, None)
        self.push(Event="Hangup", Uniqueid=uid, Cause=16)
