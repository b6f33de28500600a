"""`hotline serve` logs text on a terminal and JSON otherwise (log_format auto); the 工作台
row and scope (its arithmetic is the reports engine's, tested in tests/unit/test_reports*)."""

from __future__ import annotations

import io

from console.dashboard import pick, view_of
from hotline.logs import resolve_format
from http_api.tokens import Principal
from reports.figures import COUNT_KEYS


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_log_format_follows_the_terminal() -> None:
    assert resolve_format("auto", _Tty()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", _Tty()) == "json"


def test_dashboard_view_follows_the_viewers_scope() -> None:
    """DOMAIN.md rule 8 / issue 12: a department its own figures, an agent its own 工号."""
    dept = view_of(Principal(1, "zj", "department", frozenset({"D1"})))
    assert (dept.grouping, dept.key, dept.departments) == ("total", None, frozenset({"D1"}))
    agent = view_of(Principal(2, "a", "agent", agent_id="A7"))
    assert (agent.grouping, agent.key, agent.departments) == ("agent", "A7", None)
    assert view_of(Principal(3, "s", "supervisor")).departments is None


def test_dashboard_figures_of_a_row_the_engine_did_not_find_are_zero_not_missing() -> None:
    """An agent with no calls today: counts 0, rates "—" (reports.figures: never 0 % or 100 %
    over nothing)."""
    out = pick({"A1": {**dict.fromkeys(COUNT_KEYS, 0), "real": 4, "good": 3, "bad": 1}},
               view_of(Principal(2, "a", "agent", agent_id="A9")))
    assert out["bad_count"] == 0 and out["served"] == 0
    assert out["good_rate"] is None
    mine = pick({"A1": {**dict.fromkeys(COUNT_KEYS, 0), "real": 4, "good": 3, "bad": 1}},
                view_of(Principal(2, "a", "agent", agent_id="A1")))
    assert mine["good_rate"] == 0.75 and mine["bad_count"] == 1
