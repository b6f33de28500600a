"""The AGI / FastAGI wire protocol, with no I/O: parse what Asterisk sends, serialise commands.

Formats follow ``res/res_agi.c`` of Asterisk 22:

* The session opens with ``agi_*: value`` lines (FastAGI first sends ``agi_network: yes`` and
  ``agi_network_script: <path>``), ended by an empty line; ``agi_arg_N`` carry the AGI()
  arguments. There is no ``agi_linkedid``.
* Every command gets one reply line ``200 result=<r> [(<data>)] [endpos=<n>]``, or
  ``510 Invalid or unknown command``, ``511 Command Not Permitted on a dead channel or
  intercept routine``, or the three-line usage block ``520-Invalid command syntax.  Proper usage
  follows:`` / usage text / ``520 End of proper usage.`` (``520 Invalid command syntax.  Proper
  usage not available.`` when there is no usage text).
* ``HANGUP`` arrives on a line of its own when the channel hangs up (FastAGI only; classic AGI
  gets SIGHUP instead), between replies, possibly twice; EOF may come at any time.

Command arguments are split by Asterisk's ``parse_args``: whitespace separates, ``"`` toggles
quoting, ``\\`` escapes the next character. A line break cannot be expressed at all.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import parse_qsl, unquote

# --------------------------------------------------------------------------- errors


class AgiProtocolError(Exception):
    """Asterisk sent something this module cannot make sense of."""


# --------------------------------------------------------------------------- environment

_ENV_LINE = re.compile(r"^(agi_[A-Za-z0-9_]+):(.*)$")


@dataclass(frozen=True)
class AgiEnvironment:
    """The ``agi_*`` block that opens every session (names kept without the ``agi_`` prefix)."""

    values: dict[str, str]
    args: tuple[str, ...] = ()

    def get(self, name: str) -> str | None:
        """A value, with Asterisk's placeholder ``unknown`` (unset caller id etc.) as None."""
        value = self.values.get(name)
        if value is None or value == "" or value == "unknown":
            return None
        return value

    @property
    def network(self) -> bool:
        return self.values.get("network") == "yes"

    @property
    def uniqueid(self) -> str | None:
        return self.get("uniqueid")

    @property
    def channel(self) -> str | None:
        return self.get("channel")

    @property
    def callerid(self) -> str | None:
        return self.get("callerid")

    @property
    def route(self) -> str:
        """The FastAGI path without slashes or query: ``agi://h:p/survey?x=1`` → ``survey``."""
        script = self.values.get("network_script", "")
        return script.split("?", 1)[0].strip("/")

    @property
    def query(self) -> dict[str, str]:
        script = self.values.get("network_script", "")
        _, _, query = script.partition("?")
        return dict(parse_qsl(query, keep_blank_values=True))


