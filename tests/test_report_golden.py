"""The workbook is the same, cell for cell, as the one the openpyxl writer made (issue 23).

tests/data/report-golden*.xlsx were written by the openpyxl write-only renderer before the
stdlib writer replaced it; each is re-rendered from the same rows and compared through openpyxl:
values, types, fonts, fills, number formats, alignment, widths, frozen panes, tables,
conditional formats and charts. Regenerate (only for an intended change of look) with
`python -m tests.test_report_golden`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from batch_rotate.models import ReportRow, RunSummary
from batch_rotate.report import write_reports

DATA = Path(__file__).parent / "data"
GUID = "0f6c1d2e-0000-4000-8000-0000000000{:02d}"
SUMMARY = RunSummary(
    run_id="run-golden",
    tenant_id="tenant",
    client_id="client",
    started_at="2026-11-27T00:00:00Z",
    ended_at="2026-11-27T06:30:00.5+02:00",
    input_file="=devices.csv",
    input_sha256="ab" * 32,
    counts={"queued": 5, "failed": 3, "not_found": 1, "ineligible": 1, "weird": 1},
    details={
        "graph_url": "https://graph.microsoft.com",
        "Retry delay s": "2.0",
        "tenant_clock_offset_s": "-0.1",
        "serial_hint": "0012",
        "Formula": "=1+1",
        "when": "2026-11-27T08:00:00Z",
        "bidi \u202e name": "x\u202ey",
    },
    verification_counts={"verified": 2, "pending": 1, "failed": 2},
)


def _row(n: int, **changes: Any) -> ReportRow:
    base = ReportRow(
        row=n,
        input_value=f"LT-{n}",
        id_kind="device_name",
        intune_device_id=GUID.format(n),
        device_name=f"LT-{n}",
        serial_number=f"SN{n:04d}",
        entra_device_id="",
        os="Windows",
        status="queued",
        reason="rotation queued; the device rotates at its next check-in",
        http_status=204,
        error_code="",
        error_message="",
        request_id=GUID.format(n + 50),
        client_request_id=GUID.format(n + 70),
        attempts=1,
        requested_at="2026-11-27T10:20:30.1234567Z",
    )
    return base._replace(**changes)


def golden_rows() -> Iterator[ReportRow]:
    """Every kind of cell the renderer writes: each status tone, verification, hostile text."""
    verified = {
        "verification": "verified",
        "verification_detail": "new recovery key escrowed",
        "action_state": "done",
        "new_key_at": "2026-11-28T08:00:00Z",
        "last_check_in": "2026-11-28T07:59:00+01:30",
        "key_count": 2,
        "verified_at": "2026-11-28T09:00:00.999999999Z",
    }
    yield _row(2, accepted_at="2026-11-27T10:20:31Z", **verified)
    yield _row(3, verification="pending", verification_detail="not yet", key_count=0)
    yield _row(
        4,
        verification="failed",
        action_error_code="0x8031004A",
        action_state="failed",
        verification_detail="BitLocker is off",
    )
    yield _row(
        5,
        status="failed",
        reason="Graph answered 429 after 8 attempts",
        http_status=429,
        error_code="TooManyRequests",
        error_message='=HYPERLINK("http://evil","x")',
        attempts=8,
    )
    yield _row(6, status="failed", http_status=500, error_code="", error_message="#N/A")
    yield _row(
        7,
        status="failed",
        device_name="-2+3",
        input_value="@SUM(A1)",
        error_code="+cmd",
        http_status=None,
        requested_at="",
    )
    yield _row(8, status="not_found", intune_device_id="", input_value="0012", reason="\tcmd")
    yield _row(9, status="ineligible", device_name="x\u202egnp.exe", os="macOS", attempts=0)
    yield _row(10, status="weird", device_name="bell\x07 and \ufffe end  ", serial_number="-0.1")
    yield _row(
        11,
        input_value="  spaced  ",
        device_name="line\nbreak\r\nend",
        reason="long " * 7000,
        requested_at="0001-01-01T00:00:00Z",
        accepted_at="2026-02-30T00:00:00Z",
    )
    yield _row(12, verification="failed", action_error_code="custom", verification_detail="odd")
    yield _row(13, status="would_rotate", requested_at="2026-11-27T23:59:59.9999995-05:00")


CASES = {
    # split over three Devices sheets of four devices; Summary with both charts; Failures
    "report-golden.xlsx": (lambda: golden_rows(), SUMMARY, 5),
    # no rows, no verification, no details: empty table row, "No failed devices."
    "report-golden-empty.xlsx": (
        lambda: iter(()),
        dataclasses.replace(SUMMARY, counts={}, details={}, verification_counts={}),
        1_048_576,
    ),
}


def _colour(colour: Any) -> Any:
    return None if colour is None else (colour.type, colour.value, colour.tint)


def _font(font: Any) -> Any:
    return (font.b, font.i, font.u, font.sz, font.name, _colour(font.color))


def _fill(fill: Any) -> Any:
    if fill is None:
        return None
    return (fill.fill_type, _colour(fill.fgColor), _colour(fill.bgColor))


def _cell(cell: Any) -> Any:
    align = cell.alignment
    return (
        cell.coordinate,
        cell.value,
        cell.data_type,
        cell.is_date,
        cell.number_format,
        _font(cell.font),
        _fill(cell.fill),
        (align.wrap_text, align.vertical, align.horizontal),
    )


def _chart(chart: Any) -> Any:
    anchor = chart.anchor
    series = [
        (
            s.tx.strRef.f if s.tx and s.tx.strRef else None,
            s.val.numRef.f,
            s.cat.numRef.f if s.cat.numRef else s.cat.strRef.f,
            [(p.idx, str(p.graphicalProperties.solidFill.srgbClr)) for p in s.dPt],
        )
        for s in chart.series
    ]
    title = "".join(r.t for p in chart.title.tx.rich.p for r in p.r or [])
    return (
        type(chart).__name__,
        chart.type,
        chart.grouping,
        title,
        chart.legend,
        (anchor._from.col, anchor._from.row),
        (anchor.ext.width, anchor.ext.height),
        series,
    )


def workbook_facts(path: Path) -> list[Any]:
    """What a reader sees in the workbook, sheet by sheet, in a comparable form."""
    book = openpyxl.load_workbook(path)
    facts: list[Any] = [book.sheetnames]
    for sheet in book.worksheets:
        widths = {k: d.width for k, d in sheet.column_dimensions.items() if d.customWidth}
        tables = [
            (
                t.name,
                t.displayName,
                t.ref,
                t.autoFilter.ref if t.autoFilter else None,
                [c.name for c in t.tableColumns],
                (t.tableStyleInfo.name, t.tableStyleInfo.showRowStripes),
                t.headerRowCount,
                t.totalsRowShown,
            )
            for t in sheet.tables.values()
        ]
        formats = [
            (
                str(f.sqref),
                [
                    (r.type, r.formula, r.stopIfTrue, _fill(r.dxf.fill), _font(r.dxf.font))
                    for r in f.rules
                ],
            )
            for f in sheet.conditional_formatting
        ]
        cells = [[_cell(c) for c in row] for row in sheet.iter_rows()]
        facts.append(
            {
                "title": sheet.title,
                "freeze": sheet.freeze_panes,
                "widths": widths,
                "tables": tables,
                "formats": formats,
                "charts": [_chart(c) for c in sheet._charts],
                "cells": cells,
                "max": (sheet.max_row, sheet.max_column),
            }
        )
    return facts


@pytest.mark.parametrize("name", sorted(CASES))
def test_workbook_is_cell_for_cell_the_golden_one(tmp_path: Path, name: str) -> None:
    rows, summary, max_sheet_rows = CASES[name]
    paths = write_reports(tmp_path, rows(), summary, max_sheet_rows=max_sheet_rows)
    got, want = workbook_facts(paths.xlsx), workbook_facts(DATA / name)
    assert got[0] == want[0]
    for got_sheet, want_sheet in zip(got[1:], want[1:], strict=True):
        for key in want_sheet:
            assert got_sheet[key] == want_sheet[key], (want_sheet["title"], key)


def _regenerate() -> None:
    """Write the golden workbooks with the current renderer (an intended change of look)."""
    import tempfile

    for name, (rows, summary, max_sheet_rows) in CASES.items():
        with tempfile.TemporaryDirectory() as folder:
            paths = write_reports(Path(folder), rows(), summary, max_sheet_rows=max_sheet_rows)
            (DATA / name).write_bytes(paths.xlsx.read_bytes())
        print(f"wrote {DATA / name}", file=sys.stderr)


if __name__ == "__main__":
    _regenerate()
