"""The campaign roll-up: every tenant's run in one workbook and CSV files (issue 21).

Each tenant's journal is read once, streamed: its rows go to the Devices sheet and rollup.csv
while a tally counts them; the Summary sheet (the first tab) and rollup-summary.csv are written
from the tallies after. The same lines feed the campaign's --json document and its console.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_rotate.campaign_model import TenantOutcome
from batch_rotate.errors import BatchRotateError
from batch_rotate.journal import disk_full, is_disk_full
from batch_rotate.report.cells import BARS, neutralise, shown_row, text_cell
from batch_rotate.report.devices import COLUMN_VALUES, COLUMNS, EXCEL_MAX_ROWS, DeviceSheets
from batch_rotate.report.files import open_book, replacing
from batch_rotate.report.tenant_lines import (
    NOT_ELIGIBLE,
    Tally,
    TenantLine,
    rollup_summary,
    tenant_line,
    tenant_rows,
    totals_line,
)
from batch_rotate.report.xlsx import Book, Series, StackedChart, column_letter

ROLLUP_XLSX = "rollup.xlsx"
ROLLUP_CSV = "rollup.csv"
ROLLUP_SUMMARY_CSV = "rollup-summary.csv"
ROLLUP_SCHEMA_VERSION = 1
_TENANT_COLUMNS = (("Tenant", 30.0), ("Tenant ID", 38.0))  # in front of the report's columns


@dataclass(frozen=True)
class RollupPaths:
    """Where the roll-up files were written, and the lines written (for the console and --json,
    without reading the journals again)."""

    xlsx: Path
    csv: Path  # every device, with its tenant
    summary_csv: Path  # the Summary sheet's lines, for scripts
    lines: tuple[TenantLine, ...] = ()


def rollup_document(
    outcomes: Sequence[TenantOutcome],
    *,
    campaign_dir: Path | None = None,
    paths: RollupPaths | None = None,
    lines: Sequence[TenantLine] | None = None,
) -> dict[str, Any]:
    """The --json document of a campaign (schemas/rollup.schema.json).

    `lines`: the summary already read, else those `paths` (from `write_rollup`) holds, else the
    journals are read here.
    """
    if lines is None:
        lines = (
            paths.lines
            if paths and paths.lines
            else rollup_summary(outcomes, campaign_dir=campaign_dir)
        )
    files: dict[str, str | None] = {"xlsx": None, "csv": None, "summary_csv": None}
    if paths is not None:
        files = {
            "xlsx": str(paths.xlsx),
            "csv": str(paths.csv),
            "summary_csv": str(paths.summary_csv),
        }
    return {
        "schema_version": ROLLUP_SCHEMA_VERSION,
        "campaign_dir": str(campaign_dir) if campaign_dir is not None else None,
        "tenants": [line.record() for line in lines if not line.total],
        "totals": next(line.record() for line in lines if line.total),
        "reports": files,
    }


# --- the files --------------------------------------------------------------------------------
# (header, width) of the Summary sheet and rollup-summary.csv, in order
SUMMARY_COLUMNS: tuple[tuple[str, float], ...] = (
    ("Tenant", 30),
    ("Tenant ID", 38),
    ("Sign-in", 16),
    ("Pre-flight", 30),
    ("Fix", 50),
    ("Rows read", 11),
    *((status.value.replace("_", " ").capitalize(), 13) for status in NOT_ELIGIBLE),
    ("Sent", 8),
    ("Queued", 10),
    ("Failed", 9),
    ("Failed by error", 36),
    ("Uncertain", 12),
    ("Not sent", 11),
    ("Verified", 11),
    ("Pending verification", 14),
    ("Not verified", 13),
    ("Device errors (verify)", 30),
    ("Budget use (%)", 11),
    ("Duration (s)", 12),
    ("Exit code", 10),
    ("Run folder", 40),
    ("Notes", 50),
)


def _codes(groups: tuple[tuple[str, int], ...]) -> str:
    return "; ".join(f"{code} {count}" for code, count in groups)


def _cells(line: TenantLine) -> list[int | float | str]:
    """The line's values in SUMMARY_COLUMNS order: numbers, and inert text."""
    budget = "" if line.budget_use is None else round(line.budget_use * 100, 1)
    duration = "" if line.duration_s is None else round(line.duration_s, 1)
    texts = (line.tenant, line.tenant_id, line.sign_in, line.preflight, line.fix)
    return [
        *(neutralise(text) for text in texts),
        line.rows,
        *(line.not_eligible[s.value] for s in NOT_ELIGIBLE),
        line.sent,
        line.queued,
        line.failed,
        neutralise(_codes(line.failed_by_error)),
        line.uncertain,
        line.not_sent,
        line.verified,
        line.pending_verification,
        line.not_verified,
        neutralise(_codes(line.device_errors)),
        budget,
        duration,
        "" if line.exit_code is None else line.exit_code,
        neutralise(line.run_dir),
        neutralise(line.note),
    ]


