"""Hostile and oversized inputs: each stops fast with an InputError, never a hang or a traceback."""

from __future__ import annotations

import csv
import os
import resource
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest

from batch_rotate.errors import InputError
from batch_rotate.inputs import MAX_COLUMNS, MAX_FIELD_CHARS, read_device_list
from batch_rotate.models import IdKind

from .xlsx_shapes import INTUNE_HEADER, intune_rows, write_xlsx

GUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _xlsx(path: Path, rows: list[list[str]], old: bytes = b"", new: bytes = b"") -> Path:
    """A one-sheet workbook, its sheet XML edited where openpyxl would not write what we need."""
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    if old:
        with zipfile.ZipFile(path) as source:
            parts = {name: source.read(name) for name in source.namelist()}
        sheet = parts["xl/worksheets/sheet1.xml"]
        assert old in sheet
        parts["xl/worksheets/sheet1.xml"] = sheet.replace(old, new)
        with zipfile.ZipFile(path, "w") as target:
            for name, data in parts.items():
                target.writestr(name, data)
    return path


def test_a_device_file_is_refused_without_reading_it() -> None:
    with pytest.raises(InputError) as caught:
        read_device_list(Path("/dev/zero"))
    assert str(caught.value) == (
        "/dev/zero: is not a regular file (a device, pipe or socket cannot be a device list); "
        "give a CSV or XLSX file"
    )
    assert caught.value.exit_code == 2


def test_a_fifo_is_refused_instead_of_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "devices.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"devices.csv: is not a regular file.*CSV or XLSX"):
        read_device_list(fifo)


def test_a_socket_and_a_symlink_to_a_device_are_refused(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "s.csv"))
        with pytest.raises(InputError, match="is not a regular file"):
            read_device_list(tmp_path / "s.csv")
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="is not a regular file"):
        read_device_list(tmp_path / "zero.csv")


def test_a_folder_says_give_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder, not a file; give a CSV or XLSX file"):
        read_device_list(tmp_path)


@pytest.mark.parametrize("header", [True, False])
def test_five_million_commas_on_one_line_fail_fast_and_small(tmp_path: Path, header: bool) -> None:
    path = tmp_path / "commas.csv"
    path.write_text(("Device ID,Note\n" if header else "") + "," * 5_000_000 + "\n")
    before = _peak_mb()
    with pytest.raises(InputError) as caught:
        read_device_list(path)
    row = 2 if header else 1
    assert f"commas.csv: row {row} has over" in str(caught.value)
    assert f"more than the {MAX_COLUMNS:,} a device list may have" in str(caught.value)
    assert _peak_mb() - before < 50


def test_too_many_columns_in_the_header_or_a_row(tmp_path: Path) -> None:
    wide = ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1))
    path = tmp_path / "wide.csv"
    path.write_text(f"Device ID,{wide}\n{GUID}\n")
    with pytest.raises(InputError, match=r"wide.csv: row 1 has 1,002 cells, more than the 1,000"):
        read_device_list(path)
    path.write_text(f"Device ID,Note\n{GUID},x\n{GUID}" + ",x" * MAX_COLUMNS + "\n")
    with pytest.raises(InputError, match=r"row 3 has 1,001 cells"):
        read_device_list(path)


def test_a_cell_longer_than_excel_allows_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(f'Device ID,Note\n{GUID},ok\n{GUID},"{"x" * (MAX_FIELD_CHARS + 1)}"\n')
    with pytest.raises(InputError) as caught:
        read_device_list(path)
    message = str(caught.value)
    assert "long.csv: row 3 (starting at line 3) has a cell longer than 32,767" in message
    assert "fix the quotes" in message
    path.write_text(f'Device ID,Note\n{GUID},"{"x" * MAX_FIELD_CHARS}"\n')
    assert len(read_device_list(path)) == 1  # exactly Excel's limit is fine


def test_an_unclosed_quote_stops_at_the_cell_limit_not_the_end_of_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "unclosed.csv"
    path.write_text(f'Device ID,Note\n{GUID},"never closed\n' + f"{GUID},x\n" * 20_000)
    with pytest.raises(InputError, match=r"row 2 \(starting at line 2\).*opens a cell"):
        read_device_list(path)


def test_a_line_longer_than_any_device_list_needs(tmp_path: Path) -> None:
    path = tmp_path / "line.csv"
    path.write_text("Device name\n" + "x" * (1 << 21) + "\n")
    with pytest.raises(InputError, match=r"line.csv: row 2 \(line 2\) is longer than 1,048,576"):
        read_device_list(path)


def test_a_csv_field_limit_set_elsewhere_is_restored(tmp_path: Path) -> None:
    before = csv.field_size_limit()
    path = tmp_path / "d.csv"
    path.write_text(f"Device ID\n{GUID}\n")
    read_device_list(path)
    assert csv.field_size_limit() == before


