"""``hotline report``: the figures of any period and grouping as a table on the terminal, or a
document (``--format xlsx|pdf|csv -o FILE``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hotline.settings import Settings
from reports import service
from reports.build import PARTS, Report, ReportError
from reports.engine import GROUPINGS
from reports.figures import BY_KEY, FIGURES, display
from reports.periods import PeriodError
from reports.tables import TABLES, Table, table
from service.commands import CommandError, with_context
from service.context import AppContext

#: the figures the terminal table shows (all of them are in every document)
TERMINAL_FIGURES = ("served", "rated", "rating_rate", "active_rating_rate", "defaults",
                    "satisfaction_rate", "good_rate", "bad_count", "bad_rate", "invalid",
                    "rectification_rate", "on_time_rectification_rate", "overdue",
                    "callback_rate")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report", help="通报: figures, rankings, agent scores, funnel, 差评台账; xlsx/pdf/csv"
    )
    p.add_argument("view", nargs="?", default="figures", choices=TABLES,
                   help="what to show (default figures); documents always hold everything")
    p.add_argument("--period", default="this-month",
                   help="2026-10, 2026-Q4, 2026-H1, 2026, 2026-W41, 2026-10-05, "
                        "2026-10-01..2026-10-15, this-month, last-month … (default this-month)")
    p.add_argument("--by", default="department", choices=GROUPINGS, help="grouping")
    p.add_argument("--department", action="append", default=None,
                   help="only this department's own figures and rank (repeatable)")
    p.add_argument("--format", choices=service.FORMATS, default=None,
                   help="write a document instead of the terminal table")
    p.add_argument("-o", "--output", type=Path, default=None, help="the document's file")
    p.add_argument("--part-scores", type=Path, default=None,
                   help="CSV agent_id,part,score with the other parts of the agent scores")
    p.set_defaults(handler=_report)


def _print_table(t: Table, title: str) -> None:
    print(title)
    header = [c.title for c in t.columns]
    body = []
    for row in t.rows:
        cells = []
        for column, value in zip(t.columns, row, strict=True):
            if column.kind == "rate":
                cells.append(display(BY_KEY["satisfaction_rate"], value))
            elif value is None:
                cells.append("—")
            else:
                cells.append(str(value))
        body.append(cells)
    widths = [max(_width(h), *(_width(r[i]) for r in body)) for i, h in enumerate(header)]
    for cells in [header, *body]:
        print("  ".join(_pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip())


def _width(text: str) -> int:
    # a CJK character takes two terminal columns
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _figures_for_terminal(t: Table) -> Table:
    keep = [0, 1] + [2 + [f.key for f in FIGURES].index(k) for k in TERMINAL_FIGURES]
    return Table(t.name, t.title, [t.columns[i] for i in keep],
                 [[row[i] for i in keep] for row in t.rows])


def _report(settings: Settings, args: argparse.Namespace) -> int:
    scope = service.Scope(frozenset(args.department) if args.department else None)
    if args.format and args.output is None:
        raise CommandError("--format needs -o FILE")
    try:
        part_scores = service.read_part_scores(args.part_scores) if args.part_scores else None
    except (OSError, ValueError) as exc:
        raise CommandError(str(exc)) from exc

    async def work(ctx: AppContext) -> Report:
        period = service.period_of(ctx, args.period)
        wanted = PARTS if args.format in ("xlsx", "pdf") else _parts_for(args.view)
        return await service.make_report(ctx, period, args.by, scope=scope, parts=wanted,
                                         part_scores=part_scores)

    try:
        report = with_context(settings, work)
    except (PeriodError, ReportError) as exc:
        raise CommandError(str(exc)) from exc
    parts = list(settings.report_agent_score_parts)
    if args.format:
        data = service.render(report, args.format, args.view, parts)
        args.output.write_bytes(data)
        print(f"{args.output}: {report.period.label} ({args.format}, {len(data)} bytes)",
              file=sys.stderr)
        return 0
    t = table(report, args.view, parts)
    if args.view == "figures":
        t = _figures_for_terminal(t)
    _print_table(t, f"{report.period.label}（{report.period.code}）{t.title}")
    return 0


def _parts_for(view: str) -> frozenset[str]:
    return frozenset({
        "figures": set(), "ranking": {"ranking"}, "agents": {"agents"}, "funnel": {"funnel"},
        "reasons": {"reasons"}, "ledger": {"ledger"},
    }[view])
