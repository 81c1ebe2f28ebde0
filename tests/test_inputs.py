"""Reading device lists: column detection, encodings, delimiters, row-level errors."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_rotate.errors import InputError
from batch_rotate.inputs import read_device_list
from batch_rotate.models import IdKind

DATA = Path(__file__).parent / "data" / "inputs"
ROOT = Path(__file__).resolve().parent.parent
GUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


def _csv(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_intune_export_uses_device_id_and_keeps_row_numbers() -> None:
    devices = read_device_list(ROOT / "inputs" / "sample-devices.csv")
    assert devices.column == "Device ID" and devices.kind == IdKind.INTUNE_ID
    assert devices.refs[0].row == 2
    assert len(devices) == 50
    assert len(devices.sha256) == 64


def test_old_export_header_and_preference_for_intune_id() -> None:
    devices = read_device_list(DATA / "intune-export-old-headers.csv")
    assert (devices.column, devices.kind) == ("Device ID", IdKind.INTUNE_ID)
    only_entra = read_device_list(
        DATA / "intune-export-old-headers.csv", id_column="azure ad device id"
    )
    assert (only_entra.column, only_entra.kind) == ("Azure AD Device ID", IdKind.ENTRA_DEVICE_ID)


def test_entra_export_device_id_is_the_entra_id_not_object_id() -> None:
    devices = read_device_list(DATA / "entra-export.csv")
    assert (devices.column, devices.kind) == ("deviceId", IdKind.ENTRA_DEVICE_ID)
    assert devices.refs[0].key == "22222222-bbbb-4bbb-8bbb-222222222222"


def test_semicolon_bom_blank_line_and_trailing_spaces() -> None:
    devices = read_device_list(DATA / "semicolon-bom.csv")
    assert devices.kind == IdKind.SERIAL_NUMBER  # serial beats name
    assert [(r.row, r.key) for r in devices.refs] == [(2, "sn1"), (4, "sn2")]


def test_utf16_tab_file_from_excel_unicode_text() -> None:
    devices = read_device_list(DATA / "utf16-tab.txt", id_column="Device name")
    assert devices.refs[0].value == "LT-ÉTÉ"
    assert devices.refs[0].key == "lt-été"


def test_cp1252_file() -> None:
    devices = read_device_list(DATA / "cp1252.csv")
    assert devices.refs[0].value == "PC-Müller"


def test_guids_with_braces_case_and_spaces_are_normalised(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"id\n {{{GUID.upper()}}} \n")
    (ref,) = read_device_list(path).refs
    assert ref.key == GUID and ref.kind == IdKind.INTUNE_ID and ref.error is None


@pytest.mark.parametrize(
    ("header", "value", "needle"),
    [
        ("Device ID", "not-a-guid", "is not a GUID"),
        ("Device ID", "", "empty Device ID"),
        ("Microsoft Entra Device ID", "00000000-0000-0000-0000-000000000000", "all zeros"),
        ("Serial number", "1.23457E+11", "changed by Excel"),
    ],
)
def test_unusable_values_become_invalid_rows(
    tmp_path: Path, header: str, value: str, needle: str
) -> None:
    path = _csv(
        tmp_path, f"{header},Other\n{GUID if header != 'Device ID' else 'x'},a\n{value},b\n"
    )
    if header == "Device ID":
        path = _csv(tmp_path, f"{header},Other\n{value},b\n")
    refs = read_device_list(path).refs
    bad = refs[-1]
    assert bad.kind is None and needle in (bad.error or "")
    assert header in (bad.error or "")


def test_xlsx_first_sheet_named_sheet_and_numeric_serials(tmp_path: Path) -> None:
    path = tmp_path / "devices.xlsx"
    book = openpyxl.Workbook()
    first = book.active
    first.title = "Devices"
    first.append(["Serial number", "Device name"])
    first.append(["SN-1", "LT-1"])
    first.append([123456789012, "LT-2"])  # a serial Excel stored as a number
    other = book.create_sheet("Other")
    other.append(["Device ID"])
    other.append([GUID])
    book.save(path)
    devices = read_device_list(path)
    assert devices.kind == IdKind.SERIAL_NUMBER
    assert [(r.row, r.key) for r in devices.refs][:1] == [(2, "sn-1")]
    assert devices.refs[1].kind is None and "Excel" in (devices.refs[1].error or "")
    named = read_device_list(path, sheet="Other")
    assert named.refs[0].key == GUID
    with pytest.raises(InputError, match="Devices, Other"):
        read_device_list(path, sheet="Missing")


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", b"", "empty"),
        ("devices.pdf", b"%PDF", "unsupported file type"),
        ("broken.xlsx", b"not a zip", "not a readable Excel workbook"),
        ("people.csv", b"Owner,Dept\nalice,IT\n", "Columns found: 'Owner', 'Dept'"),
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


def test_headerless_guid_list_needs_id_kind(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"{GUID}\n{GUID.replace('3f', '4f')}\n")
    with pytest.raises(InputError, match="--id-kind"):
        read_device_list(path)
    devices = read_device_list(path, id_kind=IdKind.ENTRA_DEVICE_ID)
    assert [r.row for r in devices.refs] == [1, 2]
    assert devices.kind == IdKind.ENTRA_DEVICE_ID


def test_forced_column_must_exist(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no column 'Serial'"):
        read_device_list(_csv(tmp_path, "Device name\nLT-1\n"), id_column="Serial")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.one_of(st.just(""), st.just(GUID), st.text(alphabet="abc-{}0123456789 ", max_size=40)),
        max_size=40,
    )
)
def test_no_row_is_lost_or_invented(tmp_path: Path, values: list[str]) -> None:
    path = tmp_path / "prop.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Device ID", "Note"])
        for value in values:
            writer.writerow([value, "n"])
    refs = read_device_list(path).refs
    assert [r.row for r in refs] == list(range(2, len(values) + 2))
    for ref, value in zip(refs, values, strict=True):
        assert (ref.kind is None) == (ref.error is not None)
        if ref.kind is not None:
            assert ref.key == GUID and value.strip().strip("{}").strip().lower() == GUID
