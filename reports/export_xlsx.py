"""The .xlsx workbook as an office publishes it (openpyxl): a summary sheet, the department
ranking, the agents, the funnel, the 差评 reasons and the 差评 台账. Chinese headers, the header
row frozen, percentages as number formats on the stored ratios, and values only: no formula
that another spreadsheet program could recompute differently."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from reports.build import Report
from reports.tables import Table, all_tables

PERCENT = "0.00%"
SCORE = "0.00"
DATE = "yyyy-mm-dd"
DATETIME = "yyyy-mm-dd hh:mm"
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_FORMATS = {"rate": PERCENT, "score": SCORE, "date": DATE, "datetime": DATETIME}


def _write(sheet: Any, table: Table) -> None:
    sheet.append([c.title for c in table.columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for row in table.rows:
        values = []
        formats = []
        for column, value in zip(table.columns, row, strict=True):
            fmt = _FORMATS.get(column.kind)
            if column.kind == "mixed" and isinstance(value, tuple):  # (unit, value)
                unit, value = value
                fmt = PERCENT if unit == "rate" else None
            values.append(value)
            formats.append(fmt)
        sheet.append(values)
        for cell, fmt in zip(sheet[sheet.max_row], formats, strict=True):
            if fmt and cell.value is not None:
                cell.number_format = fmt
    sheet.freeze_panes = "A2"  # the header row stays in view
    for index, column in enumerate(table.columns, start=1):
        longest = max([len(str(column.title))] + [len(str(r[index - 1] or "")) for r in
                                                  table.rows[:200]])
        sheet.column_dimensions[get_column_letter(index)].width = min(max(10, longest * 2), 60)


def workbook(report: Report, part_names: list[str]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for table in all_tables(report, part_names):
        _write(book.create_sheet(table.title), table)
    book.properties.title = f"{report.period.label}“好差评”情况通报"
    book.properties.creator = report.issuing_unit
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
