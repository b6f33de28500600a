"""A stand-in for Asterisk's side of an AGI session, for tests of AGI flows without Asterisk
(the survey and the 回访 follow-up). Tests and benchmarks only: nothing the service runs
imports it. It answers the way ``res/res_agi.c`` does, including
``HANGUP`` lines, ``511`` after a hang-up and EOF.

* :func:`split_args` re-implements res_agi's ``parse_args``: what Asterisk would make of a
  command line (used to check our quoting).
* :class:`SimulatedCaller` answers commands like a channel whose caller presses the given keys.
* :func:`memory_channel` connects an :class:`~ivr.agi.channel.AgiChannel` to a responder in memory;
  :func:`fastagi_call` dials a FastAGI server over TCP and plays Asterisk's side.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from ivr.agi.channel import AgiChannel

_INNERMOST = re.compile(r"\$\{([^${}]*)\}")

#: a responder maps one command line to the reply lines; None closes the connection (EOF)
Responder = Callable[[str], list[str] | None]


def split_args(line: str) -> list[str]:
    """Asterisk's ``parse_args``: whitespace splits, ``"`` toggles quoting (and starts a word
    when it follows whitespace, so ``""`` is an empty argument), ``\\`` escapes."""
    args: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                current = []
                args.append("")
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            if current is not None:
                args[-1] = "".join(current)
                current = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            current = []
            args.append("")
            whitespace = False
        assert current is not None
        current.append(ch)
        escaped = False
    if current is not None:
        args[-1] = "".join(current)
    return args


def environment_lines(
    *, route: str | None = "survey", uniqueid: str = "1700000000.7", callerid: str = "13800138000",
    channel: str = "PJSIP/carrier-00000001", extra: dict[str, str] | None = None,
    args: Iterable[str] = (),
) -> list[str]:
    lines = []
    if route is not None:
        lines += ["agi_network: yes", f"agi_network_script: {route}"]
        request = f"agi://127.0.0.1:4573/{route}"
    else:
        request = "/usr/share/asterisk/agi-bin/survey"
    values = {
        "request": request, "channel": channel, "language": "en", "type": channel.split("/")[0],
        "uniqueid": uniqueid, "version": "22.5.0", "callerid": callerid,
        "calleridname": "unknown", "callingpres": "0", "callingani2": "0", "callington": "0",
        "callingtns": "0", "dnid": "12345", "rdnis": "unknown", "context": "hotline-survey",
        "extension": "s", "priority": "5", "enhanced": "0.0", "accountcode": "",
        "threadid": "140000000000000",
        **(extra or {}),
    }
    lines += [f"agi_{k}: {v}" for k, v in values.items()]
    lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(args, start=1)]
    return [*lines, ""]


#: commands res_agi permits on a dead channel (the rest get 511)
DEAD_OK = ("SET VARIABLE", "GET VARIABLE", "GET FULL VARIABLE", "VERBOSE", "NOOP", "EXEC",
           "DATABASE")


@dataclass
class SimulatedCaller:
    """Asterisk with one caller. ``keys`` are consumed in order by the commands that listen:

    * by GET DATA: ``"4"`` a key, ``None`` silence (``(timeout)``), ``"hangup"``;
    * ``"^4"``: pressed during the next STREAM FILE that has escape digits (barge-in);
    * by RECORD FILE: ``("rec", seconds)`` ended by ``#``, ``("rec-timeout", s)``,
      ``("rec-hangup", s)``, ``("rec-fail",)``.

    Prompts in ``missing`` answer -1 on a live channel, as a missing sound file does.
    """

    keys: list[object] = field(default_factory=list)
    linkedid: str = "1700000000.5"
    variables: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    hung_up: bool = False
    eof_on_hangup: bool = False  # AGIEXITONHANGUP: Asterisk closes instead of answering 511
    double_hangup: bool = True
    commands: list[list[str]] = field(default_factory=list)
    played: list[str] = field(default_factory=list)

    def evaluate(self, expression: str) -> str:
        """Asterisk's substitution, for what the flows use: ``${NAME}``, ``${CHANNEL(linkedid)}``
        and ``${URIENCODE(...)}`` (func_uri: everything but letters, digits and -_.!~*'() is
        %XX-encoded), innermost first."""
        def substitute(m: re.Match[str]) -> str:
            inner = m.group(1)
            if inner == "CHANNEL(linkedid)":
                return self.linkedid
            if inner.startswith("URIENCODE(") and inner.endswith(")"):
                return quote(inner[len("URIENCODE("):-1], safe="-_.!~*'()")
            return self.variables.get(inner, "")

        previous = None
        while previous != expression:
            previous = expression
            expression = _INNERMOST.sub(substitute, expression, count=1)
        return expression

    def _hangup(self, reply: str) -> list[str] | None:
        self.hung_up = True
        if self.eof_on_hangup:
            return None
        return [reply, "HANGUP"] + (["HANGUP"] if self.double_hangup else [])

    def _next_key(self) -> object:
        return self.keys.pop(0) if self.keys else None

    def __call__(self, line: str) -> list[str] | None:
        args = split_args(line)
        self.commands.append(args)
        verb2 = " ".join(args[:2]).upper()
        verb3 = " ".join(args[:3]).upper()
        verb = verb3 if verb3 == "GET FULL VARIABLE" else verb2
        if self.hung_up and not any(verb.startswith(d) for d in DEAD_OK):
            if self.eof_on_hangup:
                return None
            return ["511 Command Not Permitted on a dead channel or intercept routine"]
        if verb == "GET FULL VARIABLE":
            return [f"200 result=1 ({self.evaluate(args[3])})"]
        if verb == "GET VARIABLE":
            value = self.variables.get(args[2])
            return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]
        if verb == "SET VARIABLE":
            self.variables[args[2]] = args[3]
            return ["200 result=1"]
        if verb == "CHANNEL STATUS":
            return ["200 result=6"]
        if verb == "VERBOSE":
            return ["200 result=1"]
        if verb == "STREAM FILE":
            prompt, escape = args[2], args[3] if len(args) > 3 else ""
            self.played.append(prompt)
            if prompt in self.missing:
                return ["200 result=-1 endpos=0"]
            if escape and self.keys and isinstance(self.keys[0], str) and self.keys[0][:1] == "^":
                key = str(self.keys.pop(0))[1:]
                if key == "hangup":
                    return self._hangup("200 result=-1 endpos=4000")
                return [f"200 result={ord(key)} endpos=4000"]
            return ["200 result=0 endpos=16000"]
        if verb == "GET DATA":
            self.played.append(args[2])
            if args[2] in self.missing:
                return ["200 result=-1"]
            key = self._next_key()
            if key is None:
                return ["200 result= (timeout)"]
            if key == "hangup":
                return self._hangup("200 result=-1")
            if key == "#":
                return ["200 result="]
            return [f"200 result={key}"]
        if verb == "RECORD FILE":
            item = self._next_key()
            kind, seconds = (item[0], item[1] if len(item) > 1 else 0) if isinstance(
                item, tuple) else ("rec-timeout", 0)
            samples = int(float(seconds) * 8000)
            if kind == "rec":
                return [f"200 result=35 (dtmf) endpos={samples}"]
            if kind == "rec-hangup":
                return self._hangup(f"200 result=-1 (hangup) endpos={samples}")
            if kind == "rec-fail":
                return ["200 result=-1 (writefile)"]
            return [f"200 result=0 (timeout) endpos={samples}"]
        if verb == "ANSWER" or args[0].upper() == "ANSWER":
            return ["200 result=0"]
        return ["510 Invalid or unknown command"]


class _MemoryWriter:
    """The channel's writer: each command line goes to the responder, whose reply lines are fed
    to the channel's reader."""

    def __init__(self, reader: asyncio.StreamReader, responder: Responder) -> None:
        self._reader = reader
        self._responder = responder
        self._buffer = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        self._buffer += data
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            reply = self._responder(raw.decode())
            if reply is None:
                self._reader.feed_eof()
                continue
            self._reader.feed_data("".join(f"{line}\n" for line in reply).encode())

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


def memory_channel(
    responder: Responder, env: list[str] | None = None, *, read_timeout: float = 5.0
) -> tuple[AgiChannel, _MemoryWriter]:
    """An AgiChannel wired to ``responder``; the environment is already queued for reading."""
    reader = asyncio.StreamReader()
    reader.feed_data("".join(f"{line}\n" for line in (env or environment_lines())).encode())
    writer = _MemoryWriter(reader, responder)
    return AgiChannel(reader, writer, read_timeout=read_timeout), writer


async def fastagi_call(
    host: str, port: int, responder: Responder, env: list[str] | None = None,
    *, within: float = 30.0,
) -> list[str]:
    """Play Asterisk: connect, send the environment, answer each command with ``responder``
    until the server closes the connection. Returns the command lines received."""
    reader, writer = await asyncio.open_connection(host, port)
    received: list[str] = []
    try:
        writer.write("".join(f"{line}\n" for line in (env or environment_lines())).encode())
        await writer.drain()
        async with asyncio.timeout(within):
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\n")
                received.append(line)
                reply = responder(line)
                if reply is None:
                    break
                writer.write("".join(f"{r}\n" for r in reply).encode())
                await writer.drain()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return received
