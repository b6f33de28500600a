"""One AGI session over a pair of asyncio streams (a FastAGI socket or a classic AGI's
stdin/stdout): sends commands one at a time and turns the ways a channel goes away (``HANGUP``,
``511``, EOF, a broken socket) into :class:`ChannelHungUp`, remembering it.

Why not panoramisk: its FastAGI 1.4 ignores ``511`` and ``HANGUP``, spins on EOF and drops the
``(timeout)`` marker of GET DATA, which are exactly the cases a survey has to get right.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any, Protocol

from ivr.agi import protocol as p

log = logging.getLogger("hotline.ivr.agi")


class CallLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds the call's identifiers to every record, keeping the record's own ``extra`` too
    (the standard adapter replaces it before Python 3.13)."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class ChannelGone(Exception):
    """The call can no longer be talked to: hung up, or the AGI session itself is lost."""


class ChannelHungUp(ChannelGone):
    """HANGUP, 511 (dead channel), EOF or a reset connection."""


class AgiProtocolBroken(ChannelGone):
    """Asterisk's side sent what no AGI peer sends (a line over the stream limit, garbage): the
    session is out of step and is dropped, as if the call had gone (issue 8 defect 10)."""


class AgiTimeout(ChannelGone):
    """No reply within the read timeout; the session is abandoned (its state is unknown)."""


class AgiCommandError(Exception):
    """510 (unknown command) or 520 (bad syntax): a bug on our side, not a caller's action."""

    def __init__(self, command: p.Command, reply: p.Reply) -> None:
        super().__init__(f"{command.verb}: {reply.code} {reply.data or reply.text}")
        self.command = command
        self.reply = reply


class MediaError(Exception):
    """A play/record command failed although the channel is still up: in practice a sound file
    that does not exist (GET DATA / STREAM FILE answer -1 exactly as for a hang-up)."""

    def __init__(self, command: p.Command) -> None:
        super().__init__(f"{command.line()} failed on a live channel (missing sound file?)")
        self.command = command


class _ReadTimedOut(Exception):
    """Set on the stream by the read deadline's timer; becomes :class:`AgiTimeout`."""


_NO_READ = float("inf")


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...
    async def wait_closed(self) -> None: ...


