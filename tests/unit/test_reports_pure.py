"""The pure parts of reports/: periods in Beijing dates, ranking order and ties, agent scores,
the participation funnel, and the README's figure definitions (one place for each fact)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from hotline.settings import PROJECT_ROOT
from reports import figures
from reports.funnel import HANDOFF_LOW, RATED_LOW, funnel
from reports.periods import Period, PeriodError, parse
from reports.ranking import consecutive_bottom, rank
from reports.scores import score_agents

BJ = ZoneInfo("Asia/Shanghai")
TODAY = dt.date(2026, 11, 5)


@pytest.mark.parametrize(("text", "kind", "start", "end"), [
    ("2026", "year", "2026-01-01", "2026-12-31"),
    ("2026-H1", "half", "2026-01-01", "2026-06-30"),
    ("2026-Q4", "quarter", "2026-10-01", "2026-12-31"),
    ("2026-02", "month", "2026-02-01", "2026-02-28"),
    ("2026-W41", "week", "2026-10-05", "2026-10-11"),
    ("2026-10-05", "day", "2026-10-05", "2026-10-05"),
    ("2026-10-01..2026-10-15", "range", "2026-10-01", "2026-10-15"),
    ("this-month", "month", "2026-11-01", "2026-11-30"),
    ("last-month", "month", "2026-10-01", "2026-10-31"),
    ("last-half", "half", "2026-01-01", "2026-06-30"),
    ("yesterday", "day", "2026-11-04", "2026-11-04"),
])
def test_period_spellings(text: str, kind: str, start: str, end: str) -> None:
    p = parse(text, TODAY)
    assert (p.kind, p.start.isoformat(), p.end.isoformat()) == (kind, start, end)
    if kind != "range" and not text.startswith(("this", "last", "yester")):
        assert p.code == text


def test_bounds_are_beijing_midnights() -> None:
    start, end = parse("2026-10", TODAY).bounds(BJ)
    assert start == dt.datetime(2026, 9, 30, 16, 0, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 10, 31, 16, 0, tzinfo=dt.UTC)
    # 23:30 UTC on 31 October is 07:30 on 1 November in Beijing: outside October
    assert not start <= dt.datetime(2026, 10, 31, 23, 30, tzinfo=dt.UTC) < end


def test_previous_periods() -> None:
    assert parse("2026-01", TODAY).previous().code == "2025-12"
    assert parse("2026-H1", TODAY).previous().code == "2025-H2"
    assert [p.code for p in parse("2026-Q1", TODAY).history(3)] == [
        "2025-Q3", "2025-Q4", "2026-Q1"]
    r = Period("range", dt.date(2026, 10, 11), dt.date(2026, 10, 20)).previous()
    assert (r.start, r.end) == (dt.date(2026, 10, 1), dt.date(2026, 10, 10))


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "soon", "2026-10-31..2026-10-01"])
def test_bad_periods(text: str) -> None:
    with pytest.raises(PeriodError):
        parse(text, TODAY)


ORDER = ["satisfaction_rate", "bad_rate", "on_time_rectification_rate"]


def test_ties_broken_by_bad_rate_then_on_time_rectification() -> None:
    """DOMAIN.md rule 7 / issue 11 default: 满意率, then 差评率 (lower is better), then
    按期整改率."""
    rows = {
        "A": {"real": 10, "satisfaction_rate": 0.9, "bad_rate": 0.1,
              "on_time_rectification_rate": 0.5},
        "B": {"real": 10, "satisfaction_rate": 0.9, "bad_rate": 0.05,
              "on_time_rectification_rate": 0.1},
        "C": {"real": 10, "satisfaction_rate": 0.9, "bad_rate": 0.1,
              "on_time_rectification_rate": 1.0},
        "D": {"real": 10, "satisfaction_rate": 0.9, "bad_rate": 0.1,
              "on_time_rectification_rate": 1.0},
        "E": {"real": 0, "satisfaction_rate": None, "bad_rate": None},
    }
    ranked = rank(rows, order=ORDER, min_votes=1, praise_count=1, bottom_count=1)
    # B best (lowest 差评率); C and D equal on every key share rank 2; A is 4th (last:
    # the bottom); E has no votes: unranked
    assert [(r.key, r.rank) for r in ranked] == [
        ("B", 1), ("C", 2), ("D", 2), ("A", 4), ("E", None)]
    assert [r.key for r in ranked if r.praised] == ["B"]
    assert [r.key for r in ranked if r.bottom] == ["A"]


def test_unknown_figure_sorts_last() -> None:
    rows = {"A": {"real": 5, "satisfaction_rate": 0.5, "bad_rate": 0.5,
                  "on_time_rectification_rate": None},
            "B": {"real": 5, "satisfaction_rate": 0.5, "bad_rate": 0.5,
                  "on_time_rectification_rate": 0.0}}
    ranked = rank(rows, order=ORDER, min_votes=1, praise_count=0, bottom_count=3)
    assert [r.key for r in ranked] == ["B", "A"]


def test_consecutive_bottom() -> None:
    assert consecutive_bottom([{"a", "b"}, {"b", "c"}], 2) == {"b"}
    assert consecutive_bottom([{"a", "b"}, {"b", "c"}, {"c"}], 2) == {"c"}
    assert consecutive_bottom([{"b"}], 2) == set()  # not enough history


def test_agent_scores_with_other_parts() -> None:
    rows = {"A1": {"real": 30, "satisfaction_rate": 0.9},
            "A2": {"real": 30, "satisfaction_rate": 1.0},
            "A3": {"real": 2, "satisfaction_rate": 1.0}}
    scores = score_agents(
        rows, satisfaction_weight=0.2, other_parts={"业务质检": 0.8}, min_votes=20,
        part_scores={"A1": {"业务质检": 100.0}, "A2": {"业务质检": 80.0}},
    )
    # A1: 0.2 × 90 + 0.8 × 100 = 98; A2: 0.2 × 100 + 0.8 × 80 = 84; A3: 2 votes, unranked
    assert [(s.agent_id, s.rank, s.total) for s in scores] == [
        ("A1", 1, 98.0), ("A2", 2, 84.0), ("A3", None, None)]


def test_funnel_flags_an_agent_who_hands_over_few_callers() -> None:
    counts = {
        "A1": {"served": 100, "handed": 90, "keypad": 60, "keypad_bad": 6},
        "A2": {"served": 100, "handed": 80, "keypad": 50, "keypad_bad": 5},
        "A3": {"served": 100, "handed": 30, "keypad": 28, "keypad_bad": 0},  # cherry-picks
        "A4": {"served": 5, "handed": 0, "keypad": 0, "keypad_bad": 0},  # too few calls
    }
    f = funnel(counts, ratio=0.5, min_served=20)
    # team median hand-off share of A1 A2 A3 = 0.8; A3's 0.3 < 0.5 × 0.8; rated share median
    # 0.5, A3's 0.28 ≥ 0.25 (not flagged for that)
    assert f.median_handoff_share == pytest.approx(0.8)
    flags = {r.key: r.flags for r in f.rows}
    assert flags == {"A1": [], "A2": [], "A3": [HANDOFF_LOW], "A4": []}
    assert RATED_LOW not in flags["A3"]


def test_readme_carries_the_figure_definitions() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert figures.markdown_table() in readme, "regenerate: reports.figures.markdown_table()"
