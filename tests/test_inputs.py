"""Reading device lists: files, encodings, delimiters, column detection and file-level errors."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

import openpyxl
import pytest

from batch_rotate.errors import InputError
from batch_rotate.inputs import HEADERS, read_device_list
from batch_rotate.models import IdKind

DATA = Path(__file__).parent / "data" / "inputs"
GUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
GUID2 = "9a1b2c3d-0000-4000-8000-000000000001"


def _csv(tmp_path: Path, text: str, name: str = "d.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


# --- real exports -------------------------------------------------------------------------------


def test_intune_all_devices_export() -> None:
    path = DATA / "intune-all-devices.csv"
    devices = read_device_list(path)
    assert (devices.column, devices.kind) == ("Device ID", IdKind.INTUNE_ID)
    assert devices.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert devices.path == path
    assert len(devices) == 3
    assert devices.columns_found[:2] == ("Device ID", "Device name")
    assert len(devices.columns_found) == 13
    assert [(r.row, r.key, r.kind) for r in devices.refs] == [
        (2, "b610a9f7-f927-4f4e-b8b3-33a8e5446dd4", IdKind.INTUNE_ID),
        (3, "29e821a4-c748-43e3-9ba1-621582283d15", IdKind.INTUNE_ID),
        (4, "0d4e5a6b-1c2d-4e3f-8a9b-0c1d2e3f4a5b", IdKind.INTUNE_ID),
    ]
    assert devices.refs[2].value == "{0D4E5A6B-1C2D-4E3F-8A9B-0C1D2E3F4A5B}"


def test_intune_export_by_entra_id_flags_the_all_zero_id() -> None:
    devices = read_device_list(
        DATA / "intune-all-devices.csv", id_column="microsoft entra device id"
    )
    assert (devices.column, devices.kind) == ("Microsoft Entra Device ID", IdKind.ENTRA_DEVICE_ID)
    zero = devices.refs[1]
    assert zero.row == 3 and zero.kind is None and zero.key == ""
    assert zero.error is not None
    assert "Microsoft Entra Device ID is all zeros" in zero.error
    assert "list it by its Intune Device ID" in zero.error


def test_intune_export_by_name_keeps_a_quoted_comma() -> None:
    devices = read_device_list(DATA / "intune-all-devices.csv", id_kind=IdKind.DEVICE_NAME)
    assert devices.column == "Device name"
    assert devices.refs[2].value == "LT-00004G, spare"
    assert devices.refs[2].key == "lt-00004g, spare"


def test_old_export_header_and_preference_for_intune_id() -> None:
    path = DATA / "intune-export-old-headers.csv"
    devices = read_device_list(path)
    assert (devices.column, devices.kind) == ("Device ID", IdKind.INTUNE_ID)
    entra = read_device_list(path, id_column="  azure ad device id ")
    assert (entra.column, entra.kind) == ("Azure AD Device ID", IdKind.ENTRA_DEVICE_ID)
    assert entra.refs[0].key == GUID2
    by_kind = read_device_list(path, id_kind=IdKind.ENTRA_DEVICE_ID)
    assert by_kind.column == "Azure AD Device ID"
    serial = read_device_list(path, id_kind=IdKind.SERIAL_NUMBER)
    assert (serial.column, serial.refs[0].key) == ("Serial number", "abc123")


def test_entra_export_device_id_is_the_entra_id_not_object_id() -> None:
    devices = read_device_list(DATA / "entra-export.csv")
    assert (devices.column, devices.kind) == ("deviceId", IdKind.ENTRA_DEVICE_ID)
    assert devices.refs[0].key == "22222222-bbbb-4bbb-8bbb-222222222222"
    named = read_device_list(DATA / "entra-export.csv", id_kind=IdKind.DEVICE_NAME)
    assert (named.column, named.refs[0].key) == ("displayName", "lt-entra-1")


def test_graph_devices_list_id_is_the_object_id_and_never_used(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"id,displayName\n{GUID},LT-1\n")
    assert read_device_list(path).column == "id"  # managedDevices: id is the Intune id
    path = _csv(tmp_path, f"id,deviceId,displayName\n{GUID},{GUID2},LT-1\n")
    devices = read_device_list(path)
    assert (devices.column, devices.kind) == ("deviceId", IdKind.ENTRA_DEVICE_ID)
    path = _csv(tmp_path, f"id,objectId,displayName\n{GUID},{GUID2},LT-1\n")
    assert read_device_list(path).column == "displayName"
    path = _csv(tmp_path, f"objectId\n{GUID}\n")
    with pytest.raises(InputError, match="no device identifier column"):
        read_device_list(path)


# --- header names -------------------------------------------------------------------------------

ALL_HEADERS = [(name, kind) for kind, names in HEADERS.items() for name in names]


@pytest.mark.parametrize(("header", "kind"), ALL_HEADERS)
def test_every_accepted_header_any_case_and_padding(
    tmp_path: Path, header: str, kind: IdKind
) -> None:
    value = GUID if kind in (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID) else "LT-1"
    for written in (header, header.upper(), f"  {header.lower()} "):
        devices = read_device_list(_csv(tmp_path, f"{written},Other\n{value},x\n"))
        assert (devices.column, devices.kind) == (written.strip(), kind)
        assert devices.refs[0].error is None


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("Device ID", IdKind.INTUNE_ID),  # Intune "All devices" export
        ("deviceId", IdKind.ENTRA_DEVICE_ID),  # Entra devices export
        ("DEVICEID", IdKind.ENTRA_DEVICE_ID),
        ("device id", IdKind.INTUNE_ID),
        ("Microsoft Entra Device ID", IdKind.ENTRA_DEVICE_ID),
        ("Azure AD Device ID", IdKind.ENTRA_DEVICE_ID),
        ("Serial number", IdKind.SERIAL_NUMBER),
        ("Computer Name", IdKind.DEVICE_NAME),
        ("displayName", IdKind.DEVICE_NAME),
    ],
)
def test_device_id_and_deviceid_differ_only_by_a_space(
    tmp_path: Path, header: str, kind: IdKind
) -> None:
    value = GUID if kind in (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID) else "LT-1"
    assert read_device_list(_csv(tmp_path, f"{header}\n{value}\n")).kind == kind


@pytest.mark.parametrize("header", ["Device  ID", "Device_ID", "objectId", "Serial no", "Owner"])
def test_near_miss_headers_are_not_guessed(tmp_path: Path, header: str) -> None:
    with pytest.raises(InputError, match="no device identifier column"):
        read_device_list(_csv(tmp_path, f"{header},Note\nLT-1,x\n"))


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["Device name", "Serial number", "Microsoft Entra Device ID", "Device ID"], "Device ID"),
        (
            ["Device name", "Serial number", "Microsoft Entra Device ID"],
            "Microsoft Entra Device ID",
        ),
        (["Device name", "Serial number"], "Serial number"),
        (["Note", "Device name"], "Device name"),
    ],
)
def test_preference_intune_then_entra_then_serial_then_name(
    tmp_path: Path, columns: list[str], expected: str
) -> None:
    values = {
        "Device ID": GUID,
        "Microsoft Entra Device ID": GUID2,
        "Serial number": "SN1",
        "Device name": "LT-1",
        "Note": "n",
    }
    text = ",".join(columns) + "\n" + ",".join(values[c] for c in columns) + "\n"
    assert read_device_list(_csv(tmp_path, text)).column == expected


def test_an_all_empty_preferred_column_gives_way_to_the_next(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"Device ID,Microsoft Entra Device ID,Device name\n,{GUID2},LT-1\n ,,\n")
    devices = read_device_list(path)
    assert (devices.column, devices.kind) == ("Microsoft Entra Device ID", IdKind.ENTRA_DEVICE_ID)
    assert [(r.row, r.key) for r in devices.refs] == [(2, GUID2)]
    path = _csv(tmp_path, "Device ID,Microsoft Entra Device ID,Device name\n,,LT-1\n,,LT-2\n")
    assert read_device_list(path).column == "Device name"


def test_a_partly_empty_preferred_column_is_kept_and_the_gaps_reported(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"Device ID,Device name\n{GUID},LT-1\n,LT-2\n")
    devices = read_device_list(path)
    assert devices.column == "Device ID"
    gap = devices.refs[1]
    assert (gap.row, gap.kind, gap.value) == (3, None, "")
    assert gap.error == "empty Device ID; fill it in or delete the row"


# --- forced column and kind ---------------------------------------------------------------------


def test_forced_column_must_exist_and_lists_the_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Device name,Owner\nLT-1,a\n")
    with pytest.raises(InputError) as caught:
        read_device_list(path, id_column="Serial")
    message = str(caught.value)
    assert "d.csv" in message and "no column 'Serial'" in message
    assert "'Device name', 'Owner'" in message and "--id-column" in message


def test_forced_unknown_column_needs_a_kind(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Owner,Asset\nalice,LT-1\n")
    with pytest.raises(InputError, match=r"'Asset' is not a known identifier column.*--id-kind"):
        read_device_list(path, id_column="asset")
    devices = read_device_list(path, id_column="Asset", id_kind=IdKind.DEVICE_NAME)
    assert (devices.column, devices.kind, devices.refs[0].key) == ("Asset", "device_name", "lt-1")


def test_forced_kind_overrides_the_header(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"Device ID\n{GUID}\n")
    devices = read_device_list(path, id_kind=IdKind.ENTRA_DEVICE_ID)
    assert (devices.column, devices.kind) == ("Device ID", IdKind.ENTRA_DEVICE_ID)
    assert devices.refs[0].kind == IdKind.ENTRA_DEVICE_ID
    forced = read_device_list(path, id_column="Device ID", id_kind=IdKind.ENTRA_DEVICE_ID)
    assert forced.kind == IdKind.ENTRA_DEVICE_ID


def test_forced_kind_without_such_a_column_asks_for_the_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"Device ID,Note\n{GUID},x\n")
    with pytest.raises(InputError, match=r"no column is known to hold serial numbers.*--id-column"):
        read_device_list(path, id_kind=IdKind.SERIAL_NUMBER)


def test_unknown_columns_are_refused_with_everything_needed_to_fix_it(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Owner,Dept\nalice,IT\n", name="people.csv")
    with pytest.raises(InputError) as caught:
        read_device_list(path)
    message = str(caught.value)
    assert message.startswith("people.csv: no device identifier column")
    assert "Columns found: 'Owner', 'Dept'" in message
    for accepted in ("Device ID", "Microsoft Entra Device ID", "Azure AD Device ID", "deviceId"):
        assert accepted in message
    assert "Serial number" in message and "Device name" in message
    assert "--id-column" in message and "--id-kind" in message


@pytest.mark.parametrize(
    ("values", "hint"),
    [
        ([GUID, GUID2.upper()], "are GUIDs: if they are Intune device IDs add --id-kind intune_id"),
        (["LT-1", "WS-2"], "look like device names or serial numbers"),
    ],
)
def test_a_lone_unknown_column_is_refused_even_if_the_values_look_right(
    tmp_path: Path, values: list[str], hint: str
) -> None:
    path = _csv(tmp_path, "Computers\n" + "\n".join(values) + "\n")
    with pytest.raises(InputError, match=hint):
        read_device_list(path)
    kind = IdKind.ENTRA_DEVICE_ID if values[0] == GUID else IdKind.DEVICE_NAME
    devices = read_device_list(path, id_kind=kind)
    assert (devices.column, devices.kind, len(devices)) == ("Computers", kind, 2)
    assert all(r.error is None for r in devices.refs)


def test_headerless_guid_list_needs_id_kind(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"{{{GUID.upper()}}}\n\n{GUID2}\n")
    with pytest.raises(InputError) as caught:
        read_device_list(path)
    message = str(caught.value)
    assert "d.csv" in message and "no header line" in message
    assert "--id-kind intune_id" in message and "--id-kind entra_device_id" in message
    devices = read_device_list(path, id_kind=IdKind.ENTRA_DEVICE_ID)
    assert devices.kind == IdKind.ENTRA_DEVICE_ID
    assert [(r.row, r.key) for r in devices.refs] == [(1, GUID), (3, GUID2)]
    assert devices.column == "(no header)"


def test_headerless_bad_row_is_reported(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"{GUID}\nnope\n")
    devices = read_device_list(path, id_kind=IdKind.INTUNE_ID)
    assert devices.refs[1].row == 2 and "'nope' is not a GUID" in (devices.refs[1].error or "")


# --- encodings and delimiters -------------------------------------------------------------------


def test_semicolon_bom_blank_line_and_trailing_spaces() -> None:
    devices = read_device_list(DATA / "semicolon-bom.csv")
    assert devices.columns_found == ("Device name", "Serial number")
    assert devices.kind == IdKind.SERIAL_NUMBER  # serial beats name
    assert [(r.row, r.key) for r in devices.refs] == [(2, "sn1"), (4, "sn2")]
    named = read_device_list(DATA / "semicolon-bom.csv", id_kind=IdKind.DEVICE_NAME)
    assert [(r.row, r.value) for r in named.refs] == [(2, "LT-1"), (4, "LT-2")]


def test_utf16_tab_file_from_excel_unicode_text() -> None:
    devices = read_device_list(DATA / "utf16-tab.txt", id_column="Device name")
    assert devices.refs[0].value == "LT-ÉTÉ"
    assert devices.refs[0].key == "lt-été"
    assert read_device_list(DATA / "utf16-tab.txt").refs[0].key == "sn9"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_with_either_byte_order(tmp_path: Path, encoding: str) -> None:
    bom = codecs.BOM_UTF16_LE if encoding == "utf-16-le" else codecs.BOM_UTF16_BE
    path = tmp_path / "unicode.txt"
    path.write_bytes(bom + "Device name\tOS\r\nPC-Ålborg\tWindows\r\n".encode(encoding))
    (ref,) = read_device_list(path).refs
    assert (ref.row, ref.value, ref.key) == (2, "PC-Ålborg", "pc-ålborg")


def test_cp1252_file() -> None:
    devices = read_device_list(DATA / "cp1252.csv")
    assert devices.refs[0].value == "PC-Müller"
    assert devices.refs[0].key == "pc-müller"


def test_utf8_without_bom_and_casefolded_names(tmp_path: Path) -> None:
    devices = read_device_list(_csv(tmp_path, "Device name\nSTRAßE-01\nPC-Ørsted\n"))
    assert [r.key for r in devices.refs] == ["strasse-01", "pc-ørsted"]


def test_tab_separated_tsv_and_excel_sep_line(tmp_path: Path) -> None:
    tsv = read_device_list(_csv(tmp_path, f"Note\tDevice ID\nx, y\t{GUID}\n", name="d.tsv"))
    assert (tsv.column, tsv.refs[0].key) == ("Device ID", GUID)
    hinted = read_device_list(_csv(tmp_path, f"sep=;\nNote;Device ID\na,b;{GUID}\n"))
    assert [(r.row, r.key) for r in hinted.refs] == [(3, GUID)]


def test_blank_lines_whitespace_and_crlf_keep_editor_line_numbers() -> None:
    devices = read_device_list(DATA / "blank-lines.csv")
    assert devices.column == "Serial number"
    assert [(r.row, r.value, r.key) for r in devices.refs] == [
        (3, "SN-1", "sn-1"),
        (6, "SN-2", "sn-2"),
        (7, "", ""),
    ]
    assert devices.refs[2].error == "empty Serial number; fill it in or delete the row"
    named = read_device_list(DATA / "blank-lines.csv", id_column="Device name")
    assert [(r.row, r.value) for r in named.refs][:2] == [(3, "LT-1"), (6, "LT-2")]


def test_leading_blank_lines_and_old_mac_line_ends(tmp_path: Path) -> None:
    devices = read_device_list(_csv(tmp_path, f"\n\nDevice ID\r{GUID}\r\r{GUID2}\r"))
    assert [(r.row, r.key) for r in devices.refs] == [(4, GUID), (6, GUID2)]


def test_values_stay_text(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Serial number\n000123\n1e5\nNaN\nNULL\nTRUE\n")
    assert [r.value for r in read_device_list(path).refs] == [
        "000123",
        "1e5",
        "NaN",
        "NULL",
        "TRUE",
    ]
    assert all(r.error is None for r in read_device_list(path).refs)


def test_a_row_with_an_unquoted_delimiter_is_an_error_row(tmp_path: Path) -> None:
    path = _csv(
        tmp_path, f"Device ID,Device name\n{GUID},LT-1\n{GUID2},LT-2, spare\n{GUID},LT-3,\n"
    )
    refs = read_device_list(path).refs
    assert [(r.row, r.kind is None) for r in refs] == [(2, False), (3, True), (4, False)]
    assert refs[1].error is not None
    assert "3 cells but the header has 2" in refs[1].error and "double quotes" in refs[1].error


def test_a_stray_quote_makes_one_record_that_is_an_error_row(tmp_path: Path) -> None:
    # Read as a spreadsheet reads it: the quote opens a cell that the quote on line 4 closes.
    path = _csv(tmp_path, 'Device name,Note\n"LT-1,x\nLT-2,y\nLT-3,"z\nLT-4,w\n')
    refs = list(read_device_list(path).refs)
    assert [(r.row, r.kind) for r in refs] == [(2, None), (3, IdKind.DEVICE_NAME)]
    assert refs[1].value == "LT-4"
    assert refs[0].error is not None
    assert "spans several lines (lines 2-4 of the file)" in refs[0].error
    assert "fix the quotes" in refs[0].error


# --- XLSX ---------------------------------------------------------------------------------------


def test_xlsx_first_sheet_named_sheet_and_numeric_serials(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path / "devices.xlsx",
        {
            "Devices": [
                ["Serial number", "Device name"],
                ["SN-1", "LT-1"],
                [123456789012, "LT-2"],  # a serial Excel stored as a number
                [None, None],
                ["0042", 1234],
            ],
            "Other": [["Device ID"], [f"{{{GUID.upper()}}}"]],
        },
    )
    devices = read_device_list(path)
    assert (devices.column, devices.kind) == ("Serial number", IdKind.SERIAL_NUMBER)
    assert [(r.row, r.key) for r in devices.refs] == [(2, "sn-1"), (3, ""), (5, "0042")]
    numeric = devices.refs[1]
    assert numeric.value == "123456789012" and numeric.kind is None
    assert numeric.error is not None
    assert "Serial number '123456789012' was changed by Excel" in numeric.error
    assert "format the column as Text" in numeric.error
    names = read_device_list(path, id_column="Device name")
    assert names.refs[2].kind is None and "changed by Excel" in (names.refs[2].error or "")
    named = read_device_list(path, sheet="Other")
    assert (named.column, named.refs[0].key) == ("Device ID", GUID)
    assert read_device_list(path, sheet=" other ").refs[0].key == GUID
    with pytest.raises(InputError) as caught:
        read_device_list(path, sheet="Missing")
    assert "devices.xlsx: no sheet 'Missing'" in str(caught.value)
    assert "Devices, Other" in str(caught.value) and "--sheet" in str(caught.value)


def test_xlsx_rows_are_excel_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "offset.xlsm"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["B3"], sheet["C3"] = "Note", "Microsoft Entra Device ID"
    sheet["C4"] = GUID
    sheet["B6"] = "no id here"
    sheet["C8"] = "00000000-0000-0000-0000-000000000000"
    book.save(path)
    devices = read_device_list(path)
    assert devices.columns_found == ("Note", "Microsoft Entra Device ID")
    assert [(r.row, r.kind) for r in devices.refs] == [
        (4, IdKind.ENTRA_DEVICE_ID),
        (6, None),
        (8, None),
    ]
    assert "empty Microsoft Entra Device ID" in (devices.refs[1].error or "")
    assert "all zeros" in (devices.refs[2].error or "")


def test_xlsx_empty_sheet_and_header_only(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "book.xlsx", {"Empty": [], "Header": [["Device ID"]]})
    with pytest.raises(InputError, match=r"book.xlsx: sheet 'Empty' is empty"):
        read_device_list(path)
    with pytest.raises(InputError, match=r"book.xlsx: no device rows below the header \(row 1\)"):
        read_device_list(path, sheet="Header")


# --- files that cannot be used ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", b"", "the file is empty"),
        ("bom-only.csv", codecs.BOM_UTF8 + b"\r\n\r\n", "the file is empty"),
        ("devices.pdf", b"%PDF", r"unsupported file type \.pdf; supported: \.csv"),
        ("devices.xls", b"\xd0\xcf\x11\xe0", r"unsupported file type \.xls.*\.xlsx"),
        ("devices", b"Device ID\n", r"unsupported file type \(no extension\)"),
        ("broken.xlsx", b"not a zip", "not a readable Excel workbook"),
        ("locked.xlsx", b"\xd0\xcf\x11\xe0" + b"\x00" * 64, "password-protected"),
        ("book.csv", b"PK\x03\x04rest", "is an Excel workbook .* rename it to .xlsx"),
        ("binary.csv", b"\x00\x01\x02\x03\xff\xfe\xfa" * 10, "not readable as text"),
        ("header-only.csv", b"Device ID,Device name\n\n,\n", r"no device rows below the header"),
    ],
)
def test_unusable_files_raise_input_error(
    tmp_path: Path, name: str, content: bytes | None, needle: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=needle) as caught:
        read_device_list(path)
    assert name in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_folder_and_sheet_for_a_csv(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        read_device_list(tmp_path)
    with pytest.raises(InputError, match=r"--sheet 'Devices' applies only to .xlsx"):
        read_device_list(_csv(tmp_path, f"Device ID\n{GUID}\n"), sheet="Devices")


def test_a_truncated_workbook_is_an_input_error(tmp_path: Path) -> None:
    good = _xlsx(tmp_path / "good.xlsx", {"Devices": [["Device ID"], [GUID]]})
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError, match=r"broken.xlsx: not a readable Excel workbook"):
        read_device_list(broken)


def test_headerless_file_has_no_column_to_name(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"{GUID}\n")
    with pytest.raises(InputError, match=r"no header line .* drop --id-column and keep --id-kind"):
        read_device_list(path, id_column="Device ID", id_kind=IdKind.INTUNE_ID)


def test_extra_cell_in_a_one_column_file_is_an_error_row(tmp_path: Path) -> None:
    refs = read_device_list(_csv(tmp_path, "Device name\nLT-1,spare\nLT-2\n")).refs
    assert [(r.row, r.kind) for r in refs] == [(2, None), (3, IdKind.DEVICE_NAME)]
    assert "2 cells but the header has 1" in (refs[0].error or "")


def test_bytes_that_are_no_known_encoding_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(b"Device name\nPC-1\nPC-\x81\x8d\n")
    with pytest.raises(InputError, match=r"odd.csv: not readable as text at line 3.*CSV UTF-8"):
        read_device_list(path)


def test_utf16_without_bom(tmp_path: Path) -> None:
    path = tmp_path / "nobom.txt"
    path.write_bytes(f"Device ID\r\n{GUID}\r\n".encode("utf-16-le"))
    assert read_device_list(path).refs[0].key == GUID


def test_xlsx_text_that_pandas_would_call_missing_stays_text(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path / "na.xlsx", {"S": [["Serial number", "Note"], ["NA", "x"], ["NULL", ""]]}
    )
    assert [(r.row, r.key) for r in read_device_list(path).refs] == [(2, "na"), (3, "null")]
