"""Reading device lists: row-level checks, and the property that no row is lost or invented."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_rotate.errors import InputError
from batch_rotate.inputs import read_device_list
from batch_rotate.models import IdKind
from batch_rotate.textsafe import match_key

GUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
ZERO = "00000000-0000-0000-0000-000000000000"
GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _one(tmp_path: Path, header: str, value: str) -> tuple[int, str, IdKind | None, str, str]:
    path = tmp_path / "one.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([[header, "Note"], [value, "n"]])
    (ref,) = read_device_list(path).refs
    return ref.row, ref.value, ref.kind, ref.key, ref.error or ""


@pytest.mark.parametrize(
    "value", [GUID, GUID.upper(), f"{{{GUID}}}", f" {{ {GUID.upper()} }} ", f"\t{GUID}  "]
)
@pytest.mark.parametrize("header", ["Device ID", "Microsoft Entra Device ID"])
def test_guids_with_braces_case_and_spaces_are_normalised(
    tmp_path: Path, header: str, value: str
) -> None:
    row, shown, kind, key, error = _one(tmp_path, header, value)
    assert (row, key, error) == (2, GUID, "")
    assert shown == value.strip()
    assert kind == (IdKind.INTUNE_ID if header == "Device ID" else IdKind.ENTRA_DEVICE_ID)


@pytest.mark.parametrize(
    ("header", "value", "needles"),
    [
        ("Device ID", "", ["empty Device ID; fill it in or delete the row"]),
        ("Device ID", "   ", ["empty Device ID; fill it in or delete the row"]),
        (
            "Device ID",
            "not-a-guid",
            ["Device ID 'not-a-guid' is not a GUID", "an Intune device ID looks like", "correct"],
        ),
        ("Device ID", GUID.replace("-", ""), ["is not a GUID"]),
        ("Device ID", f"{{{GUID}", ["is not a GUID"]),
        ("Device ID", GUID[:-1] + "g", ["is not a GUID"]),
        ("azureADDeviceId", "LT-0042", ["'LT-0042' is not a GUID", "a Microsoft Entra device ID"]),
        ("Device ID", ZERO, ["Device ID is all zeros", "copy the device's Device ID"]),
        (
            "Microsoft Entra Device ID",
            f"{{{ZERO}}}",
            ["Microsoft Entra Device ID is all zeros", "not registered in Entra ID", "instead"],
        ),
        (
            "Serial number",
            "1.23457E+11",
            [
                "Serial number '1.23457E+11' was changed by Excel into scientific notation",
                "cannot be recovered",
                "format the column as Text",
            ],
        ),
        ("serialNumber", "5,12346E+14", ["changed by Excel"]),
        ("serial", " 1E+15 ", ["'1E+15' was changed by Excel"]),
        ("Device name", "", ["empty Device name; fill it in or delete the row"]),
    ],
)
def test_unusable_values_become_invalid_rows(
    tmp_path: Path, header: str, value: str, needles: list[str]
) -> None:
    row, shown, kind, key, error = _one(tmp_path, header, value)
    assert (row, shown, kind, key) == (2, value.strip(), None, "")
    for needle in needles:
        assert needle in error


@pytest.mark.parametrize("value", ["5CG1234E56", "123E4567", "1.2.3", "E+11", "00123"])
def test_serials_that_only_resemble_numbers_are_kept(tmp_path: Path, value: str) -> None:
    *_, kind, key, error = _one(tmp_path, "Serial number", value)
    assert (kind, key, error) == (IdKind.SERIAL_NUMBER, value.casefold(), "")


def test_long_bad_values_are_shortened_in_the_message(tmp_path: Path) -> None:
    *_, error = _one(tmp_path, "Device ID", "x" * 500)
    assert "x" * 57 + "..." in error and "x" * 61 not in error


# --- property: every non-blank row yields exactly one ref, with its line number ------------------

CELL = st.one_of(
    st.sampled_from(["", " ", GUID, GUID.upper(), f"{{{GUID}}}", ZERO, "1.2E+11", "LT-1"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=30),
)
ROW = st.one_of(st.none(), st.tuples(CELL, CELL))  # None: a raw blank line


def _expected(kind: IdKind, value: str) -> str | None:
    """The key a correct reader gives `value`, or None when it must be an error row."""
    text = value.strip()
    if kind in (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID):
        low = text.lower()
        if low.startswith("{") and low.endswith("}"):
            low = low[1:-1].strip()
        return low if GUID_RE.fullmatch(low) and low != ZERO else None
    if not text or (
        kind == IdKind.SERIAL_NUMBER and re.fullmatch(r"[+-]?\d+([.,]\d+)?[eE][+-]\d+", text)
    ):
        return None
    return match_key(text)  # NFKC and case folding: look-alikes are told apart later


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(ROW, max_size=30),
    header=st.sampled_from(
        ["Device ID", "Microsoft Entra Device ID", "Serial number", "Device name"]
    ),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    single=st.booleans(),
)
def test_no_row_is_lost_or_invented(
    tmp_path: Path,
    rows: list[tuple[str, str] | None],
    header: str,
    delimiter: str,
    encoding: str,
    newline: str,
    single: bool,
) -> None:
    kind = read_kind = {
        "Device ID": IdKind.INTUNE_ID,
        "Microsoft Entra Device ID": IdKind.ENTRA_DEVICE_ID,
        "Serial number": IdKind.SERIAL_NUMBER,
        "Device name": IdKind.DEVICE_NAME,
    }[header]
    if single:
        delimiter = ","  # a one-column file is read as comma separated
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    writer.writerow([header] if single else [header, "Note"])
    line, expected = 1, []
    for row in rows:
        line += 1
        if row is None:
            buffer.write(newline)
            continue
        cells = [row[0]] if single else list(row)
        writer.writerow(cells)
        if any(cell.strip() for cell in cells):
            expected.append((line, row[0].strip(), _expected(kind, row[0])))
    path = tmp_path / "prop.csv"
    path.write_bytes(buffer.getvalue().encode(encoding))
    if not expected:
        with pytest.raises(InputError, match="no device rows"):
            read_device_list(path)
        return
    devices = read_device_list(path)
    assert (devices.column, devices.kind) == (header, read_kind)
    got = [(ref.row, ref.value, ref.key if ref.kind else None) for ref in devices.refs]
    assert got == expected
    for ref in devices.refs:
        assert (ref.kind is None) == (ref.error is not None) == (ref.key == "")


# --- property: text inside a quoted cell never becomes a device (issue 11 item 3) ---------------

DEVICE_TEXT = st.sampled_from(
    [GUID, GUID.upper(), f"{{{GUID}}}", "DESKTOP-4F2K9Q1", "LT-00042", "do not rotate", ",", '"']
)
NOTE = st.lists(
    st.one_of(
        DEVICE_TEXT,
        st.sampled_from(["\n", "\r\n", "\r", ",", ";", "\t", '"', '""', " "]),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8),
    ),
    max_size=8,
).map("".join)
IDS = st.uuids().map(str)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(IDS, NOTE, st.booleans()), min_size=1, max_size=8),
    delimiter=st.sampled_from([",", ";", "\t"]),
    quote_all=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_text_in_a_quoted_cell_never_becomes_a_device(
    tmp_path: Path,
    rows: list[tuple[str, str, bool]],
    delimiter: str,
    quote_all: bool,
    encoding: str,
) -> None:
    # As Excel and PowerShell write: every cell quoted, or only those that need it (the writer
    # then quotes a CR or LF only if it is part of the line terminator, hence CRLF).
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        lineterminator="\n" if quote_all else "\r\n",
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    writer.writerow(["Device ID", "Notes", "Device name"])
    for device, note, note_first in rows:
        # The note sits before or after the id, so a line break in it can land anywhere.
        writer.writerow([device, note, "LT-1"] if note_first else [device, note, note])
    path = tmp_path / "notes.csv"
    path.write_bytes(buffer.getvalue().encode(encoding))
    devices = read_device_list(path)
    assert devices.column == "Device ID"
    got = [(ref.row, ref.key, ref.error) for ref in devices.refs]
    assert got == [(row, device, None) for row, (device, _, _) in enumerate(rows, start=2)]


def test_the_kiosk_note_from_issue_11_is_not_rotated(tmp_path: Path) -> None:
    other = "9a1b2c3d-0000-4000-8000-000000000001"
    note = f"Keep this kiosk out:\n{other},DESKTOP-K10SK7,do not rotate"
    path = tmp_path / "kiosk.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(
            [["Device ID", "Device name", "Notes"], [GUID, "DESKTOP-A", note], [GUID, "B", ""]]
        )
    refs = list(read_device_list(path).refs)
    assert [(r.row, r.key) for r in refs] == [(2, GUID), (3, GUID)]
    assert other not in {r.key for r in read_device_list(path, id_kind=IdKind.DEVICE_NAME).refs}
    names = read_device_list(path, id_kind=IdKind.DEVICE_NAME).refs
    assert [(r.row, r.key) for r in names] == [(2, "desktop-a"), (3, "b")]