def write_rollup(
    campaign_dir: Path,
    outcomes: Sequence[TenantOutcome],
    *,
    max_sheet_rows: int = EXCEL_MAX_ROWS,
) -> RollupPaths:
    """Write rollup.xlsx, rollup.csv and rollup-summary.csv in one pass over the journals.

    Each file is swapped in atomically once all are complete. `max_sheet_rows` (header
    included) is Excel's limit; tests lower it to see the Devices sheets split.
    """
    paths = RollupPaths(
        campaign_dir / ROLLUP_XLSX, campaign_dir / ROLLUP_CSV, campaign_dir / ROLLUP_SUMMARY_CSV
    )
    headers = [h for h, _ in _TENANT_COLUMNS] + [header for _, header in COLUMNS]
    try:
        campaign_dir.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            # Temp files first, the workbook's last: it is renamed first, so a workbook Excel
            # holds open stops the swap before either CSV is replaced.
            temp_csv = stack.enter_context(replacing(paths.csv))
            temp_summary = stack.enter_context(replacing(paths.summary_csv))
            temp_xlsx = stack.enter_context(replacing(paths.xlsx))
            devices_csv = stack.enter_context(temp_csv.open("w", encoding="utf-8-sig", newline=""))
            writer = csv.writer(devices_csv)  # excel dialect, as report.csv
            writer.writerow(headers)
            book = stack.enter_context(open_book(temp_xlsx))
            sheets = DeviceSheets(book, max_sheet_rows, lead=_TENANT_COLUMNS)
            lines = []
            for outcome in outcomes:
                tally = Tally()
                lead = [
                    neutralise(outcome.entry.label),
                    neutralise(outcome.tenant_id or outcome.entry.tenant),
                ]
                for row in tenant_rows(outcome, tally):
                    values = lead + shown_row(COLUMN_VALUES(row))
                    writer.writerow(values)
                    sheets.append(values)
                lines.append(tenant_line(outcome, tally, campaign_dir))
            lines.append(totals_line(lines))
            sheets.finish()
            _summary_sheet(book, lines)
            book.close()
            with temp_summary.open("w", encoding="utf-8-sig", newline="") as summary_csv:
                summary_writer = csv.writer(summary_csv)
                summary_writer.writerow([header for header, _ in SUMMARY_COLUMNS])
                summary_writer.writerows(_cells(line) for line in lines)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(campaign_dir, exc, "the roll-up") from None
        raise BatchRotateError(
            f"cannot write the roll-up in {campaign_dir}: {exc}. Close {ROLLUP_XLSX} if it is "
            "open (Excel locks it on Windows), check free space and permissions, then write it "
            "again; every tenant's journal is intact."
        ) from exc
    return dataclasses.replace(paths, lines=tuple(lines))


# Chart segments: (header, colour, the line's count); together they add up to its rows.
_SEGMENTS: tuple[tuple[str, str, Callable[[TenantLine], int]], ...] = (
    ("Verified", BARS["green"], lambda line: line.verified),
    ("Queued, not verified", "A9D18E", lambda line: line.queued - line.verified),
    ("Failed or uncertain", BARS["red"], lambda line: line.failed + line.uncertain),
    ("Not sent", BARS["amber"], lambda line: line.not_sent),
    ("Not eligible", BARS["grey"], lambda line: line.ineligible),
)


def _summary_sheet(book: Book, lines: Sequence[TenantLine]) -> None:
    """Tenants as a table, the totals line under it, then the chart and the counts it reads."""
    sheet = book.sheet("Summary", widths=[w for _, w in SUMMARY_COLUMNS], freeze=True, first=True)
    headers = tuple(header for header, _ in SUMMARY_COLUMNS)
    sheet.append([text_cell(header, bold=True) for header in headers])
    tenants = [line for line in lines if not line.total]
    for line in tenants:
        sheet.append(_cells(line))
    last = max(len(tenants) + 1, 2)  # a table needs a data row: an empty one, as Excel
    sheet.add_table("Tenants", f"A1:{column_letter(len(headers))}{last}", headers)
    if not tenants:
        sheet.append([])
    sheet.append([text_cell(v, bold=True) if isinstance(v, str) else v for v in _cells(lines[-1])])
    sheet.append([])
    chart_header = sheet.append(
        [text_cell(h, bold=True) for h in ("Devices by outcome", *(s for s, _, _ in _SEGMENTS))]
    )
    for line in tenants:
        sheet.append([neutralise(line.tenant), *(count(line) for _, _, count in _SEGMENTS)])
    series = tuple(
        Series(column_letter(i), name, colour, tuple(float(count(line)) for line in tenants))
        for i, (name, colour, count) in enumerate(_SEGMENTS, start=2)
    )
    height_cm = max(8.0, 2.5 + 0.55 * len(tenants))  # a readable bar per tenant
    sheet.add_chart(
        StackedChart(
            "Devices by tenant",
            (7, chart_header - 1),
            chart_header,
            "A",
            tuple(neutralise(line.tenant) for line in tenants),
            series,
            (18.0, height_cm),
        )
    )


__all__ = [
    "NOT_ELIGIBLE",
    "ROLLUP_CSV",
    "ROLLUP_SUMMARY_CSV",
    "ROLLUP_XLSX",
    "SUMMARY_COLUMNS",
    "RollupPaths",
    "TenantLine",
    "rollup_document",
    "rollup_summary",
    "write_rollup",
]
