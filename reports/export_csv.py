"""CSV for other systems: any table of the report, UTF-8 with a BOM (so a spreadsheet opens
the Chinese headers right), ratios as plain decimals (0.7500), dates ISO 8601."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from reports.tables import Table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):  # the summary's (unit, value)
        value = value[1]
        if value is None:
            return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.title for c in table.columns])
    for row in table.rows:
        writer.writerow([_cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
