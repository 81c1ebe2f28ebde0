"""The stdlib XLSX writer: a well-formed package, dates stored as before, the bench's journal."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_rotate.report.cells import excel_date, utc_datetime
from batch_rotate.report.xlsx import column_letter, excel_serial
from batch_rotate.runs import render
from batch_rotate.sim.bench_report import build_journal
from tests.test_report_golden import CASES

_TYPES = "{http://schemas.openxmlformats.org/package/2006/content-types}"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def test_every_part_is_well_formed_typed_and_reachable(tmp_path: Path) -> None:
    """What Excel checks before it shows anything: XML parses, every part has a content type,
    every relationship points at a part that exists."""
    rows, summary, max_sheet_rows = CASES["report-golden.xlsx"]
    from batch_rotate.report import write_reports

    path = write_reports(tmp_path, rows(), summary, max_sheet_rows=max_sheet_rows).xlsx
    with zipfile.ZipFile(path) as book:
        names = set(book.namelist())
        parsed = {name: ET.fromstring(book.read(name)) for name in names}  # noqa: S314 (ours)
    typed = {e.get("PartName") for e in parsed["[Content_Types].xml"].iter(f"{_TYPES}Override")}
    assert typed == {"/" + n for n in names if not n.endswith((".rels", "[Content_Types].xml"))}
    for name, root in parsed.items():
        if not name.endswith(".rels"):
            continue
        base = name.replace("_rels/", "").removesuffix(".rels").rsplit("/", 1)[0]
        for rel in root.iter(f"{_RELS}Relationship"):
            target = rel.get("Target", "")
            part = target.lstrip("/") if target.startswith("/") else f"{base}/{target}".lstrip("/")
            if name == "_rels/.rels":
                part = target
            assert part in names, (name, target)


_TIMES = st.builds(
    lambda when, digits, zone: (
        when.strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{when.microsecond:06d}{'7' * max(digits - 6, 0)}"[: digits + 1] if digits else "")
        + zone
    ),
    st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(["Z", "+00:00", "+05:30", "-08:00", "+14:00"]),
)


@settings(max_examples=300, deadline=None)
@given(_TIMES)
def test_excel_date_is_the_serial_of_utc_datetime(text: str) -> None:
    """The fast path stores exactly the digits the datetime path (openpyxl's arithmetic) did."""
    when = utc_datetime(text)
    assert excel_date(text) == (None if when is None else excel_serial(when))
    assert excel_date(text) == (None if when is None else excel_serial(when))  # now cached


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(min_value=0, max_value=999),
    st.integers(min_value=0, max_value=999),
)
def test_the_journals_own_times_read_from_the_cache_keep_their_digits(
    when: datetime, first: int, then: int
) -> None:
    """`...T10:20:30.123Z` (the journal's times) are cached by the second: another millisecond
    of the same second, read from the cache, stores exactly the datetime path's digits."""
    second = when.strftime("%Y-%m-%dT%H:%M:%S")
    for millis in (first, then, first):
        text = f"{second}.{millis:03d}Z"
        expected = utc_datetime(text)
        assert excel_date(text) == (None if expected is None else excel_serial(expected))
    assert (
        excel_date(f"{second}.1x3Z") is None and excel_date(f"{second}.\u0661\u0662\u0663Z") is None
    )


def test_excel_date_edges() -> None:
    assert excel_date("1900-02-10T12:00:00Z") == 41.5  # before Excel's phantom 1900-02-29
    assert excel_date("1900-03-01T00:00:00Z") == 61
    assert excel_date("2026-02-30T00:00:00Z") is None
    assert excel_date("2026-11-27T24:00:00Z") is None
    assert excel_date("1899-12-31T23:00:00Z") is None
    assert excel_date("2026-11-27T10:20:30") is None  # no zone: not a date cell
    start = datetime(2026, 11, 27, tzinfo=UTC)
    for seconds in (0, 1, 86_399):
        text = (start + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
        assert excel_date(text) == 46353 + seconds / 86400


def test_column_letters() -> None:
    assert [column_letter(n) for n in (1, 26, 27, 52, 702, 703, 16_384)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "ZZ",
        "AAA",
        "XFD",
    ]


def test_bench_journal_renders_like_a_run(tmp_path: Path) -> None:
    """`make bench`'s synthetic journal is one `report` reads: every row, dates as dates."""
    run_dir = tmp_path / "run"
    build_journal(run_dir, 50)
    paths, counts = render(run_dir)
    assert counts == {"queued": 35, "failed": 5, "not_found": 5, "ineligible": 5}
    book = openpyxl.load_workbook(paths.xlsx)
    sheet = book["Devices"]
    assert sheet.max_row == 51
    assert isinstance(sheet["Q2"].value, datetime) and sheet["Q2"].number_format.startswith("yyyy")
    assert re.fullmatch(r"[0-9a-f-]{36}", sheet["D2"].value)
    assert paths.csv.read_text(encoding="utf-8-sig").count("\n") == 51
