"""The workbook people read at a glance: dates, colours, tables, charts, Failures, sheet split."""

from __future__ import annotations

import csv
import dataclasses
import re
import stat
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from batch_rotate.hresults import NO_ERROR_CODE, describe_graph_error, parse_hresult
from batch_rotate.models import ReportRow, RunSummary
from batch_rotate.report import COLUMNS, write_reports
from batch_rotate.report.cells import utc_datetime
from batch_rotate.report.summary import label

LAST = openpyxl.utils.get_column_letter(len(COLUMNS))
LETTER = {name: openpyxl.utils.get_column_letter(i) for i, (name, _) in enumerate(COLUMNS, start=1)}
SUMMARY = RunSummary(
    run_id="run-1",
    tenant_id="tenant",
    client_id="client",
    started_at="2026-11-27T00:00:00Z",
    ended_at="2026-11-27T00:01:00Z",
    input_file="devices.csv",
    input_sha256="ab" * 32,
    counts={"failed": 2, "queued": 5, "not_found": 1},
    details={"Ca bundle": "/etc/ca.pem", "Retry delay s": "2.0", "graph_url": "https://g"},
    verification_counts={"verified": 3, "pending": 2},
)


def _row(n: int, **changes: Any) -> ReportRow:
    base = ReportRow(
        row=n,
        input_value=f"LT-{n}",
        id_kind="device_name",
        intune_device_id=f"id-{n}",
        device_name=f"LT-{n}",
        serial_number="",
        entra_device_id="",
        os="Windows",
        status="queued",
        reason="ok",
        http_status=204,
        error_code="",
        error_message="",
        request_id="r",
        client_request_id="c",
        attempts=1,
        requested_at="2026-11-27T10:20:30.1234567Z",
    )
    return base._replace(**changes)


def _fills(sheet: Any, column: str) -> dict[str, str]:
    """Status named in each rule of the column's conditional formats -> its fill colour."""
    found: dict[str, str] = {}
    for formatting in sheet.conditional_formatting:
        if not str(formatting.sqref).startswith(f"{column}2"):
            continue
        for rule in formatting.rules:
            colour = rule.dxf.fill.fgColor.rgb[-6:]
            for status in re.findall(r'"(\w+)"', rule.formula[0]):
                found[status] = colour
    return found


def test_timestamps_are_utc_datetimes_and_the_csv_keeps_iso_text(tmp_path: Path) -> None:
    rows = [
        _row(
            2,
            requested_at="2026-11-27T10:20:30.1234567Z",
            new_key_at="2026-11-27T12:00:00+02:00",  # an offset is converted to UTC
            last_check_in="0001-01-01T00:00:00Z",  # Graph's "never": Excel cannot show it
            verified_at="yesterday",
        ),
        _row(3, requested_at="-2026-11-27T10:20:30Z"),  # neutralised text is never a date
    ]
    paths = write_reports(tmp_path, rows, SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Devices"]
    requested = sheet[f"{LETTER['requested_at']}2"]
    assert requested.value == datetime(2026, 11, 27, 10, 20, 30, 123000)
    assert requested.is_date and requested.number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet[f"{LETTER['new_key_at']}2"].value == datetime(2026, 11, 27, 10)
    assert sheet[f"{LETTER['last_check_in']}2"].value == "0001-01-01T00:00:00Z"
    assert sheet[f"{LETTER['verified_at']}2"].value == "yesterday"
    guarded = sheet[f"{LETTER['requested_at']}3"]
    assert (guarded.value, guarded.data_type) == ("'-2026-11-27T10:20:30Z", "s")
    headers = [c.value for c in sheet[1]]
    for name in ("requested_at", "new_key_at", "last_check_in", "verified_at"):
        assert "(UTC)" in headers[[n for n, _ in COLUMNS].index(name)]
    with paths.csv.open(encoding="utf-8-sig", newline="") as handle:
        data = list(csv.DictReader(handle))
    assert data[0]["Requested at (UTC)"] == "2026-11-27T10:20:30.1234567Z"
    assert data[1]["Requested at (UTC)"] == "'-2026-11-27T10:20:30Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T00:00:00Z", datetime(2026, 11, 27)),
        ("2026-11-27T00:00:00.5-01:30", datetime(2026, 11, 27, 1, 30, 0, 500000)),
        ("2026-11-27T00:00:00", None),  # no zone: its zone would be a guess
        ("2026-02-30T00:00:00Z", None),
        (" 2026-11-27T00:00:00Z", None),
        ("1899-12-31T23:59:59Z", None),
    ],
)
def test_utc_datetime(text: str, expected: datetime | None) -> None:
    assert utc_datetime(text) == expected


