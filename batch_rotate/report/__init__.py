"""Render the journal's rows to report.xlsx and report.csv: one streaming pass, atomic, Excel-safe.

`xlsx` streams the workbook (a million rows in flat memory, issue 23). Devices sheets are Excel
tables with coloured statuses and real UTC dates; `cells` keeps every value inert, `summary` and
`failures` write the sheets people read first.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from batch_rotate.commandline import command
from batch_rotate.errors import BatchRotateError
from batch_rotate.journal import disk_full, is_disk_full
from batch_rotate.models import ReportRow, RunSummary
from batch_rotate.report.cells import DANGEROUS_PREFIXES, neutralise, shown_row
from batch_rotate.report.devices import COLUMN_VALUES, COLUMNS, EXCEL_MAX_ROWS, DeviceSheets
from batch_rotate.report.failures import FailureGroups, failures_sheet
from batch_rotate.report.files import open_book, replacing
from batch_rotate.report.summary import summary_sheet

__all__ = [
    "COLUMNS",
    "DANGEROUS_PREFIXES",
    "EXCEL_MAX_ROWS",
    "ReportPaths",
    "neutralise",
    "write_reports",
]


@dataclass(frozen=True)
class ReportPaths:
    """Where the two report files were written."""

    xlsx: Path
    csv: Path


def write_reports(
    out_dir: Path,
    rows: Iterable[ReportRow],
    summary: RunSummary,
    *,
    max_sheet_rows: int = EXCEL_MAX_ROWS,
    only: Literal["", "xlsx", "csv"] = "",
) -> ReportPaths:
    """Write report.xlsx and report.csv in one pass over `rows`, each swapped in atomically.

    `max_sheet_rows` (header included) is Excel's limit; tests lower it to see the split.
    `only` writes just one of the two files (`make bench` times each alone).
    """
    # Always the whole report, never a patch (issue 23): a sheet is one deflate stream in the
    # zip, which cannot be edited in place, and a verify touches rows across the whole order; a
    # re-render is one linear pass (~3 CPU-s per 100,000 rows) in flat memory.
    if max_sheet_rows < 2:
        raise ValueError(f"max_sheet_rows must hold a header and a row, not {max_sheet_rows}")
    xlsx_path, csv_path = out_dir / "report.xlsx", out_dir / "report.csv"
    failures = FailureGroups()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            writer = book = sheets = None
            if only != "xlsx":
                handle = stack.enter_context(
                    stack.enter_context(replacing(csv_path)).open(
                        "w", encoding="utf-8-sig", newline=""
                    )
                )
                writer = csv.writer(handle)  # excel dialect: comma, QUOTE_MINIMAL, CRLF
                writer.writerow([header for _, header in COLUMNS])
            if only != "csv":
                book = stack.enter_context(open_book(stack.enter_context(replacing(xlsx_path))))
                sheets = DeviceSheets(book, max_sheet_rows)
            for row in rows:
                values = shown_row(COLUMN_VALUES(row))
                if writer is not None:
                    writer.writerow(values)
                if sheets is not None:
                    sheets.append(values)
                    failures.add(row)
            if book is not None and sheets is not None:
                sheets.finish()
                summary_sheet(
                    book,
                    summary,
                    device_sheets=sheets.titles,
                    devices=sheets.total,
                    per_sheet=max_sheet_rows - 1,
                )
                failures_sheet(book, failures)
                book.close()
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(out_dir, exc, "the report") from None
        raise BatchRotateError(
            f"cannot write the report in {out_dir}: {exc}. Close report.xlsx if it is open "
            f"(Excel locks it on Windows), check free space and permissions, then re-render it "
            f"with `{command('report', out_dir)}`; the journal is intact."
        ) from exc
    return ReportPaths(xlsx_path, csv_path)
