"""Render the journal's rows to report.xlsx and report.csv, streaming, atomically, Excel-safe.

The only module that uses openpyxl. Text that Excel would read as a formula (leading `=`, `+`,
`-`, `@`, tab or CR) is prefixed with `'` and written as a string cell (OWASP CSV injection).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from batch_rotate.models import ReportRow, RunSummary

COLUMNS: tuple[tuple[str, str, int], ...] = (  # (field, header, width)
    ("row", "Row", 7),
    ("input_value", "Input value", 40),
    ("id_kind", "Identifier kind", 16),
    ("intune_device_id", "Intune device ID", 38),
    ("device_name", "Device name", 22),
    ("serial_number", "Serial number", 18),
    ("entra_device_id", "Entra device ID", 38),
    ("os", "OS", 10),
    ("status", "Status", 14),
    ("reason", "Reason", 60),
    ("http_status", "HTTP status", 8),
    ("error_code", "Graph error code", 22),
    ("error_message", "Message", 40),
    ("request_id", "Request ID", 38),
    ("client_request_id", "Client request ID", 38),
    ("attempts", "Attempts", 9),
    ("requested_at", "Requested at (UTC)", 25),
    ("verification", "Verification", 16),
    ("verification_detail", "Verification detail", 60),
    ("action_state", "Device action state", 14),
    ("action_error_code", "Device error code", 12),
    ("new_key_at", "New key escrowed at (UTC)", 25),
    ("last_check_in", "Last check-in (UTC)", 25),
    ("key_count", "Recovery keys in Entra", 10),
    ("verified_at", "Verified at (UTC)", 25),
)
DANGEROUS_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ReportPaths:
    xlsx: Path
    csv: Path


def neutralise(value: str) -> str:
    """Make a text cell inert in Excel: a leading quote before anything formula-like."""
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    return "'" + value if value.startswith(DANGEROUS_PREFIXES) else value


def _cell_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return neutralise(str(value))


def write_reports(out_dir: Path, rows: Iterable[ReportRow], summary: RunSummary) -> ReportPaths:
    """Write both files in one pass over `rows`, each via a temp file then an atomic rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    xlsx_path, csv_path = out_dir / "report.xlsx", out_dir / "report.csv"
    book = Workbook(write_only=True)
    devices: Worksheet = book.create_sheet("Devices")
    for index, (_, _, width) in enumerate(COLUMNS, start=1):
        devices.column_dimensions[get_column_letter(index)].width = width
    devices.freeze_panes = "A2"
    bold = Font(bold=True)
    header_cells = []
    for _, header, _ in COLUMNS:
        cell = WriteOnlyCell(devices, value=header)
        cell.font = bold
        header_cells.append(cell)
    devices.append(header_cells)
    count = 0
    csv_fd, csv_tmp = tempfile.mkstemp(prefix=".report-", suffix=".csv", dir=out_dir)
    try:
        with os.fdopen(csv_fd, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([header for _, header, _ in COLUMNS])
            for row in rows:
                values = [_cell_value(getattr(row, name)) for name, _, _ in COLUMNS]
                writer.writerow(values)
                cells = []
                for value in values:
                    cell = WriteOnlyCell(devices, value=value)
                    if isinstance(value, str):
                        cell.data_type = "s"  # never a formula, whatever the text
                    cells.append(cell)
                devices.append(cells)
                count += 1
        last = get_column_letter(len(COLUMNS))
        devices.auto_filter.ref = f"A1:{last}{count + 1}"
        _summary_sheet(book.create_sheet("Summary"), summary, bold)
        xlsx_fd, xlsx_tmp = tempfile.mkstemp(prefix=".report-", suffix=".xlsx", dir=out_dir)
        os.close(xlsx_fd)
        try:
            book.save(xlsx_tmp)
            os.replace(xlsx_tmp, xlsx_path)
        finally:
            Path(xlsx_tmp).unlink(missing_ok=True)
        os.replace(csv_tmp, csv_path)
    finally:
        Path(csv_tmp).unlink(missing_ok=True)
    return ReportPaths(xlsx_path, csv_path)


def _summary_sheet(sheet: Worksheet, summary: RunSummary, bold: Font) -> None:
    sheet.column_dimensions["A"].width = 28
    sheet.column_dimensions["B"].width = 90

    def line(label: str, value: object, strong: bool = False) -> None:
        label_cell = WriteOnlyCell(sheet, value=neutralise(label))
        label_cell.data_type = "s"
        if strong:
            label_cell.font = bold
        shown = _cell_value(value)
        value_cell = WriteOnlyCell(sheet, value=shown)
        if isinstance(shown, str):
            value_cell.data_type = "s"
        sheet.append([label_cell, value_cell])

    line("Run", summary.run_id, True)
    line("Tenant", summary.tenant_id)
    line("Client id", summary.client_id)
    line("Started (UTC)", summary.started_at)
    line("Ended (UTC)", summary.ended_at)
    line("Input file", summary.input_file)
    line("Input SHA-256", summary.input_sha256)
    sheet.append([])
    line("Counts by status", "", True)
    for status, count in sorted(summary.counts.items(), key=lambda kv: (-kv[1], kv[0])):
        line(status, count)
    line("total", sum(summary.counts.values()), True)
    if summary.verification_counts:
        sheet.append([])
        line("Verification (new key escrowed)", "", True)
        for status, count in sorted(
            summary.verification_counts.items(), key=lambda kv: (-kv[1], kv[0])
        ):
            line(status, count)
    sheet.append([])
    line("Details", "", True)
    for label, value in summary.details.items():
        line(label, value)