def test_status_and_verification_cells_are_coloured_by_rule(tmp_path: Path) -> None:
    rows = [_row(n) for n in range(2, 6)]
    sheet = openpyxl.load_workbook(write_reports(tmp_path, rows, SUMMARY).xlsx)["Devices"]
    green, amber, red, grey = "C6EFCE", "FFEB9C", "FFC7CE", "E7E6E6"
    for column in (LETTER["status"], LETTER["verification"]):
        ranges = [str(f.sqref) for f in sheet.conditional_formatting]
        assert f"{column}2:{column}5" in ranges
        fills = _fills(sheet, column)
        assert fills["queued"] == fills["verified"] == green
        assert fills["pending"] == fills["not_sent"] == fills["would_rotate"] == amber
        assert fills["failed"] == fills["uncertain"] == fills["done_no_new_key"] == red
        for skipped in ("ineligible", "not_found", "ambiguous", "duplicate", "invalid_input"):
            assert fills[skipped] == grey
        assert fills["not_supported"] == grey


def test_devices_sheet_is_a_styled_table_with_a_frozen_header(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, [_row(n) for n in range(2, 9)], SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Devices"]
    table = sheet.tables["Devices"]
    assert table.ref == f"A1:{LAST}8"
    assert [c.name for c in table.tableColumns] == [header for _, header in COLUMNS]
    assert table.tableStyleInfo.name == "TableStyleMedium2"
    assert sheet.freeze_panes == "A2" and not sheet.auto_filter.ref


def test_summary_has_human_labels_counts_tables_and_charts(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, [_row(2)], SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Summary"]
    labels = [row[0] for row in sheet.iter_rows(values_only=True)]
    assert {"CA bundle", "Retry delay (s)", "Graph URL"} <= set(labels)
    assert not {"Ca bundle", "Retry delay s", "graph_url"} & set(labels)
    status = sheet.tables["StatusCounts"]
    top, bottom = (int(n) for n in re.findall(r"\d+", status.ref))
    assert [sheet[f"A{r}"].value for r in range(top + 1, bottom + 1)] == [
        "queued",
        "failed",
        "not_found",
    ]
    assert "VerificationCounts" in sheet.tables
    with zipfile.ZipFile(paths.xlsx) as archive:
        names = archive.namelist()
        outcomes = archive.read("xl/charts/chart1.xml").decode()
        verification = archive.read("xl/charts/chart2.xml").decode()
    assert "xl/charts/chart1.xml" in names
    assert f"'Summary'!$B${top + 1}:$B${bottom}" in outcomes
    assert f"'Summary'!$A${top + 1}:$A${bottom}" in outcomes
    assert "Outcomes" in outcomes and "Verification by state" in verification


def test_no_verification_chart_before_verify(tmp_path: Path) -> None:
    summary = dataclasses.replace(SUMMARY, verification_counts={})
    paths = write_reports(tmp_path, [_row(2)], summary)
    with zipfile.ZipFile(paths.xlsx) as archive:
        charts = [n for n in archive.namelist() if n.startswith("xl/charts/chart")]
    assert charts == ["xl/charts/chart1.xml"]


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("ca_bundle", "CA bundle"),
        ("Ca bundle", "CA bundle"),
        ("Retry delay s", "Retry delay (s)"),
        ("write_budget", "Write budget"),
        ("proxy_url", "Proxy URL"),  # unknown: a sensible fallback
        ("poll_every_s", "Poll every (s)"),
        ("Command line", "Command line"),
        ("=1+1", "=1+1"),  # free text is left for neutralise()
    ],
)
def test_labels(key: str, shown: str) -> None:
    assert label(key) == shown