def test_one_cell_at_xfd1048576_does_not_allocate_a_grid(tmp_path: Path) -> None:
    path = tmp_path / "far.xlsx"
    book = openpyxl.Workbook()
    book.active["XFD1048576"] = "x"
    book.save(path)
    assert path.stat().st_size < 6000
    before = _peak_mb()
    with pytest.raises(InputError) as caught:
        read_device_list(path)
    # Columns past the cap are never read: the sheet has nothing a device list could hold.
    assert "far.xlsx: sheet 'Sheet' is empty (nothing in columns A to ALL, the 1,000" in str(
        caught.value
    )
    assert _peak_mb() - before < 50


def _counted_rows(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[int]:
    """The width of every row openpyxl's read-only sheet hands the reader (cells materialised)."""
    book = openpyxl.load_workbook(path, read_only=True)
    sheet_type = type(book.active)
    book.close()
    original = sheet_type.iter_rows
    widths: list[int] = []

    def iter_rows(self: object, *args: object, **kwargs: object) -> Iterator[tuple[object, ...]]:
        for row in original(self, *args, **kwargs):
            widths.append(len(row))
            yield row

    monkeypatch.setattr(sheet_type, "iter_rows", iter_rows)
    return widths


def test_an_empty_cell_at_xfd_on_every_row_is_never_padded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 19: openpyxl pads each read-only row out to its last cell, here 16,384 a row.
    rows = 3000
    path = write_xlsx(tmp_path / "xfd.xlsx", INTUNE_HEADER, intune_rows(rows), far_empty_cell=True)
    widths = _counted_rows(monkeypatch, path)
    devices = read_device_list(path)
    refs = list(devices.refs)
    assert (devices.column, len(refs), refs[-1].row) == ("Device ID", rows, rows + 1)
    assert not [ref for ref in refs if ref.error]
    assert devices.columns_found == INTUNE_HEADER
    # Linear in the rows and as wide as the header: one header search row of at most the cap,
    # then 13 cells a row (unbounded, this is 16,384 x 3,001 cells).
    assert sum(widths) <= MAX_COLUMNS + len(INTUNE_HEADER) * rows
    assert len(widths) == rows + 1


def test_a_note_beside_the_header_in_a_workbook_is_not_a_bad_row(tmp_path: Path) -> None:
    # Cells right of the header are not read; in a workbook they are notes, not a stray delimiter.
    path = write_xlsx(tmp_path / "notes.xlsx", ["Device name"], [["LT-1", "", "spare"], ["LT-2"]])
    devices = read_device_list(path)
    assert [(r.row, r.key, r.error) for r in devices.refs] == [(2, "lt-1", None), (3, "lt-2", None)]


def test_a_declared_dimension_is_ignored(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path / "claims.xlsx",
        [["Device ID"], [GUID]],
        b'<dimension ref="A1:A2" />',
        b'<dimension ref="A1:XFD1048576" />',
    )
    before = _peak_mb()
    devices = read_device_list(path)
    assert [(r.row, r.key) for r in devices.refs] == [(2, GUID)]
    assert _peak_mb() - before < 50


def test_a_sheet_of_whitespace_cells_is_cheap_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    for _ in range(300):
        sheet.append([" ", "\t", "  "] * 10)
    book.save(path)
    before = _peak_mb()
    with pytest.raises(InputError, match=r"blank.xlsx: sheet 'Sheet' is empty"):
        read_device_list(path)
    assert _peak_mb() - before < 50


def test_xlsx_cell_over_the_limit_and_beyond_the_column_cap(tmp_path: Path) -> None:
    # openpyxl will not write an over-long cell: lengthen it in the sheet XML.
    path = _xlsx(
        tmp_path / "big.xlsx",
        [["Device name", "Note"], ["LT-1", "yy"]],
        b"<t>yy</t>",
        b"<t>" + b"y" * (MAX_FIELD_CHARS + 1) + b"</t>",
    )
    with pytest.raises(InputError, match=r"big.xlsx: cell B2 \(row 2\) holds 32,768 characters"):
        read_device_list(path)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Device name"])
    sheet.append(["LT-1"])
    sheet.cell(row=2, column=MAX_COLUMNS + 5, value="   ")  # blank beyond the cap: ignored
    book.save(path)
    assert [r.key for r in read_device_list(path).refs] == ["lt-1"]


def test_a_quoted_note_holding_a_device_line_is_one_row() -> None:
    path = Path(__file__).parent / "data" / "inputs" / "quoted-newline-note.csv"
    devices = read_device_list(path)
    assert [(r.row, r.key) for r in devices.refs] == [
        (2, "1b4e28ba-2fa1-41d2-883f-0016d3cca427"),
        (3, "3d604adc-4bc3-43f4-aa5b-2238f5eec649"),
    ]
    serials = read_device_list(path, id_kind=IdKind.SERIAL_NUMBER)
    assert [(r.row, r.key) for r in serials.refs] == [(2, "snk001"), (3, "snk003")]
