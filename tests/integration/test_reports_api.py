"""``getReport`` / ``exportReport`` over HTTP, a department's own view, the scheduled documents
and their webhook event, and ``hotline report`` on the terminal, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook
from sqlalchemy import select

from http_api.app import build_app
from http_api.tokens import create_token
from reports import documents
from reports.periods import Period
from service.context import AppContext
from storage.models import WebhookEvent
from tests import reports_data as data
from tests.conftest import make_settings

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(ctx: AppContext) -> AsyncIterator[Client]:
    async with ctx.db.transaction() as session:
        await data.fill(session)
    async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as c:
        yield c


async def _bearer(ctx: AppContext, role: str, departments: tuple[str, ...] = ()) -> dict:
    async with ctx.db.transaction() as session:
        _, secret = await create_token(session, name=role, role=role, departments=departments)
    return {"Authorization": f"Bearer {secret}"}


async def test_get_report_for_a_supervisor(client: Client, ctx: AppContext) -> None:
    headers = await _bearer(ctx, "supervisor")
    resp = await client.get("/api/v1/reports?period=2026-10&by=department", headers=headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["period"] == "2026-10" and body["label"] == "2026年10月"
    by_key = {r["key"]: r for r in body["rows"]}
    # hand-worked in tests/reports_data.py: D1 满意率 3/4, D2 1/3; total 4/7
    assert by_key[data.D1]["figures"]["satisfaction_rate"] == pytest.approx(0.75)
    assert body["total"]["figures"]["satisfaction_rate"] == pytest.approx(4 / 7)
    assert [r["rank"] for r in body["ranking"]] == [1, 2]
    spec = await (await client.get("/api/v1/openapi.json")).json()
    ops = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"getReport", "exportReport"} <= ops


async def test_a_department_token_sees_only_its_own_figures_and_rank(
    client: Client, ctx: AppContext
) -> None:
    headers = await _bearer(ctx, "department", (data.D2,))
    body = await (await client.get("/api/v1/reports?period=2026-10", headers=headers)).json()
    assert [r["key"] for r in body["rows"]] == [data.D2]
    assert body["total"] is None
    assert [(r["department_code"], r["rank"]) for r in body["ranking"]] == [(data.D2, 2)]
    assert body["ranked_count"] == 2
    resp = await client.get("/api/v1/reports/export?period=2026-10&format=xlsx",
                            headers=headers)
    book = load_workbook(io.BytesIO(await resp.read()))
    names = [row[1] for row in book["部门排名"].iter_rows(min_row=2, values_only=True)]
    assert names == ["人社局"]
    # an agent may not read reports at all
    agent = await _bearer(ctx, "agent")
    assert (await client.get("/api/v1/reports", headers=agent)).status == 403


async def test_export_report_files(client: Client, ctx: AppContext) -> None:
    headers = await _bearer(ctx, "supervisor")
    resp = await client.get("/api/v1/reports/export?period=2026-10&format=pdf", headers=headers)
    assert resp.status == 200 and resp.content_type == "application/pdf"
    assert (await resp.read()).startswith(b"%PDF")
    assert "tongbao-2026-10.pdf" in resp.headers["Content-Disposition"]
    resp = await client.get("/api/v1/reports/export?period=2026-10&format=csv&table=reasons",
                            headers=headers)
    text = (await resp.read()).decode("utf-8-sig")
    assert text.splitlines()[0] == "部门,位次,差评原因代码,差评原因,差评数"
    assert "人社局,1,3,办理结果,2" in text
    resp = await client.get("/api/v1/reports?period=2026-13", headers=headers)
    assert resp.status == 422


def test_due_periods() -> None:
    settings = make_settings(Path("/tmp"))
    at = dt.datetime(2026, 6, 30, 0, 30, tzinfo=dt.UTC)  # 08:30 Beijing on 6月30日
    assert due_codes(settings, at) == [("2026-05", "2026-05-31"), ("2026-H1", "2026-06-29")]
    before = dt.datetime(2026, 6, 29, 23, 0, tzinfo=dt.UTC)  # 07:00 Beijing on 6月30日
    assert due_codes(settings, before) == [("2026-05", "2026-05-31"), ("2025-H2", "2025-12-29")]


def due_codes(settings, at):  # type: ignore[no-untyped-def]
    return [(p.code, p.end.isoformat()) for p in documents.due_periods(settings, at)]


async def test_scheduled_documents_kept_and_announced(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made once, kept, announced; read and rendered in a child process (issue 13: a month's
    report never holds the event loop that answers calls)."""
    def not_here(*_: object, **__: object) -> None:
        raise AssertionError("the report was built in the serving process")

    monkeypatch.setattr(documents, "build_report", not_here)
    monkeypatch.setattr(documents.service, "render", not_here)
    settings = make_settings(tmp_path, database_url=database_url)
    ctx = AppContext.create(settings)
    try:
        async with ctx.db.transaction() as session:
            await data.fill(session)
        period = Period("month", dt.date(2026, 10, 1), dt.date(2026, 10, 31))
        written = await documents.produce(ctx, period, now=data.NOW)
        assert sorted(p.name for p in written) == ["tongbao-2026-10.pdf", "tongbao-2026-10.xlsx"]
        assert all(p.stat().st_size > 1000 for p in written)
        assert await documents.produce(ctx, period, now=data.NOW) == []  # never remade
        async with ctx.db.sessions() as session:
            events = list(await session.scalars(select(WebhookEvent)))
        assert [(e.event, e.subject_id) for e in events] == [("report_published", "2026-10")]
        assert events[0].payload["files"] == ["tongbao-2026-10.pdf", "tongbao-2026-10.xlsx"]
        assert [p.name for p in documents.listing(settings.effective_report_dir)] == [
            "tongbao-2026-10.pdf", "tongbao-2026-10.xlsx"]
    finally:
        await ctx.close()


def test_cli_prints_the_table(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from service.cli import main

    settings = make_settings(tmp_path, database_url=database_url)

    async def fill() -> None:
        ctx = AppContext.create(settings)
        async with ctx.db.transaction() as session:
            await data.fill(session)
        await ctx.close()

    asyncio.run(fill())
    import os

    os.environ["HOTLINE_DATABASE_URL"] = database_url
    os.environ["HOTLINE_DATA_DIR"] = str(tmp_path / "data")
    try:
        assert main(["report", "--period", "2026-10"]) == 0
        out = capsys.readouterr().out
        assert "2026年10月（2026-10）统计汇总" in out
        line = next(x for x in out.splitlines() if x.startswith("住建局"))
        assert "75.00%" in line and "80.00%" in line  # 满意率 3/4, 评价率 4/5
        target = tmp_path / "t.xlsx"
        assert main(["report", "--period", "2026-10", "--format", "xlsx", "-o",
                     str(target)]) == 0
        assert load_workbook(target)["部门排名"]["B2"].value == "住建局"
    finally:
        os.environ.pop("HOTLINE_DATABASE_URL")
        os.environ.pop("HOTLINE_DATA_DIR")
