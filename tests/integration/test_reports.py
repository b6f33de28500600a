"""The 通报 figures, ranking flags, agent scores and documents on the real databases (SQLite and
PostgreSQL), on the hand-built data set of tests/reports_data.py. Every expected number is
worked out by hand below (DOMAIN.md rules 2, 4–7; seeds 000, 001, 004), not by the code under
test."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook

from reports import export_csv, export_pdf, export_xlsx, tables
from reports.build import Scope, build_report
from reports.periods import parse
from service.context import AppContext
from storage.models import Rating, RatingKind, RatingSource
from tests import reports_data as data
from tests.conftest import make_settings

TODAY = dt.date(2026, 11, 5)
OCT = parse("2026-10", TODAY)
NOV = parse("2026-11", TODAY)


@pytest.fixture
async def filled(ctx: AppContext) -> AppContext:
    async with ctx.db.transaction() as session:
        await data.fill(session)
    return ctx


async def report(ctx: AppContext, period=OCT, grouping="department", **kw):  # type: ignore[no-untyped-def]
    async with ctx.db.sessions() as session:
        return await build_report(session, ctx.settings, period, grouping, now=data.NOW, **kw)


def rows(rep) -> dict:  # type: ignore[no-untyped-def]
    return {r.key: r.values for r in rep.rows}


async def test_rating_figures_per_department(filled: AppContext) -> None:
    rep = await report(filled)
    d1, d2 = rows(rep)[data.D1], rows(rep)[data.D2]
    # D1: served c1..c5 (the abandoned call is not served) = 5; valid ratings r1 r2 r3 r4 r6
    # = 5 (r5 invalid left out); 一次一评 valid r1 r2 r3 r4 = 4 → 评价率 4/5; real 一次一评
    # r1 r2 r3 = 3 → 主动评价率 3/5; real votes r1 r2 r3 r6 = 4: good r1 r2 = 2/4, satisfied
    # r1 r2 r6 = 3/4, bad r3 = 1/4; default r4 counted apart; r5 counted as invalid
    assert d1["served"] == 5 and d1["rated"] == 5
    assert d1["rating_rate"] == pytest.approx(4 / 5)
    assert d1["active_rating_rate"] == pytest.approx(3 / 5)
    assert d1["defaults"] == 1 and d1["real"] == 4 and d1["invalid"] == 1
    assert d1["good_rate"] == pytest.approx(2 / 4)
    assert d1["satisfaction_rate"] == pytest.approx(3 / 4)
    assert d1["bad_count"] == 1 and d1["bad_rate"] == pytest.approx(1 / 4)
    # D2: r9 (2026-09-30 17:00 UTC = 10月1日 Beijing) is October's; r8 (10-31 23:30 UTC =
    # 11月1日 Beijing) is not: r7 基本满意, r9 and r10 不满意 → satisfied 1/3, bad 2/3
    assert d2["served"] == 3 and d2["rated"] == 3 and d2["real"] == 3
    assert d2["satisfaction_rate"] == pytest.approx(1 / 3)
    assert d2["bad_count"] == 2 and d2["bad_rate"] == pytest.approx(2 / 3)
    # totals: served 8, valid ratings 8, real 7, satisfied 4, bad 3
    t = rep.total.values
    assert (t["served"], t["rated"], t["real"], t["bad_count"]) == (8, 8, 7, 3)
    assert t["satisfaction_rate"] == pytest.approx(4 / 7)


async def test_a_rating_at_2330_utc_on_the_last_day_belongs_to_the_next_beijing_day(
    filled: AppContext,
) -> None:
    nov = rows(await report(filled, NOV))
    assert nov[data.D2]["bad_count"] == 1  # r8 only
    day = rows(await report(filled, parse("2026-11-01", TODAY)))
    assert day[data.D2]["bad_count"] == 1
    last = rows(await report(filled, parse("2026-10-31", TODAY)))
    assert data.D2 not in last


async def test_loop_figures(filled: AppContext) -> None:
    v = rows(await report(filled))
    d1, d2 = v[data.D1], v[data.D2]
    # D1: item 1 (two 整改 rounds, rectified 10-24 for due 10-25, 回访 10-26 满意) counts once,
    # by its latest round; item 2 was set aside on 复核: out of every figure but 复核改判数
    assert d1["verification_rate"] == 1.0 and d1["rectification_rate"] == 1.0
    assert d1["on_time_rectification_rate"] == 1.0 and d1["reply_rate"] == 1.0
    assert d1["overdue"] == 0 and d1["callback_rate"] == 1.0
    assert d1["rectification_satisfaction_rate"] == 1.0
    assert d1["appeals"] == 0 and d1["review_changed"] == 1
    # D2: item 3 still 整改中 past 10-20 (overdue), item 4 rectified 10-29 for due 10-27 (late,
    # overdue), no 回访 yet; one 申诉 on item 3
    assert d2["verification_rate"] == 1.0
    assert d2["rectification_rate"] == pytest.approx(1 / 2)
    assert d2["on_time_rectification_rate"] == 0.0
    assert d2["reply_rate"] == pytest.approx(1 / 2)
    assert d2["overdue"] == 2
    assert d2["callback_rate"] == 0.0
    assert d2["rectification_satisfaction_rate"] is None  # nobody called back: no ratio
    assert d2["appeals"] == 1 and d2["review_changed"] == 0


async def test_groupings_agent_queue_channel(filled: AppContext) -> None:
    agents = rows(await report(filled, grouping="agent"))
    # A1: real keypad r1 r2 r3 (r6 has no agent) → satisfied 2/3; served 5, handed 4
    assert agents["A1"]["real"] == 3
    assert agents["A1"]["satisfaction_rate"] == pytest.approx(2 / 3)
    assert agents["A1"]["served"] == 5
    queues = rows(await report(filled, grouping="queue"))
    assert queues["hotline"]["rated"] == 4  # r1 r2 r3 r4 (r6 has no call)
    assert queues["q2"]["bad_count"] == 2
    channels = rows(await report(filled, grouping="channel"))
    assert channels[RatingSource.DEFAULT]["defaults"] == 1
    assert channels[RatingSource.DEFAULT]["real"] == 0
    assert channels[RatingSource.CALLBACK]["satisfaction_rate"] == 1.0  # r6 基本满意
    assert channels[RatingSource.KEYPAD]["invalid"] == 1
    assert channels[RatingSource.KEYPAD]["served"] is None  # a call has no channel


async def test_reasons_ranked_per_department(filled: AppContext) -> None:
    rep = await report(filled)
    # D1: r3 gave 1 and 2 (r5's reason is out: invalid); D2: r9 "3", r10 "3,1"
    assert [(r.code, r.count) for r in rep.reasons[data.D1]] == [("1", 1), ("2", 1)]
    assert [(r.code, r.label, r.count) for r in rep.reasons[data.D2]] == [
        ("3", "办理结果", 2), ("1", "服务态度", 1)]


async def test_agent_ranking_needs_the_minimum_votes(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url=database_url, report_agent_min_votes=3)
    ctx = AppContext.create(settings)
    try:
        async with ctx.db.transaction() as session:
            await data.fill(session)
            # A3: one vote, 非常满意 — the best 满意率, but too few votes to be ranked
            session.add(Rating(project_no="P-A3", kind=RatingKind.PER_CALL,
                               source=RatingSource.KEYPAD, level=1, agent_id="A3",
                               department_code=data.D1, rated_at=data.t(6)))
        rep = await report(ctx)
        ranked = [(a.agent_id, a.rank, a.satisfaction_points) for a in rep.agents]
        # seed 000 weight 20 %: A1 0.2 × 66.67 = 13.33, A2 0.2 × 33.33 = 6.67
        assert ranked == [("A1", 1, 13.33), ("A2", 2, 6.67), ("A3", None, 20.0)]
    finally:
        await ctx.close()


async def test_a_department_sees_only_its_own_figures_and_rank(filled: AppContext) -> None:
    rep = await report(filled, scope=Scope(frozenset({data.D2})))
    assert [r.key for r in rep.rows] == [data.D2]
    assert rep.total is None
    assert [(r.key, r.rank) for r in rep.ranking] == [(data.D2, 2)]
    assert rep.ranked_count == 2
    assert set(rep.reasons) == {data.D2}
    assert {i.department_code for i in rep.ledger} == {data.D2}
    assert "本单位在 2 个部门中排名第 2 位" in "".join(tables.summary_lines(rep))


async def test_bottom_three_for_two_periods_is_flagged(
    tmp_path: Path, database_url: str
) -> None:
    """Seed 000: "对连续排名靠后 3 位的部门进行通报" with the default of 2 periods."""
    settings = make_settings(tmp_path, database_url=database_url, report_praise_count=1)
    ctx = AppContext.create(settings)
    # five votes per department; satisfied votes per department (the rest 不满意):
    # September E1 5, E2 4, E3 3, E4 2, E5 1 → bottom 3 (ranks 3–5): E3 E4 E5
    # October   E1 5, E3 4, E2 3, E4 2, E5 1 → bottom 3: E2 E4 E5
    # in the bottom both months: E4 and E5 (E3 and E2 only once)
    plan = {9: {"E1": 5, "E2": 4, "E3": 3, "E4": 2, "E5": 1},
            10: {"E1": 5, "E3": 4, "E2": 3, "E4": 2, "E5": 1}}
    try:
        async with ctx.db.transaction() as session:
            for month, good in plan.items():
                for dept, n in good.items():
                    for i in range(5):
                        session.add(Rating(
                            project_no=f"{dept}-{month}-{i}", kind=RatingKind.PER_CALL,
                            source=RatingSource.KEYPAD, level=2 if i < n else 4,
                            department_code=dept, rated_at=data.t(15, month=month)))
        rep = await report(ctx)
        got = {r.key: (r.rank, r.praised, r.bottom, r.flagged) for r in rep.ranking}
        assert got == {
            "E1": (1, True, False, False),
            "E3": (2, False, False, False),
            "E2": (3, False, True, False),
            "E4": (4, False, True, True),
            "E5": (5, False, True, True),
        }
    finally:
        await ctx.close()


async def test_xlsx_reopened_with_openpyxl(filled: AppContext) -> None:
    rep = await report(filled)
    book = load_workbook(io.BytesIO(export_xlsx.workbook(rep, [])))
    assert book.sheetnames == ["汇总", "统计汇总", "部门排名", "坐席考核", "参评漏斗",
                               "差评原因", "差评台账"]
    ranking = book["部门排名"]
    assert ranking.freeze_panes == "A2"
    assert [c.value for c in ranking[1]][:4] == ["排名", "部门", "部门编码", "满意率"]
    assert [c.value for c in ranking[2]][:3] == [1, "住建局", data.D1]
    assert ranking["D2"].value == pytest.approx(0.75)  # a value, not a formula
    assert ranking["D2"].number_format == "0.00%"
    assert ranking["D3"].value == pytest.approx(1 / 3)
    figures = book["统计汇总"]
    assert figures.freeze_panes == "A2"
    ledger = book["差评台账"]
    header = [c.value for c in ledger[1]]
    assert header[:3] == ["差评单号", "工单号", "责任单位"]
    # oldest first: item 3 (10月1日 01:00 Beijing) before the others
    first = [c.value for c in ledger[2]]
    assert first[2] == "人社局" and first[4] == dt.datetime(2026, 10, 1, 1, 0)
    assert first[header.index("状态")] == "整改中" and first[header.index("超期")] == "是"
    two_rounds = next(r for r in ledger.iter_rows(min_row=2, values_only=True) if r[17] == 2)
    assert two_rounds[header.index("回访满意度")] == "满意"
    assert two_rounds[header.index("状态")] == "办结"
    for sheet in book.worksheets:
        for row in sheet.iter_rows(values_only=True):
            assert not any(isinstance(v, str) and v.startswith("=") for v in row)


async def test_pdf_text_extracted_with_pdftotext(filled: AppContext, tmp_path: Path) -> None:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils, installed by scripts/setup) is missing")
    rep = await report(filled)
    pdf = tmp_path / "tongbao.pdf"
    pdf.write_bytes(export_pdf.document(rep))
    done = await asyncio.to_thread(
        subprocess.run, ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    text = done.stdout
    flat = "".join(text.split())
    assert "关于2026年10月12345热线“好差评”情况的通报" in flat
    assert "12345政务服务便民热线管理中心" in flat  # the issuing unit (setting)
    assert "满意率57.14%" in flat  # 4 / 7
    assert "差评3个" in flat
    assert "超期2件" in flat
    assert "住建局75.00%" in flat  # ranking table: rank 1
    assert "满意率趋势" in flat and "差评集中的事项" in flat


async def test_csv_of_the_ledger(filled: AppContext) -> None:
    rep = await report(filled)
    text = export_csv.to_csv(tables.ledger_table(rep)).decode("utf-8-sig")
    lines = text.splitlines()
    assert lines[0].startswith("差评单号,工单号,责任单位,工号,差评时间")
    assert len(lines) == 5  # header + four items
    assert ",人社局,A2,2026-10-01 01:00:00,不满意,3,属实," in lines[1]
