"""bench/report_speed.py runs end to end at a tiny size (the full size is run by hand; its
figures are in the README), and its monthly query reads the report index (migration 0007)."""

from __future__ import annotations

import pytest

from bench import report_speed
from tests.conftest import PG, missing

pytestmark = pytest.mark.postgres


async def test_report_bench_at_2000_ratings(capsys: pytest.CaptureFixture[str]) -> None:
    if not await PG.reachable():
        missing("PostgreSQL at 127.0.0.1:5432")
    figures = await report_speed.bench(2000, keep=False, admin=PG)
    out = capsys.readouterr().out
    assert "monthly department report" in out and "yearly department report" in out
    assert figures["month"] > 0 and figures["year"] > 0
