"""Render the journal's rows to report.xlsx and report.csv: one streaming pass, atomic, Excel-safe.

The only module that uses openpyxl. Text that Excel would read as a formula (leading `=`, `+`,
`-`, `@`, tab or CR) gets a leading `'` in both files and is a string cell in the workbook.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from batch_rotate.errors import BatchRotateError
from batch_rotate.models import ReportRow, RunSummary

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
    "verification": 16,
    "verification_detail": 60,
    "action_state": 22,
    "action_error_code": 20,
    "new_key_at": 28,
    "last_check_in": 26,
    "key_count": 25,
    "verified_at": 26,
}
DANGEROUS_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Characters a workbook cannot hold. The C0 controls XML 1.0 forbids (openpyxl's
# ILLEGAL_CHARACTERS_RE) are dropped; U+FFFE/U+FFFF and lone surrogates (which UTF-8 cannot
# encode) become U+FFFD so the reader sees something was there.
_UNWRITABLE_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udfff]")
_MAX_CELL_CHARS = 32_767  # Excel's limit; openpyxl truncates silently, so the CSV keeps all


@dataclass(frozen=True)
class ReportPaths:
    """Where the two report files were written."""

    xlsx: Path
    csv: Path


def _replacement(match: re.Match[str]) -> str:
    return "\ufffd" if match.group() >= "\ud800" else ""


def neutralise(value: str) -> str:
    """Make text inert in Excel: drop unwritable characters, then quote anything formula-like."""
    value = _UNWRITABLE_RE.sub(_replacement, value)
    return "'" + value if value.startswith(DANGEROUS_PREFIXES) else value


def _shown(value: object) -> int | str:
    """The value both files show: integers stay numbers, everything else is neutralised text."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return neutralise(str(value))


def write_reports(out_dir: Path, rows: Iterable[ReportRow], summary: RunSummary) -> ReportPaths:
    """Write report.xlsx and report.csv in one pass over `rows`, each swapped in atomically."""
    xlsx_path, csv_path = out_dir / "report.xlsx", out_dir / "report.csv"
    book = Workbook(write_only=True)
    bold = Font(bold=True)
    devices = book.create_sheet("Devices")
    for index, (name, _) in enumerate(COLUMNS, start=1):
        devices.column_dimensions[get_column_letter(index)].width = _WIDTHS[name]
    # Both are kept by openpyxl's write-only sheet and written when the book is saved.
    devices.freeze_panes = "A2"
    devices.append([_text_cell(devices, header, bold) for _, header in COLUMNS])
    count = 0
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with _replacing(csv_path) as csv_tmp, _replacing(xlsx_path) as xlsx_tmp:
            try:
                with csv_tmp.open("w", encoding="utf-8-sig", newline="") as handle:
                    writer = csv.writer(handle)  # excel dialect: comma, QUOTE_MINIMAL, CRLF
                    writer.writerow([header for _, header in COLUMNS])
                    for values in _values(rows):
                        writer.writerow(values)
                        devices.append([_xlsx_value(devices, value) for value in values])
                        count += 1
            except BaseException:
                # Saving is openpyxl's only public way to close a write-only sheet's stream and
                # delete its temp file; the partial workbook is then discarded with the temp name.
                with suppress(Exception):
                    book.save(xlsx_tmp)
                raise
            devices.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{count + 1}"
            _summary_sheet(book, summary, bold)
            book.save(xlsx_tmp)
    except OSError as exc:
        raise BatchRotateError(
            f"cannot write the report in {out_dir}: {exc}. Close report.xlsx if it is open "
            f"(Excel locks it on Windows), check free space and permissions, then re-render it "
            f"with `batch-rotate report {out_dir}`; the journal is intact."
        ) from exc
    return ReportPaths(xlsx_path, csv_path)


def _values(rows: Iterable[ReportRow]) -> Iterator[list[int | str]]:
    names = [name for name, _ in COLUMNS]
    for row in rows:
        yield [_shown(getattr(row, name)) for name in names]


def _xlsx_value(sheet: Any, value: int | str) -> object:
    """A plain value where openpyxl types it right; a forced string cell where it would not."""
    if value == "":
        return None  # no cell at all: smaller file, same look
    # openpyxl makes `=...` a formula and `#N/A`, `#REF!`, ... error cells. Guarded text never
    # starts with `=`, so only `#` needs the explicit string type (cheaper than a cell per value).
    if isinstance(value, str) and value.startswith(("=", "#")):
        return _text_cell(sheet, value)
    return value


def _text_cell(sheet: Any, text: str, font: Font | None = None) -> Any:
    cell = WriteOnlyCell(sheet, value=text[:_MAX_CELL_CHARS])
    cell.data_type = "s"  # inline string, never a formula or an error value
    if font is not None:
        cell.font = font
    return cell


def _summary_sheet(book: Any, summary: RunSummary, bold: Font) -> None:
    sheet = book.create_sheet("Summary")
    sheet.column_dimensions["A"].width = 34
    sheet.column_dimensions["B"].width = 90

    def line(label: str, value: int | str = "", *, strong: bool = False) -> None:
        shown = _shown(value)
        sheet.append(
            [
                _text_cell(sheet, neutralise(label), bold if strong else None),
                _text_cell(sheet, shown) if isinstance(shown, str) else shown,
            ]
        )

    def counts(title: str, by_status: dict[str, int]) -> None:
        sheet.append([])
        line(title, "Count", strong=True)
        for status, number in sorted(by_status.items(), key=lambda kv: (-kv[1], kv[0])):
            line(status, number)
        line("Total", sum(by_status.values()), strong=True)

    line("Run ID", summary.run_id, strong=True)
    line("Tenant ID", summary.tenant_id)
    line("Client ID", summary.client_id)
    line("Started (UTC)", summary.started_at)
    line("Ended (UTC)", summary.ended_at)
    line("Input file", summary.input_file)
    line("Input SHA-256", summary.input_sha256)
    counts("Counts by status", summary.counts)
    if summary.verification_counts:
        counts("Verification (new key escrowed)", summary.verification_counts)
    if summary.details:
        sheet.append([])
        line("Details", strong=True)
        for label, value in summary.details.items():
            line(label, value)


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
