"""What the CLI, the HTTP API and the scheduled worker share: build a report for a period
spelling and render it in a format."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from hotline.clock import utcnow
from reports import tables
from reports.build import ALL, PARTS, Report, Scope, build_report
from reports.periods import Period, parse
from service.context import AppContext

FORMATS = ("xlsx", "pdf", "csv")
MEDIA_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
}


def period_of(ctx: AppContext, text: str, now: dt.datetime | None = None) -> Period:
    today = (now or utcnow()).astimezone(ctx.settings.tz).date()
    return parse(text, today)


async def make_report(
    ctx: AppContext,
    period: Period,
    grouping: str,
    *,
    scope: Scope = ALL,
    parts: frozenset[str] = PARTS,
    part_scores: Mapping[str, Mapping[str, float]] | None = None,
    now: dt.datetime | None = None,
) -> Report:
    async with ctx.db.sessions() as session:
        return await build_report(
            session, ctx.settings, period, grouping, scope=scope, parts=parts,
            part_scores=part_scores, now=now,
        )


def render(report: Report, fmt: str, table: str, part_names: list[str]) -> bytes:
    # The exporters are imported when a document is rendered, not when the service starts:
    # openpyxl and reportlab (with PIL) cost ~16 MB of RSS in every `hotline serve` process,
    # the FastAGI one included, which never renders a document (issue 13, memory).
    if fmt == "xlsx":
        from reports import export_xlsx

        return export_xlsx.workbook(report, part_names)
    if fmt == "pdf":
        from reports import export_pdf

        return export_pdf.document(report)
    if fmt == "csv":
        from reports import export_csv

        return export_csv.to_csv(tables.table(report, table, part_names))
    raise ValueError(f"unknown format {fmt!r}")


def file_name(report: Report, fmt: str, table: str = "figures") -> str:
    suffix = f"-{table}" if fmt == "csv" else ""
    return f"tongbao-{report.period.code.replace('..', '_')}{suffix}.{fmt}"


def read_part_scores(path: Path) -> dict[str, dict[str, float]]:
    """The other parts of the agent scores, from a CSV with the header ``agent_id,part,score``
    (scores 0..100)."""
    scores: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8-sig", newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                value = float(row["score"])
                agent, part = row["agent_id"].strip(), row["part"].strip()
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: needs agent_id,part,score (0-100)") from exc
            if not 0 <= value <= 100:
                raise ValueError(f"{path}:{line}: score {value} is not within 0-100")
            scores.setdefault(agent, {})[part] = value
    return scores
