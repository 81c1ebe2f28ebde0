"""Report rendering: one row per input row, Excel-safe cells, sheets and atomic writes."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_rotate.models import ReportRow, RunSummary
from batch_rotate.report import COLUMNS, DANGEROUS_PREFIXES, neutralise, write_reports

SUMMARY = RunSummary(
    run_id="run-1",
    tenant_id="tenant",
    client_id="client",
    started_at="2026-11-27T00:00:00Z",
    ended_at="2026-11-27T00:01:00Z",
    input_file="devices.csv",
    input_sha256="ab" * 32,
    counts={"queued": 2, "failed": 1},
    details={"Command line": "batch-rotate rotate devices.csv", "Formula": "=1+1"},
)


def _row(n: int, value: str = "LT-1", **changes: object) -> ReportRow:
    base: dict[str, object] = {
        "row": n,
        "input_value": value,
        "id_kind": "device_name",
        "intune_device_id": "id",
        "device_name": value,
        "serial_number": "",
        "entra_device_id": "",
        "os": "Windows",
        "status": "queued",
        "reason": "ok",
        "http_status": 204,
        "error_code": "",
        "error_message": "",
        "request_id": "r",
        "client_request_id": "c",
        "attempts": 1,
        "requested_at": "2026-11-27T00:00:00.000Z",
    }
    base.update(changes)
    return ReportRow(**base)  # type: ignore[arg-type]


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def test_sheets_header_freeze_filter_widths_and_order(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, (_row(n) for n in range(2, 7)), SUMMARY)
    book = openpyxl.load_workbook(paths.xlsx)
    assert book.sheetnames == ["Devices", "Summary"]
    sheet = book["Devices"]
    assert [c.value for c in sheet[1]] == [header for _, header, _ in COLUMNS]
    assert sheet[1][0].font.bold
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:Y6"
    assert sheet.column_dimensions["B"].width == 40
    assert [sheet.cell(row=r, column=1).value for r in range(2, 7)] == [2, 3, 4, 5, 6]
    assert sheet.cell(row=2, column=11).value == 204  # numbers stay numbers
    rows = _csv_rows(paths.csv)
    assert rows[0] == [header for _, header, _ in COLUMNS]
    assert [r[0] for r in rows[1:]] == ["2", "3", "4", "5", "6"]


def test_summary_sheet(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, iter([_row(2)]), SUMMARY)
    values = {
        r[0].value: r[1].value
        for r in openpyxl.load_workbook(paths.xlsx)["Summary"].iter_rows()
        if r and r[0].value
    }
    assert values["Tenant"] == "tenant"
    assert values["Input SHA-256"] == "ab" * 32
    assert values["queued"] == 2 and values["failed"] == 1 and values["total"] == 3
    assert values["Formula"] == "'=1+1"


@pytest.mark.parametrize(
    "payload",
    [
        '=HYPERLINK("http://x","click")',
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "\tcmd",
        "\rcmd",
        "=cmd|' /C calc'!A0",
    ],
)
def test_formula_injection_is_neutralised_in_both_files(tmp_path: Path, payload: str) -> None:
    paths = write_reports(tmp_path, iter([_row(2, payload, reason=payload)]), SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Devices"]
    for row in sheet.iter_rows():
        for cell in row:
            assert cell.data_type != "f"
    shown = str(sheet.cell(row=2, column=2).value)
    assert shown.startswith("'") and shown[2:] == payload[1:]  # XML turns a CR into LF
    (_, data) = _csv_rows(paths.csv)
    assert data[1].startswith("'") and data[9].startswith("'")


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_reports(tmp_path, iter([_row(2)]), SUMMARY)
    write_reports(tmp_path, iter([_row(2), _row(3)]), SUMMARY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv", "report.xlsx"]


def test_control_characters_do_not_crash(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, iter([_row(2, "LT\x00-\x07 1")]), SUMMARY)
    assert openpyxl.load_workbook(paths.xlsx)["Devices"].cell(row=2, column=2).value == "LT- 1"


def test_large_generator_streams(tmp_path: Path) -> None:
    def rows() -> Iterator[ReportRow]:
        for n in range(20_000):
            yield _row(n + 2, f"DEV-{n}")

    paths = write_reports(tmp_path, rows(), SUMMARY)
    assert len(_csv_rows(paths.csv)) == 20_001


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs", "Cc"])
        | st.sampled_from(list(DANGEROUS_PREFIXES)),
        max_size=30,
    )
)
def test_neutralised_text_round_trips_and_is_never_dangerous(tmp_path: Path, text: str) -> None:
    guarded = neutralise(text)
    assert not guarded.startswith(DANGEROUS_PREFIXES)
    paths = write_reports(tmp_path, iter([_row(2, text)]), SUMMARY)
    value = _csv_rows(paths.csv)[1][1]
    restored = value[1:] if text.startswith(DANGEROUS_PREFIXES) else value
    assert restored == text
