"""CSV rows for a campaign, checked all-or-nothing (a bad row rejects the whole file).

Columns (header row required, any order, extra columns refused so a typo is not ignored):

- ``case_number`` — a case (工单) already known to the service, or
- ``linkedid``    — a call already known to the service (for 电话邀评);
- ``number``      — the citizen's number; optional when the case or call carries one.

Exactly one of case_number and linkedid per row. This module only parses and checks the
shape; whether a case/call exists is checked against the database by the caller, which
reports those problems with the same line numbers.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

COLUMNS = ("case_number", "linkedid", "number")
MAX_ROWS = 50_000
_NUMBER = re.compile(r"^\+?\d{5,20}$")


@dataclass(frozen=True)
class Row:
    line: int  # the physical line the row starts on, as an editor shows it
    case_number: str | None
    linkedid: str | None
    number: str | None  # normalised digits, never logged


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportRejected(ValueError):
    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} bad row(s), nothing imported: {shown}{more}")


def decode(data: bytes) -> str:
    """UTF-8 (with or without the BOM Excel writes), else GB18030 (Chinese Excel's ANSI)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as exc:
            problem = RowError(1, "the file is neither UTF-8 nor GB18030 text")
            raise ImportRejected([problem]) from exc


def _clean_number(raw: str) -> str:
    return re.sub(r"[\s\-()]", "", raw)


def parse(data: bytes | str) -> list[Row]:
    """The rows, or ImportRejected listing every bad row with its line number."""
    text = decode(data) if isinstance(data, bytes) else data
    reader = csv.reader(io.StringIO(text, newline=""))
    errors: list[RowError] = []
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected([RowError(1, "the file is empty")]) from None
    except csv.Error as exc:
        raise ImportRejected([RowError(1, f"not CSV: {exc}")]) from exc
    names = [h.strip().lower() for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown or len(set(names)) != len(names):
        wanted = ", ".join(COLUMNS)
        raise ImportRejected([RowError(
            1, f"header must name columns from {wanted} once each; {_header_problem(unknown)}"
        )])
    if "case_number" not in names and "linkedid" not in names:
        raise ImportRejected([RowError(1, "header needs a case_number or a linkedid column")])
    rows: list[Row] = []
    seen: dict[tuple[str, str], int] = {}
    line = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(line, f"not CSV: {exc}"))
            break
        start, line = line, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue  # blank lines are harmless
        if len(values) != len(names):
            errors.append(RowError(start, f"expected {len(names)} fields, found {len(values)}"))
            continue
        cells = {n: (v.strip() or None) for n, v in zip(names, values, strict=True)}
        row, problem = _row(start, cells)
        if problem:
            errors.append(RowError(start, problem))
            continue
        assert row is not None
        key = ("case", row.case_number) if row.case_number else ("call", row.linkedid or "")
        if key in seen:
            errors.append(RowError(start, f"duplicate of line {seen[key]}"))
            continue
        seen[key] = start
        rows.append(row)
        if len(rows) > MAX_ROWS:
            errors.append(RowError(start, f"more than {MAX_ROWS} rows; split the file"))
            break
    if errors:
        raise ImportRejected(errors)
    if not rows:
        raise ImportRejected([RowError(2, "no data rows")])
    return rows


def _header_problem(unknown: list[str]) -> str:
    """What is wrong with the header, never echoing a cell with a digit in it: a file without
    a header row starts with a citizen's number (DOMAIN.md rule 8; issue 8 defect 9)."""
    if not unknown:
        return "a column is named twice"
    words = [n for n in unknown if not any(c.isdigit() for c in n)]
    data = len(unknown) - len(words)
    parts = [f"unknown {', '.join(repr(w[:32]) for w in words)}"] if words else []
    if data:
        parts.append(f"{data} cell(s) that look like data: is the header row missing?")
    return "; ".join(parts)


def _row(line: int, cells: dict[str, str | None]) -> tuple[Row | None, str | None]:
    case_number, linkedid = cells.get("case_number"), cells.get("linkedid")
    if bool(case_number) == bool(linkedid):
        return None, "give exactly one of case_number and linkedid"
    number = cells.get("number")
    if number is not None:
        number = _clean_number(number)
        if not _NUMBER.match(number):
            return None, "number is not a telephone number"  # never echo the value
    if case_number and len(case_number) > 64:
        return None, "case_number is longer than 64 characters"
    if linkedid and len(linkedid) > 64:
        return None, "linkedid is longer than 64 characters"
    return Row(line, case_number, linkedid, number), None