def test_failures_sheet_groups_by_code_with_cause_fix_and_few_examples(tmp_path: Path) -> None:
    rows = [
        *(
            _row(n, status="failed", http_status=429, error_code="TooManyRequests")
            for n in range(2, 10)
        ),
        _row(10, status="failed", http_status=403, error_code="Forbidden"),
        _row(11, verification="failed", action_error_code="0x8031004A"),
        _row(12, verification="failed", action_error_code="-2147418113"),  # 0x8000FFFF signed
        _row(13, verification="failed", action_error_code="0x00000000"),
        _row(14, verification="verified"),
    ]
    paths = write_reports(tmp_path, rows, SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Failures"]
    found = list(sheet.iter_rows(values_only=True))
    assert found[0] == ("Stage", "Error code", "Devices", "Cause", "Fix", "Examples")
    groups = {
        (stage, code): (count, cause, fix, ex) for stage, code, count, cause, fix, ex in found[1:]
    }
    count, cause, fix, examples = groups[("Rotate request", "TooManyRequests")]
    assert count == 8 and "throttled" in cause and fix
    assert examples.split("; ") == [f"LT-{n} (id-{n})" for n in range(2, 7)]  # five at most
    assert groups[("Rotate request", "Forbidden")][0] == 1
    device = "On the device (verify)"
    assert "FVE_E_NOT_ON_STACK" in groups[(device, "0x8031004A")][1]
    assert "E_UNEXPECTED" in groups[(device, "0x8000FFFF")][1]
    assert groups[(device, "0x00000000")][1] == NO_ERROR_CODE
    assert len(groups) == 5
    assert found[1][1] == "TooManyRequests"  # largest group first
    assert sheet.tables["Failures"].ref == "A1:F6"


def test_no_failures_says_so(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, [_row(2)], SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Failures"]
    assert [row for row in sheet.iter_rows(values_only=True)] == [("No failed devices.",)]


def test_error_code_tables() -> None:
    assert parse_hresult("0x8031002d") == 0x8031002D
    assert parse_hresult("-2147024809") == 0x80070057
    assert parse_hresult("TooManyRequests") is None
    assert "throttled" in describe_graph_error("", 429)[0]
    assert describe_graph_error("Authorization_RequestDenied")[1].startswith("grant")


def test_rows_over_the_sheet_limit_continue_on_further_sheets(tmp_path: Path) -> None:
    rows = [_row(n) for n in range(2, 12)]  # ten devices, four per sheet
    paths = write_reports(tmp_path, rows, SUMMARY, max_sheet_rows=5)
    book = openpyxl.load_workbook(paths.xlsx)
    assert book.sheetnames == ["Devices", "Devices (2)", "Devices (3)", "Summary", "Failures"]
    seen = []
    for title, table, last in (
        ("Devices", "Devices", 5),
        ("Devices (2)", "Devices2", 5),
        ("Devices (3)", "Devices3", 3),
    ):
        sheet = book[title]
        assert [c.value for c in sheet[1]] == [header for _, header in COLUMNS]
        assert sheet.tables[table].ref == f"A1:{LAST}{last}"
        assert sheet.freeze_panes == "A2"
        assert f"I2:I{last}" in [str(f.sqref) for f in sheet.conditional_formatting]
        seen += [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert seen == list(range(2, 12))
    with paths.csv.open(encoding="utf-8-sig", newline="") as handle:
        assert len(list(csv.reader(handle))) == 11  # the CSV stays whole
    where = dict(book["Summary"].iter_rows(max_col=2, values_only=True))["Devices sheets"]
    assert where.startswith("3 sheets (Devices, Devices (2), Devices (3))")
    assert "at most 4 devices per sheet" in where and "all 10" in where


def test_exactly_full_sheet_makes_no_empty_extra_sheet(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, [_row(n) for n in range(2, 6)], SUMMARY, max_sheet_rows=5)
    assert openpyxl.load_workbook(paths.xlsx).sheetnames == ["Devices", "Summary", "Failures"]


def test_reports_are_private_to_the_user(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, [_row(2)], SUMMARY)
    for path in (paths.xlsx, paths.csv):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_secret_like_and_formula_text_in_failures_and_summary_is_inert(tmp_path: Path) -> None:
    payload = '=HYPERLINK("http://evil","x")'
    rows = [_row(2, status="failed", error_code=payload, device_name=payload, http_status=400)]
    summary = dataclasses.replace(SUMMARY, details={"client_secret_hint": payload})
    paths = write_reports(tmp_path, rows, summary)
    book = openpyxl.load_workbook(paths.xlsx)
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f"
                if isinstance(cell.value, str):
                    assert not cell.value.startswith("=")
    failures = list(book["Failures"].iter_rows(min_row=2, values_only=True))
    assert failures[0][1] == "'" + payload and failures[0][5].startswith("'" + payload)


def test_summary_numbers_are_numeric_cells_and_only_formula_text_is_quoted(
    tmp_path: Path,
) -> None:
    """The journal records every detail as text: numbers must still be numbers in Excel, and a
    negative number (a clock offset) must not be shown as neutralised `'-0.1` text."""
    details = {
        "tenant_clock_offset_s": "-0.1",
        "batch_size": "20",
        "timeout_s": "60.0",
        "inventory_size": "1808",
        "tool_version": "1.2.0",
        "serial_hint": "0012",  # leading zero: an identifier, kept as written
        "long_id": "1234567890123456",  # more digits than Excel keeps
        "stopped_because": "-sent nothing",
        "dry_run": "False",
    }
    paths = write_reports(tmp_path, [_row(2)], dataclasses.replace(SUMMARY, details=details))
    sheet = openpyxl.load_workbook(paths.xlsx)["Summary"]
    cells = {row[0].value: row[1] for row in sheet.iter_rows() if len(row) > 1}
    numbers = {
        "Tenant clock offset (s)": -0.1,
        "Batch size (requests per $batch)": 20,
        "Timeout (s)": 60,
        "Devices in the tenant's inventory": 1808,
    }
    for name, value in numbers.items():
        assert cells[name].data_type == "n" and cells[name].value == value, name
    texts = {
        "Tool version": "1.2.0",
        "Serial hint": "0012",
        "Long ID": "1234567890123456",
        "Stopped because": "'-sent nothing",
        "Dry run": "False",
    }
    for name, value in texts.items():
        assert cells[name].data_type == "s" and cells[name].value == value, name
    counts = [cells[n] for n in ("queued", "failed", "Total")]
    assert all(c.data_type == "n" and isinstance(c.value, int) for c in counts)
