"""Structured logging: one JSON object a line, with anything that looks like a phone number
or an identity number masked before it is written (DOMAIN.md rule 8)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

from hotline.privacy import mask_number

# What a citizen's number looks like in text, however it is written (DOMAIN.md rule 8). Digits
# may be grouped by dashes or spaces; a letter, ``_`` or CJK text may touch the number
# (``电话13812345678``, ``tel_13812345678``); a ``.`` may follow it. Only another digit must
# not touch it: a longer run of digits is something else (a millisecond timestamp).
_SEP = r"[- ]?"
_PATTERNS = [
    # 18-character identity numbers (身份证号)
    r"(?P<id>(?<!\d)\d{17}[\dXx](?![\dA-Za-z]))",
    # mobiles: 1[3-9]x xxxx xxxx, with or without +86 / 0086
    r"(?P<mobile>(?<!\d)(?:(?:\+|00)?86" + _SEP + r")?1[3-9]\d" + _SEP + r"\d{4}" + _SEP
    + r"\d{4}(?!\d))",
    # landlines with an area code: 0xx(x)-xxxxxxx(x), also written (0xx) xxxx-xxxx
    r"(?P<landline>(?<!\d)(?:\(0[1-9]\d{1,2}\)\s?|0[1-9]\d{1,2}" + _SEP + r")\d{3,4}" + _SEP
    + r"\d{4}(?!\d))",
    # local landlines (7–8 digits, no area code). A weaker signal than the others, so only
    # where no letter, digit or dash touches it: ``GD-2026-0042`` is a case number.
    r"(?P<local>(?<![\dA-Za-z-])[2-9]\d{2,3}[- ]?\d{4}(?![\dA-Za-z-]))",
    # any other number written in international form
    r"(?P<intl>\+\d{8,15}(?!\d))",
]
_SENSITIVE = re.compile("|".join(_PATTERNS))


def redact(text: str) -> str:
    """``text`` with every phone or identity number masked."""

    def _mask(m: re.Match[str]) -> str:
        if m.group("id") is not None:
            return "[id]"
        return mask_number(m.group(0))

    return _SENSITIVE.sub(_mask, text)


def scrub(value: Any) -> Any:
    """``value`` with numbers masked at any depth: strings, mappings (header multidicts),
    lists, and integers long enough to be a number; anything else as its redacted text."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int):
        masked = redact(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, Mapping):
        return {redact(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v) for v in value]
    return redact(str(value))


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
                entry[key] = scrub(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={scrub(v)}"
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
