"""`hotline serve` logs text on a terminal and JSON otherwise (log_format auto); the 工作台
figures' arithmetic on a hand-made set (DOMAIN.md rules 2 and 6: defaults and invalid ratings
are counted apart from real votes)."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

from console.dashboard import tally
from hotline.logs import resolve_format

BJ = ZoneInfo("Asia/Shanghai")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_log_format_follows_the_terminal() -> None:
    assert resolve_format("auto", _Tty()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", _Tty()) == "json"


def test_dashboard_figures_leave_defaults_and_invalid_ratings_out() -> None:
    today = dt.date(2026, 11, 30)
    # 23:30 UTC on the 29th is the 30th in Beijing: it belongs to today
    at = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)
    rows = [(at, 1, "keypad", True), (at, 2, "keypad", True), (at, 3, "keypad", True),
            (at, 5, "keypad", True), (at, 3, "default", True), (at, 5, "keypad", False),
            (dt.datetime(2026, 10, 31, 1, 0, tzinfo=dt.UTC), 4, "keypad", True)]
    out = tally(rows, today, BJ)
    assert (out.today.rated, out.today.votes, out.today.defaults, out.today.invalid) == (
        6, 4, 1, 1)
    assert out.today.good_rate == 2 / 4 and out.today.satisfied_rate == 3 / 4
    assert out.today.bad == 1 and out.month.bad == 1
    assert (out.last_month.votes, out.last_month.bad) == (1, 1)
    assert out.trend[-1].date == today and out.trend[-1].votes == 4
    assert len(out.trend) == 14