class AgiChannel:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: Writer,
        *,
        read_timeout: float,
        logger: logging.Logger | logging.LoggerAdapter | None = None,  # type: ignore[type-arg]
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.read_timeout = read_timeout
        self._parser = p.ReplyParser()
        self._env: p.AgiEnvironment | None = None
        self.hung_up = False
        self._eof = False
        self._broken = False  # a timeout left a reply unread: the stream is out of step
        #: the session's first command that needs a live channel was refused as on a dead one
        #: (511): the channel was hung up before the AGI could play anything (a hang-up
        #: handler, or the caller left as it started)
        self.dead_on_arrival = False
        self._live_answered = False  # a command that needs a live channel was answered
        self.log = logger or log
        #: when the read under way must have its line (``inf``: no read under way), and the
        #: one timer that enforces it (see :meth:`_expect_by`)
        self._deadline = _NO_READ
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_at = _NO_READ

    # ------------------------------------------------------------------ state
    @property
    def env(self) -> p.AgiEnvironment:
        if self._env is None:
            raise RuntimeError("environment not read yet")
        return self._env

    def note_hangup(self) -> None:
        """Classic AGI learns of the hang-up by SIGHUP instead of a HANGUP line."""
        self.hung_up = True

    # ------------------------------------------------------------------ low level
    def _expect_by(self, deadline: float) -> None:
        """Arm the read deadline. One timer per session, not one per line: an
        ``asyncio.timeout`` around every read made and cancelled a timer per line, ~10 % of the
        survey server's CPU (issue 13). The timer is moved only when a deadline comes earlier
        than it; when it fires it either fails the read under way or waits again for the
        current deadline."""
        self._deadline = deadline
        if self._watchdog is not None and self._watchdog_at <= deadline:
            return
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = asyncio.get_running_loop().call_at(deadline, self._on_watchdog)
        self._watchdog_at = deadline

    def _on_watchdog(self) -> None:
        self._watchdog = None
        self._watchdog_at = _NO_READ
        if self._deadline == _NO_READ:  # no read under way; the next one arms it again
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline:
            # wakes the pending read with this error (and every later read: the session is
            # out of step from here on)
            self._reader.set_exception(_ReadTimedOut())
        else:
            self._watchdog = loop.call_at(self._deadline, self._on_watchdog)
            self._watchdog_at = self._deadline

    def _stop_watchdog(self) -> None:
        self._deadline = _NO_READ
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _readline(self, deadline: float) -> str:
        self._expect_by(deadline)  # a deadline already past still reads what is buffered
        try:
            raw = await self._reader.readline()
        except _ReadTimedOut as exc:
            self._broken = True
            raise AgiTimeout("no data from Asterisk within the read timeout") from exc
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self._mark_gone()
            raise ChannelHungUp("connection lost") from exc
        except (ValueError, asyncio.LimitOverrunError) as exc:  # a line longer than the limit
            self._broken = True
            raise AgiProtocolBroken("a line longer than the stream limit") from exc
        finally:
            self._deadline = _NO_READ
        if not raw:
            self._mark_gone()
            raise ChannelHungUp("EOF from Asterisk")
        return raw.decode("utf-8", errors="replace")

    def _mark_gone(self) -> None:
        self._eof = True
        self.hung_up = True

    async def read_environment(self, within: float | None = None) -> p.AgiEnvironment:
        parser = p.EnvironmentParser()
        deadline = asyncio.get_running_loop().time() + (within or self.read_timeout)
        try:
            while not parser.feed(await self._readline(deadline)):
                pass
        except p.AgiProtocolError as exc:
            self._broken = True
            raise AgiProtocolBroken(str(exc)) from exc
        if parser.hangup_seen:
            self.hung_up = True
        self._env = parser.result()
        return self._env

    async def execute(
        self, command: p.Command, *, within: float | None = None, allow_dead: bool = False
    ) -> p.Reply:
        """Send one command and wait for its reply.

        ``allow_dead`` commands (variables, VERBOSE: those res_agi permits on a dead channel) are
        still sent after a hang-up, so a hang-up handler can read the call's variables; anything
        else raises :class:`ChannelHungUp` at once.
        """
        if self._eof or self._broken:
            raise ChannelHungUp("AGI session already closed")
        if self.hung_up and not allow_dead:
            raise ChannelHungUp("channel hung up")
        line = command.encode()
        self.log.debug("agi >> %s", command.verb)
        try:
            self._writer.write(line)
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._mark_gone()
            raise ChannelHungUp("connection lost while sending") from exc
        deadline = asyncio.get_running_loop().time() + (within or self.read_timeout)
        while True:
            line = await self._readline(deadline)
            try:
                event = self._parser.feed(line)
            except p.AgiProtocolError as exc:
                self._broken = True
                raise AgiProtocolBroken(str(exc)) from exc
            if event is p.HANGUP:
                # Asterisk sends HANGUP between commands; the reply to ours still follows.
                self.hung_up = True
                continue
            if not isinstance(event, p.Reply):
                continue  # inside a 520 usage block
            self.log.debug("agi << %s %s", event.code, event.result)
            if event.code == 200:
                self._live_answered = self._live_answered or not allow_dead
                return event
            if event.code == 511:
                self.hung_up = True
                self.dead_on_arrival = not self._live_answered
                raise ChannelHungUp("511 dead channel")
            raise AgiCommandError(command, event)

    async def _failed_media(self, command: p.Command) -> None:
        """-1 from a media command: hang-up or missing file. Tell them apart by asking for the
        channel status, which a dead channel refuses (511) and which comes after any HANGUP."""
        if self.hung_up:
            raise ChannelHungUp("channel hung up")
        await self.execute(p.channel_status())  # raises ChannelHungUp if the channel is gone
        if self.hung_up:
            raise ChannelHungUp("channel hung up")
        raise MediaError(command)

    # ------------------------------------------------------------------ commands
    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int = 1) -> p.GetDataResult:
        command = p.get_data(prompt, timeout_ms, max_digits)
        # The prompt's length is not known here; give it the read timeout on top of the wait.
        reply = await self.execute(command, within=self.read_timeout + timeout_ms / 1000)
        result = p.interpret_get_data(reply)
        if result.kind is p.GetDataKind.FAILED:
            await self._failed_media(command)
        return result

    async def stream_file(self, prompt: str, escape_digits: str = "") -> p.StreamResult:
        command = p.stream_file(prompt, escape_digits)
        result = p.interpret_stream_file(await self.execute(command))
        if result.failed:
            await self._failed_media(command)
        return result

    async def record_file(
        self,
        path: str,
        fmt: str,
        escape_digits: str,
        max_seconds: int,
        *,
        beep: bool = True,
        silence_seconds: int = 0,
    ) -> p.RecordResult:
        """Record; a hang-up while recording is *returned* (RecordEnd.HANGUP, the file keeps what
        was said) rather than raised, so the comment can still be linked to the rating."""
        command = p.record_file(
            path, fmt, escape_digits, max_seconds * 1000, beep=beep,
            silence_seconds=silence_seconds,
        )
        reply = await self.execute(command, within=self.read_timeout + max_seconds)
        result = p.interpret_record_file(reply)
        if result.end is p.RecordEnd.HANGUP:
            self.hung_up = True
        elif result.end is p.RecordEnd.FAILED and result.detail in ("randomerror", "waitfor"):
            # -1 before/while recording: a hang-up (ChannelHungUp) or a broken beep (MediaError)
            await self._failed_media(command)
        return result

    async def set_variable(self, name: str, value: str) -> None:
        await self.execute(p.set_variable(name, value), allow_dead=True)

    async def get_variable(self, name: str) -> str | None:
        """The value, or None when the variable is not set (``200 result=0``)."""
        reply = await self.execute(p.get_variable(name), allow_dead=True)
        if reply.result != "1":
            return None
        return reply.data or ""

    async def get_full_variable(self, expression: str) -> str:
        reply = await self.execute(p.get_full_variable(expression), allow_dead=True)
        return (reply.data or "") if reply.result == "1" else ""

    async def get_full_variables(self, expressions: list[str]) -> list[str]:
        """Several ``${...}`` expressions in ONE round trip (:func:`protocol.joined_expression`).
        Raises :class:`~ivr.agi.protocol.AgiProtocolError` when the reply cannot be split (an
        Asterisk without func_uri): the caller then reads them one by one."""
        reply = await self.execute(
            p.get_full_variable(p.joined_expression(tuple(expressions))), allow_dead=True
        )
        if reply.result != "1":
            raise p.AgiProtocolError(f"GET FULL VARIABLE answered result={reply.result}")
        return p.split_joined(reply.data or "", len(expressions))

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.execute(p.verbose(message, level), allow_dead=True)

    async def is_alive(self) -> bool:
        """Ask Asterisk whether the channel is still up (False on 511 / HANGUP / EOF)."""
        if self.hung_up:
            return False
        try:
            await self.execute(p.channel_status())
        except ChannelHungUp:
            return False
        return not self.hung_up

    async def close(self) -> None:
        """Close our side; Asterisk then continues the dialplan after AGI()."""
        self._eof = True
        self._stop_watchdog()
        try:
            self._writer.close()
            transport = getattr(self._writer, "transport", None)
            if transport is not None and not transport.get_write_buffer_size():
                return  # nothing left to send: the socket closes without our waiting (issue 13)
            await asyncio.wait_for(self._writer.wait_closed(), timeout=2)
        except (ConnectionError, TimeoutError, RuntimeError, OSError):
            pass
