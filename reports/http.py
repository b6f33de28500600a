"""The HTTP API of the 通报: ``getReport`` (the figures of any period and grouping as JSON),
``exportReport`` (the same as an .xlsx, PDF or CSV file), and the scheduled documents kept for
download. A department token sees only its own departments' figures and their rank."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from http_api.auth import requires
from http_api.bodies import read_path, read_query, respond
from http_api.errors import ApiError
from http_api.keys import app_ctx, principal
from http_api.openapi import Response, operation
from reports import documents, service
from reports.build import ALL, PARTS, Report, ReportError, Scope
from reports.engine import GROUPINGS
from reports.figures import FIGURES
from reports.periods import PeriodError
from reports.tables import TABLES
from service.context import AppContext

READERS = ("supervisor", "reviewer", "department")


class ReportQuery(BaseModel):
    period: str = Field(default="this-month", description="2026-10, 2026-Q4, 2026-H1, 2026, "
                        "2026-W41, 2026-10-05, 2026-10-01..2026-10-15, this-month, last-month …")
    by: Literal["total", "department", "agent", "queue", "channel"] = "department"


class ExportQuery(ReportQuery):
    format: Literal["xlsx", "pdf", "csv"] = "xlsx"
    table: Literal["figures", "ranking", "agents", "funnel", "reasons", "ledger"] = Field(
        default="figures", description="for CSV: which table"
    )


class RowOut(BaseModel):
    key: str | None
    name: str
    figures: dict[str, float | int | None]
    counts: dict[str, int | None]


class RankOut(BaseModel):
    department_code: str
    name: str
    rank: int | None
    praised: bool
    bottom: bool
    flagged: bool


class ReportOut(BaseModel):
    """The figures of one period and grouping."""

    period: str
    label: str
    start: str
    end: str
    grouping: str
    figures: dict[str, str] = Field(description="figure key → Chinese name")
    rows: list[RowOut]
    total: RowOut | None = Field(description="absent in a department's own view")
    ranking: list[RankOut]
    ranked_count: int
    reasons: dict[str, list[dict[str, Any]]]


class DocumentOut(BaseModel):
    name: str
    size: int


class DocumentPath(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")


def _scope(request: web.Request) -> Scope:
    who = principal(request)
    if who.role == "department":
        return Scope(frozenset(who.departments))
    return ALL


async def _build(request: web.Request, query: ReportQuery, parts: frozenset[str]) -> Report:
    ctx = app_ctx(request)
    try:
        period = service.period_of(ctx, query.period)
        return await service.make_report(ctx, period, query.by, scope=_scope(request),
                                         parts=parts)
    except (PeriodError, ReportError) as exc:
        raise ApiError(422, "validation_failed", str(exc)) from exc


def _row(row: Any) -> RowOut:
    return RowOut(key=row.key, name=row.name, figures=row.values, counts=row.counts)


@requires(*READERS)
@operation(
    summary="The 通报 figures of a period, per department, agent, queue or channel",
    tags=["reports"], query=ReportQuery, responses={200: ReportOut},
    operation_id="getReport",
)
async def get_report(request: web.Request) -> web.Response:
    query = read_query(request, ReportQuery)
    report = await _build(request, query, frozenset({"ranking", "reasons"}))
    return respond(ReportOut(
        period=report.period.code, label=report.period.label,
        start=report.period.start.isoformat(), end=report.period.end.isoformat(),
        grouping=report.grouping, figures={f.key: f.name for f in FIGURES},
        rows=[_row(r) for r in report.rows],
        total=_row(report.total) if report.total is not None else None,
        ranking=[RankOut(department_code=r.key, name=report.name_of(r.key), rank=r.rank,
                         praised=r.praised, bottom=r.bottom, flagged=r.flagged)
                 for r in report.ranking],
        ranked_count=report.ranked_count,
        reasons={k or "": [{"code": x.code, "label": x.label, "count": x.count} for x in v]
                 for k, v in report.reasons.items()},
    ))


@requires(*READERS)
@operation(
    summary="The 通报 as a file: .xlsx workbook, PDF, or CSV of one table",
    tags=["reports"], query=ExportQuery,
    responses={200: Response("The file (Content-Disposition names it)")},
    operation_id="exportReport",
)
async def export_report(request: web.Request) -> web.Response:
    query = read_query(request, ExportQuery)
    parts = PARTS if query.format != "csv" else frozenset(PARTS)
    report = await _build(request, query, parts)
    ctx: AppContext = app_ctx(request)
    data = service.render(report, query.format, query.table,
                          list(ctx.settings.report_agent_score_parts))
    name = service.file_name(report, query.format, query.table)
    return web.Response(
        body=data,
        headers={"Content-Type": service.MEDIA_TYPES[query.format],
                 "Content-Disposition": f'attachment; filename="{name}"'},
    )


@requires("supervisor", "reviewer")
@operation(summary="The scheduled 通报 documents kept for download", tags=["reports"],
           responses={200: list[DocumentOut]}, operation_id="listReportDocuments")
async def list_documents(request: web.Request) -> web.Response:
    ctx = app_ctx(request)
    found = documents.listing(ctx.settings.effective_report_dir)
    return respond([DocumentOut(name=p.name, size=p.stat().st_size) for p in found])


@requires("supervisor", "reviewer")
@operation(summary="Download one scheduled 通报 document", tags=["reports"], path=DocumentPath,
           responses={200: Response("The file"), 404: "No such document"},
           operation_id="getReportDocument")
async def get_document(request: web.Request) -> web.StreamResponse:
    name = read_path(request, DocumentPath).name
    ctx = app_ctx(request)
    path = documents.find(ctx.settings.effective_report_dir, name)
    if path is None:
        raise ApiError(404, "not_found", f"no document {name!r}")
    return web.FileResponse(path, headers={
        "Content-Disposition": f'attachment; filename="{path.name}"'})


def setup(app: web.Application, ctx: AppContext) -> None:
    app.router.add_get("/api/v1/reports", get_report)
    app.router.add_get("/api/v1/reports/export", export_report)
    app.router.add_get("/api/v1/reports/documents", list_documents)
    app.router.add_get("/api/v1/reports/documents/{name}", get_document)


__all__ = ["GROUPINGS", "TABLES", "setup"]
