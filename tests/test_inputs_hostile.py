"""Hostile and oversized inputs: each stops fast with an InputError, never a hang or a traceback."""

from __future__ import annotations

import csv
import os
import resource
import socket
import zipfile
from pathlib import Path

import openpyxl
import pytest

from batch_rotate.errors import InputError
from batch_rotate.inputs import MAX_COLUMNS, MAX_FIELD_CHARS, read_device_list
from batch_rotate.models import IdKind

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
    assert "far.xlsx: cell XFD1048576 lies beyond column 1,000 (ALL)" in str(caught.value)
    assert _peak_mb() - before < 50


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