class EnvironmentParser:
    """Collects environment lines; :meth:`feed` returns True once the blank line arrived."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._args: dict[int, str] = {}
        self.hangup_seen = False
        self.done = False

    def feed(self, line: str) -> bool:
        if self.done:
            raise AgiProtocolError("environment already complete")
        line = line.rstrip("\r\n")
        if line == "":
            self.done = True
            return True
        if line == "HANGUP":  # cannot normally precede the blank line; tolerate it anyway
            self.hangup_seen = True
            return False
        m = _ENV_LINE.match(line)
        if m is None:
            raise AgiProtocolError(f"not an AGI environment line: {line[:80]!r}")
        name = m.group(1)[len("agi_"):]
        value = m.group(2)
        # res_agi writes "name: value"; drop exactly that one space, keep the rest of the value
        if value.startswith(" "):
            value = value[1:]
        if name.startswith("arg_") and name[4:].isdigit():
            self._args[int(name[4:])] = value
        else:
            self._values[name] = value
        return False

    def result(self) -> AgiEnvironment:
        if not self.done:
            raise AgiProtocolError("environment incomplete")
        args = tuple(self._args[i] for i in sorted(self._args))
        return AgiEnvironment(values=dict(self._values), args=args)


def parse_environment(lines: Iterable[str]) -> AgiEnvironment:
    parser = EnvironmentParser()
    for line in lines:
        if parser.feed(line):
            return parser.result()
    raise AgiProtocolError("environment not terminated by an empty line")


# --------------------------------------------------------------------------- replies

# "200 result=<token> (<data>) endpos=<n>": data runs to the last ")" followed only by
# key=value fields, so values containing parentheses (GET VARIABLE) survive.
_REPLY = re.compile(
    r"^(?P<code>\d{3}) result=(?P<result>\S*)"
    r"(?: \((?P<data>.*)\))?"
    r"(?P<fields>(?: [A-Za-z_]+=\S*)*)\s*$"
)
_FIELD = re.compile(r" ([A-Za-z_]+)=(\S*)")
_CODE = re.compile(r"[0-9]{3}")


@dataclass(frozen=True)
class Reply:
    code: int
    result: str = ""
    data: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def result_int(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def endpos(self) -> int | None:
        value = self.fields.get("endpos")
        return int(value) if value is not None and value.lstrip("-").isdigit() else None


class HangupNotice:
    """The unsolicited ``HANGUP`` line."""

    _instance: HangupNotice | None = None

    def __new__(cls) -> HangupNotice:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "HANGUP"


HANGUP = HangupNotice()


class ReplyParser:
    """Turns reply lines into :class:`Reply` / :data:`HANGUP`; ``None`` while inside a 520
    usage block."""

    def __init__(self) -> None:
        self._usage: list[str] | None = None

    def feed(self, line: str) -> Reply | HangupNotice | None:
        line = line.rstrip("\r\n")
        if line == "HANGUP":
            return HANGUP
        if self._usage is not None:
            if line.startswith("520 "):
                usage = "\n".join(self._usage)
                self._usage = None
                return Reply(code=520, data=usage, text=line)
            self._usage.append(line)
            return None
        if line.startswith("520-"):
            self._usage = []
            return None
        if line.startswith("520 "):
            return Reply(code=520, data=None, text=line)
        m = _REPLY.match(line)
        if m is not None:
            fields = dict(_FIELD.findall(m.group("fields") or ""))
            return Reply(
                code=int(m.group("code")), result=m.group("result"), data=m.group("data"),
                fields=fields, text=line,
            )
        code = line[:3]
        # ASCII digits only ("²".isdigit() is true), and a line may be shorter than 3
        if _CODE.fullmatch(code) and code != "200" and (len(line) == 3 or line[3] == " "):
            # 510 / 511 and anything else without "result=": the text is the message
            return Reply(code=int(code), data=line[4:] or None, text=line)
        raise AgiProtocolError(f"unexpected line from Asterisk: {line[:80]!r}")


def parse_reply(text: str) -> Reply:
    """One complete reply (all its lines); for tests and tools."""
    parser = ReplyParser()
    for line in text.splitlines():
        event = parser.feed(line)
        if isinstance(event, Reply):
            return event
    raise AgiProtocolError(f"incomplete reply: {text[:80]!r}")


# --------------------------------------------------------------------------- commands

_NEEDS_QUOTES = re.compile(r'[\s"\\]')
#: every key a telephone keypad can send
ALL_KEYS = "0123456789*#"


def quote_arg(value: str) -> str:
    """Quote an argument the way ``parse_args`` reads it back unchanged."""
    if "\n" in value or "\r" in value:
        raise ValueError("an AGI argument cannot contain a line break")
    if value and not _NEEDS_QUOTES.search(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass(frozen=True)
class Command:
    verb: str  # e.g. "GET DATA"; never quoted
    args: tuple[str, ...] = ()

    def line(self) -> str:
        return " ".join([self.verb, *(quote_arg(a) for a in self.args)])

    def encode(self) -> bytes:
        return (self.line() + "\n").encode("utf-8")

    def __str__(self) -> str:
        return self.line()


def answer() -> Command:
    return Command("ANSWER")


def channel_status() -> Command:
    """Not permitted on a dead channel (511): the cheapest way to ask "still there?"."""
    return Command("CHANNEL STATUS")


def get_data(prompt: str, timeout_ms: int, max_digits: int = 1) -> Command:
    return Command("GET DATA", (prompt, str(timeout_ms), str(max_digits)))


def stream_file(prompt: str, escape_digits: str = "") -> Command:
    return Command("STREAM FILE", (prompt, escape_digits))


def record_file(
    path: str,
    fmt: str,
    escape_digits: str,
    timeout_ms: int,
    *,
    beep: bool = True,
    silence_seconds: int = 0,
) -> Command:
    """``RECORD FILE path fmt keys ms offset [BEEP] [s=N]``. The offset (0) is always given so
    that ``BEEP`` is not mistaken for it (res_agi inspects argv[6] first)."""
    args = [path, fmt, escape_digits, str(timeout_ms), "0"]
    if beep:
        args.append("BEEP")
    if silence_seconds > 0:
        args.append(f"s={silence_seconds}")
    return Command("RECORD FILE", tuple(args))


def set_variable(name: str, value: str) -> Command:
    return Command("SET VARIABLE", (name, value))


def get_variable(name: str) -> Command:
    return Command("GET VARIABLE", (name,))


def get_full_variable(expression: str) -> Command:
    """Evaluates an expression such as ``${CHANNEL(linkedid)}`` on the channel."""
    return Command("GET FULL VARIABLE", (expression,))


#: separates the values of :func:`joined_expression`; URIENCODE always encodes it, so a value
#: can never contain it
JOIN_SEPARATOR = "|"


@functools.lru_cache(maxsize=16)  # the survey asks the same expressions on every call
def joined_expression(expressions: tuple[str, ...]) -> str:
    """One ``GET FULL VARIABLE`` expression that returns several values at once (issue 13: one
    round trip instead of one per variable): each ``${...}`` expression wrapped in URIENCODE
    (func_uri) and joined by ``|``, e.g. ``${URIENCODE(${CHANNEL(linkedid)})}|...``."""
    for expression in expressions:
        if not (expression.startswith("${") and expression.endswith("}")):
            raise ValueError(f"not a ${{...}} expression: {expression!r}")
    return JOIN_SEPARATOR.join(f"${{URIENCODE({e})}}" for e in expressions)


def split_joined(data: str, count: int) -> list[str]:
    """The values of a :func:`joined_expression` reply, decoded. Anything but exactly ``count``
    parts (URIENCODE missing, a truncated reply) is a protocol error: the caller falls back to
    reading the variables one by one."""
    parts = data.split(JOIN_SEPARATOR)
    if len(parts) != count:
        raise AgiProtocolError(f"expected {count} joined values, got {len(parts)}")
    return [unquote(part, errors="replace") for part in parts]


def say_digits(digits: str, escape_digits: str = "") -> Command:
    return Command("SAY DIGITS", (digits, escape_digits))


def verbose(message: str, level: int = 1) -> Command:
    return Command("VERBOSE", (message.replace("\n", " "), str(level)))


def exec_app(application: str, options: str = "") -> Command:
    return Command("EXEC", (application, options))


def hangup() -> Command:
    return Command("HANGUP")


# --------------------------------------------------------------------------- typed results


class GetDataKind(Enum):
    DIGITS = "digits"
    TIMEOUT = "timeout"
    FAILED = "failed"  # -1: hang-up *or* a prompt file that does not exist


@dataclass(frozen=True)
class GetDataResult:
    kind: GetDataKind
    digits: str = ""


def interpret_get_data(reply: Reply) -> GetDataResult:
    """``200 result=<digits>``; ``200 result=<partial> (timeout)``; ``200 result=-1``.
    ``200 result=`` without "(timeout)" means ``#`` (the terminator) was pressed first."""
    if reply.result == "-1":
        return GetDataResult(GetDataKind.FAILED)
    if reply.data == "timeout":
        if reply.result:
            return GetDataResult(GetDataKind.DIGITS, reply.result)
        return GetDataResult(GetDataKind.TIMEOUT)
    if reply.result == "":
        return GetDataResult(GetDataKind.DIGITS, "#")
    return GetDataResult(GetDataKind.DIGITS, reply.result)


