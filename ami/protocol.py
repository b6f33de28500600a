"""The Asterisk Manager Interface wire format, without any I/O.

A message is lines of ``Key: value`` ended by CRLF, and a blank line ends the message. A value
may itself contain ``:`` (only the first one separates); a key may repeat (``Output:`` lines of
a ``Command`` response, ``Variable:`` lines of an action). The first line a server sends is a
banner (``Asterisk Call Manager/x.y.z``) without a blank line after it. Asterisk before 14 sent
``Command`` output as raw lines ended by ``--END COMMAND--``; such lines become ``Output``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

BANNER_PREFIX = "Asterisk Call Manager/"
_LEGACY_END = "--END COMMAND--"

ActionValue = str | int | float | bool | Iterable[str] | None


class ProtocolError(ValueError):
    """A message cannot be encoded (it would corrupt the stream) or decoded."""


@dataclass(frozen=True)
class Message:
    """One AMI message: its headers, in order, with repeats kept."""

    headers: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key`` (case-insensitive, as Asterisk compares keys)."""
        lowered = key.lower()
        for name, value in self.headers:
            if name.lower() == lowered:
                return value
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get_all(self, key: str) -> list[str]:
        lowered = key.lower()
        return [value for name, value in self.headers if name.lower() == lowered]

    def as_dict(self) -> dict[str, str]:
        """Headers as a dict; for a repeated key the first value wins."""
        result: dict[str, str] = {}
        for name, value in self.headers:
            result.setdefault(name, value)
        return result

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def event_list(self) -> str | None:
        """``start`` on the response opening a list, ``Complete`` on the event closing it."""
        value = self.get("EventList")
        return value.lower() if value is not None else None


class Response(Message):
    """A reply to an action (``Response: Success|Error|Goodbye|Follows``)."""

    @property
    def status(self) -> str:
        return self.get("Response", "") or ""

    @property
    def ok(self) -> bool:
        return self.status.lower() in ("success", "goodbye", "follows")

    @property
    def message(self) -> str:
        return self.get("Message", "") or ""

    @property
    def output(self) -> list[str]:
        """The ``Output:`` lines of a ``Command`` response."""
        return self.get_all("Output")


class Event(Message):
    """An event (``Event: Name``), unsolicited or an item of a list action's reply."""

    @property
    def name(self) -> str:
        return self.get("Event", "") or ""


def _classify(headers: tuple[tuple[str, str], ...]) -> Message:
    first = headers[0][0].lower() if headers else ""
    if first == "response":
        return Response(headers)
    if first == "event":
        return Event(headers)
    return Message(headers)


class Parser:
    """Incremental decoder: feed it bytes as they arrive, get complete messages back."""

    def __init__(self, *, expect_banner: bool = True) -> None:
        self._buffer = b""
        self._lines: list[tuple[str, str]] = []
        self._expect_banner = expect_banner
        self.banner: str | None = None

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return messages
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            # Asterisk sends CRLF; a bare LF is accepted too (hand-written test servers).
            line = raw.removesuffix(b"\r").decode("utf-8", errors="replace")
            if self._expect_banner:
                self._expect_banner = False
                if line.startswith(BANNER_PREFIX):
                    self.banner = line
                    continue
            if line == "":
                if self._lines:
                    messages.append(_classify(tuple(self._lines)))
                    self._lines = []
                continue
            key, sep, value = line.partition(":")
            if not sep or " " in key.strip():
                # raw output of a legacy "Response: Follows" (not a "Key: value" line)
                if line != _LEGACY_END:
                    self._lines.append(("Output", line))
                continue
            self._lines.append((key.strip(), value.removeprefix(" ")))

    @property
    def pending(self) -> bool:
        """True while a message has started but not ended (useful at EOF)."""
        return bool(self._lines or self._buffer)


def _values(value: ActionValue) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, str | int | float):
        yield str(value)
    else:
        for item in value:
            yield str(item)


def encode(action: Mapping[str, ActionValue]) -> bytes:
    """Serialise an action. A list value repeats the key (``Variable``); None omits it.

    Values come partly from outside (a caller's number, a case id): a CR or LF in one would
    end the header early and let the rest be read as a second, forged action, so it is refused.
    """
    if not any(key.lower() == "action" for key in action):
        raise ProtocolError("an AMI action needs an 'Action' header")
    lines = []
    for key, value in action.items():
        if not key or any(c in key for c in ":\r\n") or key != key.strip():
            raise ProtocolError(f"bad AMI header name {key!r}")
        for item in _values(value):
            if "\r" in item or "\n" in item:
                raise ProtocolError(f"line break in the value of AMI header {key!r}")
            lines.append(f"{key}: {item}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8")
