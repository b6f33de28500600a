"""Structured logging: one JSON object a line, with anything that looks like a phone number
or an identity number masked before it is written (DOMAIN.md rule 8)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import Any

# 7+ digit runs (phone numbers) and 18-character identity numbers.
_SENSITIVE = re.compile(r"(?<![\w.])(\+?\d{3})\d{3,}(\d{4})(?![\w.])|\b\d{17}[\dXx]\b")


def redact(text: str) -> str:
    def _mask(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return "[id]"
        return f"{m.group(1)}****{m.group(2)}"

    return _SENSITIVE.sub(_mask, text)


_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        )
        base = super().format(record)
        return redact(f"{base} {extras}".rstrip())


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the moment: a stream captured at configure
    time may be closed later (test runners, daemonising), and logging would then fail."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def resolve_format(fmt: str, stream: Any = None) -> str:
    """``auto``: readable lines for a person at a terminal, JSON for a log collector."""
    if fmt != "auto":
        return fmt
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(level: str = "INFO", fmt: str = "json") -> None:
    fmt = resolve_format(fmt)
    handler = StderrHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
