"""What a receiver's answer means for a record: delivered, try again later, or dead-letter.

Only an explicit acknowledgement counts as delivered (a 2xx, and the success code when the
profile expects one in the body). 408, 429 and 5xx, timeouts and connection errors are
transient. Any other 4xx — and a 2xx whose body code says the record is invalid — means the
receiver refused this record as it is: retrying would not help, so it goes to dead-letter
with the receiver's reason until someone fixes the cause and re-queues it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hotline.clock import utcnow
from hotline.logs import redact

from .profile import ResponseConfig

REASON_CHARS = 500


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Retry:
    error: str
    retry_after: float | None = None  # seconds the receiver asked us to wait


@dataclass(frozen=True)
class Dead:
    reason: str


Outcome = Delivered | Retry | Dead


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _reason(status: int, body: str, cfg: ResponseConfig) -> str:
    """The receiver's own words, shortened and with anything like a phone or identity
    number masked (an error page may echo the record)."""
    text = body.strip()
    try:
        message = _dig(json.loads(text), cfg.message_field) if cfg.message_field else None
    except ValueError:
        message = None
    if message not in (None, ""):
        text = str(message)
    text = " ".join(text.split())[:REASON_CHARS]
    return redact(f"HTTP {status}: {text}" if text else f"HTTP {status}")


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or utcnow())).total_seconds())


def classify(
    status: int, headers: Mapping[str, str], body: str, cfg: ResponseConfig
) -> Outcome:
    if status in cfg.duplicate_statuses:
        return Delivered()
    if 200 <= status < 300:
        if not cfg.code_field:
            return Delivered()
        try:
            code = _dig(json.loads(body), cfg.code_field)
        except ValueError:
            # no readable code: not an acknowledgement, but nothing says the record is bad
            return Retry(_reason(status, "answer without a readable code: " + body, cfg))
        code = "" if code is None else str(code)
        if code in cfg.ok_codes:
            return Delivered()
        if code in cfg.retry_codes:
            return Retry(_reason(status, body, cfg))
        return Dead(_reason(status, body, cfg) + f" (code {code})")
    retry_after = retry_after_seconds(headers.get("Retry-After"))
    if status in (408, 429) or status >= 500:
        return Retry(_reason(status, body, cfg), retry_after)
    if 400 <= status < 500:
        return Dead(_reason(status, body, cfg))
    # 1xx/3xx: redirects are not followed for a signed POST; try later, someone must look
    return Retry(_reason(status, body, cfg))


def backoff(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before the next attempt after ``failures`` consecutive failures: exponential,
    capped, with "equal jitter" (half fixed, half random) so that records failing together
    do not come back together."""
    rng = rng or random.Random()
    delay = min(cap, base * 2 ** max(0, failures - 1))
    return delay / 2 + rng.uniform(0, delay / 2)
