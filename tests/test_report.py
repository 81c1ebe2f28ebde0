"""Report rendering: files re-opened with openpyxl and csv; Excel-safe cells; atomic writes."""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_rotate.errors import BatchRotateError
from batch_rotate.models import ReportRow, RunSummary
from batch_rotate.report import COLUMNS, DANGEROUS_PREFIXES, neutralise, write_reports
from batch_rotate.textsafe import safe_text

HEADERS = [header for _, header in COLUMNS]
LAST_COLUMN = openpyxl.utils.get_column_letter(len(COLUMNS))
SUMMARY = RunSummary(
    run_id="run-1",
    tenant_id="tenant",
    client_id="client",
    started_at="2026-11-27T00:00:00Z",
    ended_at="2026-11-27T00:01:00Z",
    input_file="devices.csv",
    input_sha256="ab" * 32,
    counts={"failed": 1, "queued": 5, "not_found": 1},
    details={"Command line": "batch-rotate rotate devices.csv", "Formula": "=1+1"},
    verification_counts={"verified": 3, "pending": 2},
)
PAYLOADS = [
    '=HYPERLINK("http://x","click")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\tcmd",
    "\rcmd",
    "=",
]


def _row(n: int, value: str = "LT-1", **changes: Any) -> ReportRow:
    base = ReportRow(
        row=n,
        input_value=value,
        id_kind="device_name",
        intune_device_id="0f6c1d2e-0000-4000-8000-000000000001",
        device_name=value,
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
        requested_at="2026-11-27T00:00:00.000Z",
    )
    return base._replace(**changes)


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def _cells(path: Path) -> Iterator[Any]:
    for sheet in openpyxl.load_workbook(path).worksheets:
        for row in sheet.iter_rows():
            yield from row


def _summary(path: Path) -> list[tuple[Any, Any]]:
    sheet = openpyxl.load_workbook(path)["Summary"]
    return [(a, b) for a, b in sheet.iter_rows(values_only=True)]


def _unguard(value: str) -> str:
    return value[1:] if value.startswith("'") else value


def test_columns_cover_the_report_row_in_the_documented_order() -> None:
    fields = set(ReportRow._fields)
    assert {name for name, _ in COLUMNS} <= fields
    assert len(set(HEADERS)) == len(HEADERS)
    assert HEADERS[:17] == [
        "Row",
        "Input value",
        "Identifier kind",
        "Intune device ID",
        "Device name",
        "Serial number",
        "Entra device ID",
        "OS",
        "Status",
        "Reason",
        "HTTP status",
        "Graph error code",
        "Message",
        "Request ID",
        "Client request ID",
        "Attempts",
        "Requested at (UTC)",
    ]


