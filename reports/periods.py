"""Report periods: Beijing calendar dates (setting ``timezone``), turned into UTC bounds once.

Statistics are published by the local calendar: a rating at 23:30 UTC on 31 October is on
1 November in Beijing and belongs to November's figures. Every period is a closed range of
local dates; its UTC bounds ``[start, end)`` are what the queries compare stored times with,
so the comparison stays a plain index range scan.

Accepted spellings (``parse``): ``2026`` (year), ``2026-H1`` / ``2026-H2`` (half-year),
``2026-Q4`` (quarter), ``2026-10`` (month), ``2026-W41`` (ISO week), ``2026-10-05`` (day),
``2026-10-01..2026-10-15`` (any range), and relative names such as ``this-month``,
``last-month``, ``today``, ``yesterday``, ``this-week``, ``last-quarter``, ``this-half``,
``last-year``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

Kind = Literal["day", "week", "month", "quarter", "half", "year", "range"]

KIND_LABELS: dict[str, str] = {
    "day": "日",
    "week": "周",
    "month": "月度",
    "quarter": "季度",
    "half": "半年度",
    "year": "年度",
    "range": "期间",
}


class PeriodError(ValueError):
    """A period spelling that cannot be understood; the message shows the accepted forms."""


@dataclass(frozen=True)
class Period:
    kind: Kind
    start: dt.date  # first local date, inclusive
    end: dt.date  # last local date, inclusive

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(f"period ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bounds(self, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        """``[start, end)`` in UTC: local midnight of the first day to local midnight after
        the last day."""
        start = dt.datetime.combine(self.start, dt.time(), tzinfo=tz)
        end = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), tzinfo=tz)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)

    @property
    def code(self) -> str:
        """The spelling ``parse`` reads back (stable: used in file names and the API)."""
        s = self.start
        if self.kind == "day":
            return s.isoformat()
        if self.kind == "week":
            year, week, _ = s.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind == "month":
            return f"{s.year}-{s.month:02d}"
        if self.kind == "quarter":
            return f"{s.year}-Q{(s.month - 1) // 3 + 1}"
        if self.kind == "half":
            return f"{s.year}-H{1 if s.month <= 6 else 2}"
        if self.kind == "year":
            return str(s.year)
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    @property
    def label(self) -> str:
        """The period as a Chinese document names it: 2026年10月, 2026年上半年 …"""
        s, e = self.start, self.end
        if self.kind == "day":
            return f"{s.year}年{s.month}月{s.day}日"
        if self.kind == "week":
            year, week, _ = s.isocalendar()
            return f"{year}年第{week}周（{s.month}月{s.day}日—{e.month}月{e.day}日）"
        if self.kind == "month":
            return f"{s.year}年{s.month}月"
        if self.kind == "quarter":
            return f"{s.year}年第{(s.month - 1) // 3 + 1}季度"
        if self.kind == "half":
            return f"{s.year}年{'上' if s.month <= 6 else '下'}半年"
        if self.kind == "year":
            return f"{s.year}年"
        return f"{s.year}年{s.month}月{s.day}日至{e.year}年{e.month}月{e.day}日"

    def previous(self) -> Period:
        """The period of the same kind just before (for consecutive-period flags and trends);
        a range gives the range of the same length ending the day before it starts."""
        before = self.start - dt.timedelta(days=1)
        if self.kind == "range":
            return Period("range", self.start - dt.timedelta(days=self.days), before)
        return containing(self.kind, before)

    def history(self, count: int) -> list[Period]:
        """This period and the ``count - 1`` before it, oldest first."""
        periods = [self]
        while len(periods) < count:
            periods.append(periods[-1].previous())
        return list(reversed(periods))


def _month_end(year: int, month: int) -> dt.date:
    if month == 12:
        return dt.date(year, 12, 31)
    return dt.date(year, month + 1, 1) - dt.timedelta(days=1)


def containing(kind: Kind, day: dt.date) -> Period:
    """The period of ``kind`` that contains the local date ``day``."""
    if kind == "day":
        return Period("day", day, day)
    if kind == "week":
        start = day - dt.timedelta(days=day.weekday())
        return Period("week", start, start + dt.timedelta(days=6))
    if kind == "month":
        return Period("month", day.replace(day=1), _month_end(day.year, day.month))
    if kind == "quarter":
        first = (day.month - 1) // 3 * 3 + 1
        return Period("quarter", dt.date(day.year, first, 1), _month_end(day.year, first + 2))
    if kind == "half":
        first = 1 if day.month <= 6 else 7
        return Period("half", dt.date(day.year, first, 1), _month_end(day.year, first + 5))
    if kind == "year":
        return Period("year", dt.date(day.year, 1, 1), dt.date(day.year, 12, 31))
    raise PeriodError(f"no period of kind {kind!r} contains a date")


_RELATIVE = re.compile(r"^(this|last)-(week|month|quarter|half|year)$")
_FORMS = (
    "2026, 2026-H1, 2026-Q4, 2026-10, 2026-W41, 2026-10-05, 2026-10-01..2026-10-15, "
    "today, yesterday, this-month, last-month (also week, quarter, half, year)"
)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise PeriodError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def parse(text: str, today: dt.date) -> Period:
    """The period a user wrote; ``today`` is the local date relative names count from."""
    text = text.strip()
    try:
        if text == "today":
            return containing("day", today)
        if text == "yesterday":
            return containing("day", today - dt.timedelta(days=1))
        m = _RELATIVE.match(text)
        if m:
            kind: Kind = m[2]  # type: ignore[assignment]
            here = containing(kind, today)
            return here if m[1] == "this" else here.previous()
        if ".." in text:
            first, _, last = text.partition("..")
            return Period("range", _date(first), _date(last))
        if re.fullmatch(r"\d{4}", text):
            return containing("year", dt.date(int(text), 1, 1))
        if m := re.fullmatch(r"(\d{4})-H([12])", text):
            return containing("half", dt.date(int(m[1]), 1 if m[2] == "1" else 7, 1))
        if m := re.fullmatch(r"(\d{4})-Q([1-4])", text):
            return containing("quarter", dt.date(int(m[1]), (int(m[2]) - 1) * 3 + 1, 1))
        if m := re.fullmatch(r"(\d{4})-W(\d{2})", text):
            return containing("week", dt.date.fromisocalendar(int(m[1]), int(m[2]), 1))
        if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
            return containing("month", dt.date(int(m[1]), int(m[2]), 1))
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return containing("day", _date(text))
    except ValueError as exc:  # month 13, week 60 ...
        if isinstance(exc, PeriodError):
            raise
        raise PeriodError(f"period {text!r}: {exc}") from exc
    raise PeriodError(f"period {text!r} not understood; use one of: {_FORMS}")
