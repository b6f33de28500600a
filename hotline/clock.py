"""Time: stored in UTC, shown in Beijing time (setting ``timezone``)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")
PUSH_FORMAT = "%Y-%m-%d %H:%M:%S"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def local_today(tz: ZoneInfo = BEIJING) -> dt.date:
    """Today's date in ``tz``. Read through this module (``clock.local_today``), so a test can
    move the service to another day by replacing :func:`utcnow` here."""
    return utcnow().astimezone(tz).date()


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def to_local(value: dt.datetime, tz: ZoneInfo = BEIJING) -> dt.datetime:
    return as_utc(value).astimezone(tz)


def format_local(value: dt.datetime, tz: ZoneInfo = BEIJING) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time, as the push interfaces want."""
    return to_local(value, tz).strftime(PUSH_FORMAT)