def test_devices_sheet_header_freeze_filter_widths_order_and_numbers(tmp_path: Path) -> None:
    rows = (_row(n, f"LT-{n}", http_status=None if n == 4 else 204) for n in range(2, 7))
    paths = write_reports(tmp_path, rows, SUMMARY)
    assert paths.xlsx == tmp_path / "report.xlsx" and paths.csv == tmp_path / "report.csv"
    book = openpyxl.load_workbook(paths.xlsx)
    assert book.sheetnames == ["Devices", "Summary", "Failures"]
    sheet = book["Devices"]
    assert [c.value for c in sheet[1]] == HEADERS
    assert all(c.font.bold for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    # the table's own filter, and no sheet filter to conflict with it
    assert sheet.tables["Devices"].autoFilter.ref == f"A1:{LAST_COLUMN}6"
    assert not sheet.auto_filter.ref
    for index, header in enumerate(HEADERS, start=1):
        width = sheet.column_dimensions[openpyxl.utils.get_column_letter(index)].width
        assert width >= len(header) + 3, header  # room for the header and its filter button
    assert sheet.column_dimensions["D"].width >= 36  # a GUID fits
    assert [c.value for c in sheet["A"][1:]] == [2, 3, 4, 5, 6]
    assert [c.value for c in sheet["B"][1:]] == [f"LT-{n}" for n in range(2, 7)]
    assert [c.value for c in sheet["K"][1:]] == [204, 204, None, 204, 204]
    for cell in (sheet["A2"], sheet["K2"], sheet["P2"]):  # row, HTTP status, attempts
        assert cell.data_type == "n" and isinstance(cell.value, int)
    assert sheet["Q2"].value == datetime(2026, 11, 27)  # a real date-time, in UTC
    assert sheet["Q2"].is_date and sheet["Q2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet.max_row == 6


def test_csv_has_bom_crlf_same_headers_and_rows(tmp_path: Path) -> None:
    rows = [_row(2, "Poste-Zoé, 1", http_status=None), _row(3, 'say "hi"')]
    paths = write_reports(tmp_path, rows, SUMMARY)
    raw = paths.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\r\n") == 3 and raw.count(b"\n") == 3
    header, first, second = _csv_rows(paths.csv)
    assert header == HEADERS
    assert first[:2] == ["2", "Poste-Zoé, 1"] and first[10] == "" and first[15] == "1"
    assert second[:2] == ["3", 'say "hi"'] and second[10] == "204"
    assert b'"Poste-Zo\xc3\xa9, 1"' in raw  # QUOTE_MINIMAL: quoted only where needed
    assert b",LT-1," not in raw and b",queued," in raw


def test_summary_sheet(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, [_row(2)], SUMMARY)
    lines = _summary(paths.xlsx)
    values = dict(lines)
    assert values["Run ID"] == "run-1"
    assert values["Tenant ID"] == "tenant"
    assert values["Client ID"] == "client"
    assert values["Started (UTC)"] == datetime(2026, 11, 27)
    assert values["Ended (UTC)"] == datetime(2026, 11, 27, 0, 1)
    assert values["Input file"] == "devices.csv"
    assert values["Input SHA-256"] == "ab" * 32
    start = lines.index(("Counts by status", "Count"))
    assert lines[start + 1 : start + 5] == [
        ("queued", 5),
        ("failed", 1),
        ("not_found", 1),
        ("Total", 7),
    ]
    start = lines.index(("Verification (new key escrowed)", "Count"))
    assert lines[start + 1 : start + 4] == [("verified", 3), ("pending", 2), ("Total", 5)]
    start = lines.index(("Details", None))
    assert lines[start + 1 :] == [
        ("Command line", "batch-rotate rotate devices.csv"),
        ("Formula", "'=1+1"),
    ]
    assert openpyxl.load_workbook(paths.xlsx)["Summary"]["A1"].font.bold


def test_summary_without_verification_or_details(tmp_path: Path) -> None:
    bare = dataclasses.replace(SUMMARY, counts={}, details={}, verification_counts={})
    lines = _summary(write_reports(tmp_path, [], bare).xlsx)
    labels = [a for a, _ in lines]
    assert "Verification (new key escrowed)" not in labels and "Details" not in labels
    assert ("Total", 0) in lines


@pytest.mark.parametrize("payload", PAYLOADS)
def test_formula_injection_is_neutralised_in_both_files(tmp_path: Path, payload: str) -> None:
    row = _row(2, payload, reason=payload, error_message=payload, os="x" + payload)
    summary = dataclasses.replace(SUMMARY, input_file=payload, details={payload: payload})
    paths = write_reports(tmp_path, [row], summary)
    assert all(cell.data_type != "f" for cell in _cells(paths.xlsx))
    with zipfile.ZipFile(paths.xlsx) as archive:  # no formula in any cell of any sheet
        for name in archive.namelist():
            xml = archive.read(name).decode()
            if name.startswith("xl/charts/"):  # a chart's <f> is a range it plots, nothing else
                assert all(
                    re.fullmatch(r"'Summary'!\$?[AB]\$?\d+(:\$[AB]\$\d+)?", ref)
                    for ref in re.findall(r"<f>(.*?)</f>", xml)
                )
            else:
                assert "<f>" not in xml and "<f " not in xml, name
    sheet = openpyxl.load_workbook(paths.xlsx)["Devices"]
    for column in ("B", "E", "J", "M"):
        shown = sheet[f"{column}2"].value
        assert sheet[f"{column}2"].data_type == "s"
        # the guard, then the payload (XML reads a CR back as LF; harmless once not leading)
        assert shown == "'" + payload.replace("\r", "\n")
    assert sheet["H2"].value == "x" + payload.replace("\r", "\n")  # not leading: left alone
    assert ("'" + payload.replace("\r", "\n"), "'" + payload.replace("\r", "\n")) in _summary(
        paths.xlsx
    )
    (_, data) = _csv_rows(paths.csv)
    for index in (1, 4, 9, 12):
        assert data[index] == "'" + payload
    assert data[7] == "x" + payload


def test_error_literals_stay_strings(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, [_row(2, "#N/A", reason="#REF!")], SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Devices"]
    assert (sheet["B2"].value, sheet["B2"].data_type) == ("#N/A", "s")
    assert (sheet["J2"].value, sheet["J2"].data_type) == ("#REF!", "s")
    assert all(cell.data_type not in ("f", "e") for cell in _cells(paths.xlsx))


def test_unwritable_characters_are_dropped_not_fatal(tmp_path: Path) -> None:
    rows = [_row(2, "LT\x00-\x07 1\x1f", reason="bad \ud800 \ufffe")]
    paths = write_reports(tmp_path, rows, SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Devices"]
    assert sheet["B2"].value == "LT- 1"
    assert sheet["J2"].value == "bad \ufffd \ufffd"
    (_, data) = _csv_rows(paths.csv)
    assert data[1] == "LT- 1" and data[9] == "bad \ufffd \ufffd"  # both files say the same
    assert neutralise("\x00=1") == "'=1"  # stripping cannot uncover a formula


def test_bidi_overrides_are_escaped_in_both_files(tmp_path: Path) -> None:
    # "PC-\u202eexe.txt" shows as "PC-txt.exe"; a reviewer must see what Intune holds.
    rows = [_row(2, "PC-\u202eexe.txt\u2066\u200f", reason="Graph said\x9b31m: no\u2028more")]
    paths = write_reports(tmp_path, rows, SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Devices"]
    (_, data) = _csv_rows(paths.csv)
    for name, reason in ((sheet["B2"].value, sheet["J2"].value), (data[1], data[9])):
        assert name == "PC-\\u202eexe.txt\\u2066\\u200f"
        assert reason == "Graph said\\x9b31m: no\\u2028more"


def test_rewrite_replaces_files_and_leaves_no_temp_files(tmp_path: Path) -> None:
    write_reports(tmp_path, [_row(2)], SUMMARY)
    paths = write_reports(tmp_path, [_row(2), _row(3)], SUMMARY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv", "report.xlsx"]
    assert len(_csv_rows(paths.csv)) == 3
    assert openpyxl.load_workbook(paths.xlsx)["Devices"].max_row == 3


def test_failure_mid_stream_keeps_the_previous_report(tmp_path: Path) -> None:
    write_reports(tmp_path, [_row(2)], SUMMARY)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken() -> Iterator[ReportRow]:
        yield _row(2)
        yield _row(3)
        raise RuntimeError("journal went away")

    with pytest.raises(RuntimeError):
        write_reports(tmp_path, broken(), SUMMARY)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_locked_file_is_a_clear_error_and_nothing_is_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_reports(tmp_path, [_row(2)], SUMMARY)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def locked(src: Any, dst: Any) -> None:
        raise PermissionError(13, "Permission denied", str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", locked)
    with pytest.raises(BatchRotateError, match=r"cannot write the report in .*batch-rotate report"):
        write_reports(tmp_path, [_row(2), _row(3)], SUMMARY)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_empty_report_has_headers_only(tmp_path: Path) -> None:
    paths = write_reports(tmp_path / "new" / "run", iter(()), SUMMARY)
    sheet = openpyxl.load_workbook(paths.xlsx)["Devices"]
    # a table needs a data row: an empty one, as Excel itself makes
    assert sheet.max_row == 1 and sheet.tables["Devices"].ref == f"A1:{LAST_COLUMN}2"
    assert _csv_rows(paths.csv) == [HEADERS]


def test_large_generator_streams_in_one_pass(tmp_path: Path) -> None:
    total = 20_000

    def rows() -> Iterator[ReportRow]:
        for n in range(total):
            yield _row(n + 2, f"DEV-{n}", status="failed" if n % 7 else "queued")

    paths = write_reports(tmp_path, rows(), SUMMARY)
    data = _csv_rows(paths.csv)
    assert len(data) == total + 1 and data[-1][:2] == [str(total + 1), f"DEV-{total - 1}"]
    book = openpyxl.load_workbook(paths.xlsx, read_only=True)
    seen = [r[0] for r in book["Devices"].iter_rows(min_row=2, max_col=1, values_only=True)]
    book.close()
    assert seen == list(range(2, total + 2))


_ANY_TEXT = st.text(
    alphabet=st.characters(codec=None)
    | st.sampled_from([*DANGEROUS_PREFIXES, "'", "\x00", "\ud800", "\uffff", "#"]),
    max_size=40,
)


def _expected(text: str) -> str:
    """What a reader gets back once the guard quote is removed."""
    cleaned = "".join(
        "" if c < " " and c not in "\t\n\r" else "\ufffd" if "\ud800" <= c <= "\udfff" else c
        for c in text
    )
    cleaned = cleaned.replace("\ufffe", "\ufffd").replace("\uffff", "\ufffd")
    return safe_text(cleaned, keep="\t\n\r")  # bidi, format and C1: visible escapes


@given(_ANY_TEXT)
def test_neutralised_text_is_never_dangerous_and_stable(text: str) -> None:
    guarded = neutralise(text)
    expected = _expected(text)
    assert guarded == ("'" + expected if expected.startswith(DANGEROUS_PREFIXES) else expected)
    assert not guarded.startswith(DANGEROUS_PREFIXES)
    assert neutralise(guarded) == guarded


@settings(max_examples=60, deadline=None)
@given(_ANY_TEXT)
def test_any_text_round_trips_through_the_csv(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = write_reports(Path(folder), [_row(2, text, reason=text)], SUMMARY)
        (_, data) = _csv_rows(paths.csv)
    for value in (data[1], data[9]):
        assert not value.startswith(DANGEROUS_PREFIXES)
        restored = value[1:] if _expected(text).startswith(DANGEROUS_PREFIXES) else value
        assert restored == _expected(text)


@settings(max_examples=30, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=30))
def test_any_text_round_trips_through_the_workbook(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = write_reports(Path(folder), [_row(2, text)], SUMMARY)
        cell = openpyxl.load_workbook(paths.xlsx)["Devices"]["B2"]
    expected = _expected(text)
    assert cell.data_type in ("s", "n")  # "n" only for an empty cell
    if expected.startswith(DANGEROUS_PREFIXES):
        assert cell.value == "'" + expected
    else:
        assert (cell.value or "") == expected