@dataclass(frozen=True)
class StreamResult:
    failed: bool = False
    digit: str | None = None
    endpos: int | None = None


def interpret_stream_file(reply: Reply) -> StreamResult:
    """``result=0`` played to the end; ``result=<ASCII code>`` stopped by that key;
    ``result=-1`` hang-up or missing file."""
    value = reply.result_int
    if value is None or value < 0:
        return StreamResult(failed=True, endpos=reply.endpos)
    if value == 0:
        return StreamResult(endpos=reply.endpos)
    return StreamResult(digit=chr(value), endpos=reply.endpos)


class RecordEnd(Enum):
    KEY = "key"  # an escape key ended it ("(dtmf)"), or a key during the beep
    TIMEOUT = "timeout"  # max length or silence
    HANGUP = "hangup"  # the file holds what was said before the hang-up
    FAILED = "failed"  # could not write the file / beep failed / waitfor error


@dataclass(frozen=True)
class RecordResult:
    end: RecordEnd
    endpos: int = 0  # samples written (8000 a second for the wav format)
    digit: str | None = None
    detail: str | None = None


def interpret_record_file(reply: Reply) -> RecordResult:
    value = reply.result_int
    endpos = reply.endpos or 0
    tag = reply.data
    if tag == "dtmf" and value is not None and value > 0:
        return RecordResult(RecordEnd.KEY, endpos, chr(value))
    if tag == "timeout":
        return RecordResult(RecordEnd.TIMEOUT, endpos)
    if tag == "hangup":
        return RecordResult(RecordEnd.HANGUP, endpos)
    if tag == "randomerror" and value is not None and value > 0:
        # a key pressed during the beep: nothing was recorded
        return RecordResult(RecordEnd.KEY, 0, chr(value), detail=tag)
    return RecordResult(RecordEnd.FAILED, endpos, detail=tag or reply.text)
