"""Render the journal's rows to report.xlsx and report.csv: one streaming pass, atomic, Excel-safe.

`xlsx` streams the workbook (a million rows in flat memory, issue 23). Devices sheets are Excel
tables with coloured statuses and real UTC dates; `cells` keeps every value inert, `summary` and
`failures` write the sheets people read first.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Literal

from batch_rotate.commandline import command
from batch_rotate.errors import BatchRotateError
from batch_rotate.journal import disk_full, is_disk_full
from batch_rotate.models import ReportRow, RunSummary
from batch_rotate.report.cells import (
    DANGEROUS_PREFIXES,
    FILLS,
    FONTS,
    TONES,
    excel_date,
    neutralise,
    shown_row,
    text_cell,
)
from batch_rotate.report.failures import FailureGroups, failures_sheet
from batch_rotate.report.summary import summary_sheet
from batch_rotate.report.xlsx import Book, Serial, column_letter

__all__ = [
    "COLUMNS",
    "DANGEROUS_PREFIXES",
    "EXCEL_MAX_ROWS",
    "ReportPaths",
    "neutralise",
    "write_reports",
]
EXCEL_MAX_ROWS = 1_048_576  # rows per sheet, the header included

COLUMNS: tuple[tuple[str, str], ...] = (  # (ReportRow field, header shown), in sheet order
    ("row", "Row"),
    ("input_value", "Input value"),
    ("id_kind", "Identifier kind"),
    ("intune_device_id", "Intune device ID"),
    ("device_name", "Device name"),
    ("serial_number", "Serial number"),
    ("entra_device_id", "Entra device ID"),
    ("os", "OS"),
    ("status", "Status"),
    ("reason", "Reason"),
    ("http_status", "HTTP status"),
    ("error_code", "Graph error code"),
    ("error_message", "Message"),
    ("request_id", "Request ID"),
    ("client_request_id", "Client request ID"),
    ("attempts", "Attempts"),
    ("requested_at", "Requested at (UTC)"),
    ("accepted_at", "Accepted at (tenant clock, UTC)"),
    # filled in by `verify`; empty until then
    ("verification", "Verification"),
    ("verification_detail", "Verification detail"),
    ("action_state", "Device action state"),
    ("action_error_code", "Device error code"),
    ("new_key_at", "New key escrowed at (UTC)"),
    ("last_check_in", "Last check-in (UTC)"),
    ("key_count", "Recovery keys in Entra"),
    ("verified_at", "Verified at (UTC)"),
)
# Fixed widths (characters): write-only sheets cannot measure their content. A GUID needs 38,
# an ISO timestamp 26; a header needs its length plus ~3 for the filter button.
_WIDTHS: dict[str, int] = {
    "row": 8,
    "input_value": 40,
    "id_kind": 18,
    "intune_device_id": 38,
    "device_name": 22,
    "serial_number": 18,
    "entra_device_id": 38,
    "os": 10,
    "status": 15,
    "reason": 60,
    "http_status": 14,
    "error_code": 22,
    "error_message": 60,
    "request_id": 38,
    "client_request_id": 38,
    "attempts": 11,
    "requested_at": 26,
    "accepted_at": 34,
    "verification": 16,
    "verification_detail": 60,
    "action_state": 22,
    "action_error_code": 20,
    "new_key_at": 28,
    "last_check_in": 26,
    "key_count": 25,
    "verified_at": 26,
}
_HEADERS = tuple(header for _, header in COLUMNS)
_LAST_COLUMN = column_letter(len(COLUMNS))
_DATE_INDEXES = frozenset(
    i
    for i, (name, _) in enumerate(COLUMNS)
    if name in {"requested_at", "accepted_at", "new_key_at", "last_check_in", "verified_at"}
)
_COLOURED = tuple(
    column_letter(i + 1)
    for i, (name, _) in enumerate(COLUMNS)
    if name in {"status", "verification"}
)


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
    fields = attrgetter(*(name for name, _ in COLUMNS))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            writer = book = sheets = None
            if only != "xlsx":
                handle = stack.enter_context(
                    stack.enter_context(_replacing(csv_path)).open(
                        "w", encoding="utf-8-sig", newline=""
                    )
                )
                writer = csv.writer(handle)  # excel dialect: comma, QUOTE_MINIMAL, CRLF
                writer.writerow([header for _, header in COLUMNS])
            if only != "csv":
                book = stack.enter_context(_book(stack.enter_context(_replacing(xlsx_path))))
                sheets = _DeviceSheets(book, max_sheet_rows)
            for row in rows:
                values = shown_row(fields(row))
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


@contextmanager
def _book(path: Path) -> Iterator[Book]:
    """A workbook that is abandoned (its zip closed, errors of that ignored) on any failure."""
    book = Book(path)
    try:
        yield book
    except BaseException:
        with suppress(Exception):
            book.abandon()  # the half-written temp file is then deleted with its name
        raise


class _DeviceSheets:
    """`Devices`, then `Devices (2)`, ... as sheets fill; each a table with coloured statuses."""

    def __init__(self, book: Book, max_rows: int) -> None:
        self.book, self.max_rows = book, max_rows
        self.titles: list[str] = []
        self.total = 0
        self._in_sheet = 0
        self._open()

    def _open(self) -> None:
        number = len(self.titles) + 1
        title = "Devices" if number == 1 else f"Devices ({number})"
        widths = [_WIDTHS[name] for name, _ in COLUMNS]
        self._sheet = self.book.sheet(title, widths=widths, freeze=True)
        self._sheet.append([text_cell(header, bold=True) for _, header in COLUMNS])
        self.titles.append(title)
        self._in_sheet = 0

    def append(self, values: list[int | str]) -> None:
        if self._in_sheet == self.max_rows - 1:
            self._close()
            self._open()
        cells: list[object] = list(values)
        for index in _DATE_INDEXES:
            value = cells[index]
            if value and isinstance(value, str):
                serial = excel_date(value)
                if serial is not None:  # a date-time cell, shown as yyyy-mm-dd hh:mm:ss
                    cells[index] = Serial(serial)
        self._sheet.append(cells)
        self._in_sheet += 1
        self.total += 1

    def finish(self) -> None:
        self._close()

    def _close(self) -> None:
        """Give the full sheet its table and status colours."""
        last = max(self._in_sheet + 1, 2)  # a table needs a data row: an empty one, as Excel
        number = len(self.titles)
        name = "Devices" if number == 1 else f"Devices{number}"
        self._sheet.add_table(name, f"A1:{_LAST_COLUMN}{last}", _HEADERS)
        for column in _COLOURED:
            # One rule per tone, so Excel's rule manager stays readable.
            rules = [
                (
                    "OR(" + ",".join(f'${column}2="{s}"' for s in statuses) + ")",
                    f"{FILLS[tone]}:{FONTS[tone]}",
                )
                for tone, statuses in TONES.items()
            ]
            self._sheet.colour_rules(f"{column}2:{column}{last}", rules)


@contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success rename it over `target`, else delete it."""
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        os.replace(temp, target)  # atomic: a reader sees the old file or the new, never half
    finally:
        temp.unlink(missing_ok=True)
