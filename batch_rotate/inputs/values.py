"""One identifier cell to one `DeviceRef`: normalise the value, or say why it cannot be used."""

from __future__ import annotations

import re
from dataclasses import dataclass

from batch_rotate.models import DeviceRef, IdKind
from batch_rotate.textsafe import match_key

GUID_KINDS = frozenset({IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID})
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LOOSE_GUID = re.compile(
    r"\s*(\{)?\s*([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})\s*(?(1)\})\s*"
)
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"
_EXAMPLE_GUID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
# What Excel shows for a long number it has turned into a float: 1.23457E+11, 1,23457E+11, 1E+15.
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]\d+")


def normalise_guid(value: str) -> str | None:
    """A GUID as lower-case 8-4-4-4-12 (braces, case and surrounding spaces allowed), else None."""
    match = _LOOSE_GUID.fullmatch(value)
    return match.group(2).lower() if match else None


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a row's cell is suspect, noted while reading; most rows have none."""

    cells: int = 0  # the row has this many cells, more than the header (a stray delimiter)
    delimiter: str = ","
    width: int = 0  # the header's cell count
    numeric: bool = False  # XLSX: Excel stored the cell as a number or date
    lines: tuple[int, int] | None = None  # CSV: the record's first and last line of the file


def make_ref(
    row: int, raw: str, kind: IdKind, label: str, problem: Problem | None = None
) -> DeviceRef:
    """The ref for one non-blank row; the fast path is an already normalised GUID."""
    if problem is None and kind in GUID_KINDS and _GUID.fullmatch(raw) and raw != _ZERO_GUID:
        return DeviceRef(row, raw, kind, raw)
    value = raw.strip()
    error = _row_error(value, kind, label, problem)
    if error is not None:
        return DeviceRef(row, value, None, "", error)
    key = (normalise_guid(value) or "") if kind in GUID_KINDS else match_key(value)
    return DeviceRef(row, value, kind, key)


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


_DELIMITER_NAMES = {"\t": "tab", ";": "';'", ",": "','"}


def _row_error(value: str, kind: IdKind, label: str, problem: Problem | None) -> str | None:
    """Why this row's value cannot be used and what to do about it; None if it can be used."""
    if problem is not None and problem.cells:
        cut = _DELIMITER_NAMES.get(problem.delimiter, repr(problem.delimiter))
        return (
            f"this row has {problem.cells} cells but the header has {problem.width}: a value "
            f"probably contains a {cut} without quotes; put that value in double quotes or "
            f"remove the extra {cut}"
        )
    if not value:
        return f"empty {label}; fill it in or delete the row"
    if "\n" in value or "\r" in value:
        first, last = problem.lines if problem and problem.lines else (0, 0)
        where = f" (lines {first}-{last} of the file)" if last > first else ""
        return (
            f"{label} {_show(value)} spans several lines{where}: a double quote opened a cell "
            "that a later line closes, so the text between is one cell; a device identifier is "
            "one line: fix the quotes and export again"
        )
    if kind in GUID_KINDS:
        key = normalise_guid(value)
        what = "an Intune device ID" if kind == IdKind.INTUNE_ID else "a Microsoft Entra device ID"
        if key is None:
            return (
                f"{label} {_show(value)} is not a GUID; {what} looks like {_EXAMPLE_GUID} "
                "(32 hex digits, 8-4-4-4-12); correct the value, or choose the right column "
                "with --id-column"
            )
        if key != _ZERO_GUID:
            return None
        if kind == IdKind.ENTRA_DEVICE_ID:
            return (
                f"{label} is all zeros: the device has no Microsoft Entra device ID (it is not "
                "registered in Entra ID); list it by its Intune Device ID, serial number or "
                "device name instead"
            )
        return (
            f"{label} is all zeros, which is never a real Intune device ID; copy the device's "
            "Device ID from the Intune admin center"
        )
    if problem is not None and problem.numeric:
        return (
            f"{label} {_show(value)} was changed by Excel: the workbook stores it as a number, so "
            "leading zeros may be lost and long numbers rounded; format the column as Text, "
            "enter the values again and save, or use the CSV export from Intune"
        )
    if kind == IdKind.SERIAL_NUMBER and _SCIENTIFIC.fullmatch(value):
        return (
            f"{label} {_show(value)} was changed by Excel into scientific notation and the real "
            "serial number cannot be recovered from it; export the list again and do not open "
            "and save the CSV in Excel, or in Excel format the column as Text before pasting "
            "serials"
        )
    return None
