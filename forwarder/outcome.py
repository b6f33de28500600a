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
import math
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
    retry_after: float | None = None  # seconds the receiver asked us to wait (clamped)
    #: where a 3xx pointed; never followed (a signed body must not go elsewhere)
    redirect: str | None = None


@dataclass(frozen=True)
class Dead:
    reason: str


Outcome = Delivered | Retry | Dead

#: the one acknowledgement (it has no fields: not a new object per record)
DELIVERED = Delivered()


def acknowledged_by_status(status: int, cfg: ResponseConfig) -> bool:
    """A 2xx is the acknowledgement, whatever the body says, when the profile expects no
    code in it: the body need not even be decoded (issue 13: thousands a second)."""
    return 200 <= status < 300 and not cfg.code_field


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


def retry_after_seconds(
    value: str | None, now: dt.datetime | None = None, cap: float | None = None
) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date (RFC 9110 10.2.3), at most ``cap``:
    a receiver's word is obeyed only within our own longest backoff (issue 8, defect 1: a
    12-digit value overflowed ``timedelta``, a huge one paused every send for days)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        # compared as text length first: int() of a 10,000-digit header is slow for nothing
        seconds = float("inf") if len(value) > 12 else float(int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = max(0.0, (when - (now or utcnow())).total_seconds())
    return seconds if cap is None else min(seconds, cap)


def _is_duplicate(status: int, code: str | None, message: str, cfg: ResponseConfig) -> bool:
    """The receiver says it already has this record (a resend whose first answer we missed):
    that is an acknowledgement (issue 8, defect 14), as the profile declares it."""
    if status in cfg.duplicate_statuses:
        return True
    if code is not None and code in cfg.duplicate_codes:
        return True
    return bool(message) and any(m in message for m in cfg.duplicate_messages)


def _code_and_message(body: str, cfg: ResponseConfig) -> tuple[str | None, str, bool]:
    """(code, message, readable) from a JSON answer, by the profile's dotted paths."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, "", False
    code = _dig(data, cfg.code_field) if cfg.code_field else None
    message = _dig(data, cfg.message_field) if cfg.message_field else None
    return (
        None if code is None else str(code),
        "" if message is None else str(message),
        True,
    )


def classify(
    status: int,
    headers: Mapping[str, str],
    body: str,
    cfg: ResponseConfig,
    retry_after_cap: float | None = None,
) -> Outcome:
    if acknowledged_by_status(status, cfg):
        # the acknowledgement, whatever the body says (a "duplicate" one too): not parsed,
        # at thousands of answers a second (issue 13)
        return DELIVERED
    code, message, readable = _code_and_message(body, cfg)
    ok = 200 <= status < 300
    if ok and code is not None and code in cfg.ok_codes:
        return DELIVERED  # the usual answer: no need to look for a duplicate's words
    if _is_duplicate(status, code, message, cfg):
        return DELIVERED
    if ok:
        if not readable:
            # no readable code: not an acknowledgement, but nothing says the record is bad
            return Retry(_reason(status, "answer without a readable code: " + body, cfg))
        code = code or ""
        if code in cfg.ok_codes:
            return DELIVERED
        if code in cfg.retry_codes:
            return Retry(_reason(status, body, cfg))
        return Dead(_reason(status, body, cfg) + f" (code {code})")
    if 300 <= status < 400:
        # never followed (issue 8, defect 2): a 301/302 would turn into a body-less GET whose
        # 200 is no acknowledgement, a 307/308 would re-post the signed record, which may
        # carry the evaluator's identity, to any host. A failure: someone must fix the setting.
        return Retry(_reason(status, "", cfg), redirect=redact(headers.get("Location", "")) or None)
    retry_after = retry_after_seconds(headers.get("Retry-After"), cap=retry_after_cap)
    if status in (408, 429) or status >= 500:
        return Retry(_reason(status, body, cfg), retry_after)
    if 400 <= status < 500:
        return Dead(_reason(status, body, cfg))
    return Retry(_reason(status, body, cfg))  # 1xx: not an answer at all


def backoff(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before the next attempt after ``failures`` consecutive failures: exponential,
    capped, with "equal jitter" (half fixed, half random) so that records failing together
    do not come back together. The exponent is bounded before it is used: ``2**1024`` as a
    float overflowed after ~1,025 failures, a long holiday's outage (issue 8, defect 1)."""
    rng = rng or random.Random()
    # the smallest n with base * 2**n >= cap; beyond it the cap holds anyway
    limit = 0 if base >= cap else math.ceil(math.log2(cap / base))
    exponent = min(max(0, failures - 1), limit)
    delay = min(cap, base * 2.0**exponent)
    return delay / 2 + rng.uniform(0, delay / 2)
