"""Read a device list (CSV or XLSX) into `DeviceRef`s: find the identifier column, check each value.

The only module that uses pandas. Bad rows become refs with an error, never exceptions; a file that
cannot be used at all raises `InputError` naming the file, what was found and what to do.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from batch_rotate.errors import InputError
from batch_rotate.models import DeviceRef, IdKind

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
XLSX_SUFFIXES = {".xlsx", ".xlsm"}

# Headers per kind, normalised (lower case, single spaces). "device id" (Intune export) and
# "deviceid" (Entra export) differ only by the space: the space is significant.
HEADERS: dict[IdKind, tuple[str, ...]] = {
    IdKind.INTUNE_ID: (
        "device id",
        "id",
        "manageddeviceid",
        "managed device id",
        "intunedeviceid",
        "intune device id",
    ),
    IdKind.ENTRA_DEVICE_ID: (
        "microsoft entra device id",
        "azure ad device id",
        "azureaddeviceid",
        "entradeviceid",
        "entra device id",
        "deviceid",
        "aad device id",
    ),
    IdKind.SERIAL_NUMBER: ("serial number", "serialnumber", "serial"),
    IdKind.DEVICE_NAME: (
        "device name",
        "devicename",
        "displayname",
        "name",
        "hostname",
        "computer name",
        "computername",
    ),
}
PREFERENCE = (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID, IdKind.SERIAL_NUMBER, IdKind.DEVICE_NAME)
ACCEPTED = "Device ID, Microsoft Entra Device ID / Azure AD Device ID, Serial number, Device name"

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"
_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")


@dataclass(frozen=True, slots=True)
class DeviceList:
    path: Path
    sha256: str
    column: str
    kind: IdKind
    columns_found: tuple[str, ...]
    refs: list[DeviceRef]

    def __len__(self) -> int:
        return len(self.refs)


def _norm(header: object) -> str:
    return " ".join(str(header).split()).lower()


def kind_of_header(header: object) -> IdKind | None:
    name = _norm(header)
    for kind in PREFERENCE:
        if name in HEADERS[kind]:
            return kind
    return None


def normalise_guid(value: str) -> str | None:
    text = value.strip().strip("{}").strip().lower()
    return text if _GUID.match(text) else None


def check_value(
    raw: object, kind: IdKind, column: str, numeric_cell: bool = False
) -> tuple[str, str | None]:
    """The match key for a value of `kind`, or an error saying what is wrong and what to do."""
    value = "" if raw is None else str(raw).strip()
    if not value:
        return "", f"empty {column}; fill it in or delete the row"
    if kind in (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID):
        key = normalise_guid(value)
        if key is None:
            what = "Intune Device ID" if kind == IdKind.INTUNE_ID else "Entra device ID"
            return "", (
                f"{column} {value[:60]!r} is not a GUID; an {what} looks like "
                "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
            )
        if kind == IdKind.ENTRA_DEVICE_ID and key == _ZERO_GUID:
            return "", f"{column} is all zeros: the device is not registered in Entra ID"
        return key, None
    if kind == IdKind.SERIAL_NUMBER and (_SCIENTIFIC.match(value) or numeric_cell):
        return "", (
            f"{column} {value!r} was changed by Excel (stored as a number: scientific notation "
            "or lost leading zeros); export serials as text (format the column as Text, or use "
            "the CSV from the admin center) and try again"
        )
    return value.casefold(), None


def read_device_list(
    path: Path,
    *,
    id_column: str | None = None,
    id_kind: IdKind | None = None,
    sheet: str | None = None,
) -> DeviceList:
    """Read the file, choose the identifier column, and turn every non-blank row into a ref."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a .csv or .xlsx device list")
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES | XLSX_SUFFIXES:
        raise InputError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; give a .csv or .xlsx file "
            "(for example the Intune admin center's 'All devices' export)"
        )
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if not data.strip():
        raise InputError(f"{path.name}: the file is empty; export the device list again")
    if suffix in CSV_SUFFIXES:
        frame, first_row = _read_csv(path, data, headerless=id_kind is not None)
    else:
        frame, first_row = _read_xlsx(path, data, sheet)
    columns = tuple(str(c) for c in frame.columns)
    column, kind = _choose_column(path, frame, columns, id_column, id_kind)
    refs = _refs(frame, column, kind, first_row)
    return DeviceList(path, sha256, column, kind, columns, refs)


def _decode(path: Path, data: bytes) -> str:
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
    if len(data) > 1 and data[1:2] == b"\x00" and data[0:1] != b"\x00":
        try:
            return data.decode("utf-16-le")  # UTF-16 without BOM
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _read_csv(path: Path, data: bytes, *, headerless: bool) -> tuple[pd.DataFrame, int]:
    text = _decode(path, data)
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InputError(f"{path.name}: the file has no rows; export the device list again")
    header_line = lines[first]
    delimiter = max((",", ";", "\t"), key=header_line.count)
    if header_line.count(delimiter) == 0:
        delimiter = ","
    cells = next(csv.reader([header_line], delimiter=delimiter))
    is_headerless = headerless and len(cells) == 1 and normalise_guid(cells[0]) is not None
    # Blank lines are read as empty rows (not skipped) so row numbers stay those of the file.
    try:
        frame = pd.read_csv(
            io.StringIO("\n".join(lines[first:])),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            header=None if is_headerless else 0,
            engine="c",
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(
            f"{path.name}: cannot read it as CSV ({str(exc).splitlines()[0][:200]}); check the "
            "delimiter and quoting, or save it again from Excel as CSV UTF-8"
        ) from None
    if is_headerless:
        frame.columns = ["(no header)"]
        return frame, first + 1
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, first + 2


def _read_xlsx(path: Path, data: bytes, sheet: str | None) -> tuple[pd.DataFrame, int]:
    try:
        book = pd.ExcelFile(io.BytesIO(data), engine="openpyxl")
    except (zipfile.BadZipFile, ValueError, KeyError, OSError) as exc:
        raise InputError(
            f"{path.name}: not a readable Excel workbook ({type(exc).__name__}); "
            "save it again as .xlsx, or export it as CSV"
        ) from None
    names = [str(n) for n in book.sheet_names]
    if sheet is not None and sheet not in names:
        raise InputError(f"{path.name}: no sheet {sheet!r}; sheets are: {', '.join(names)}")
    chosen = sheet if sheet is not None else names[0]
    raw = pd.read_excel(book, sheet_name=chosen, header=None, dtype=object)
    raw = raw.dropna(how="all", axis=1)
    filled = raw.notna().any(axis=1)
    if not filled.any():
        raise InputError(f"{path.name}: sheet {chosen!r} is empty")
    header_index = int(filled.to_numpy().argmax())
    frame = raw.iloc[header_index + 1 :].copy()
    frame.columns = [str(c).strip() for c in raw.iloc[header_index]]
    return frame.reset_index(drop=True), header_index + 2


def _choose_column(
    path: Path,
    frame: pd.DataFrame,
    columns: tuple[str, ...],
    id_column: str | None,
    id_kind: IdKind | None,
) -> tuple[str, IdKind]:
    found = ", ".join(repr(c) for c in columns) or "none"
    if id_column is not None:
        matches = [c for c in columns if _norm(c) == _norm(id_column)]
        if not matches:
            raise InputError(f"{path.name}: no column {id_column!r}; columns found: {found}")
        kind = id_kind or kind_of_header(matches[0])
        if kind is None:
            raise InputError(
                f"{path.name}: column {matches[0]!r} is not a known identifier; add --id-kind "
                "(intune_id, entra_device_id, device_name or serial_number)"
            )
        return matches[0], kind
    candidates = [(kind_of_header(c), c) for c in columns]
    ranked = sorted(
        ((PREFERENCE.index(k), c) for k, c in candidates if k is not None), key=lambda x: x[0]
    )
    for _, column in ranked:
        if frame[column].map(_filled).any():
            return column, id_kind or PREFERENCE[
                PREFERENCE.index(kind_of_header(column) or IdKind.INTUNE_ID)
            ]
    if ranked:
        column = ranked[0][1]
        return column, id_kind or (kind_of_header(column) or IdKind.INTUNE_ID)
    if id_kind is not None and len(columns) == 1:
        return columns[0], id_kind
    raise InputError(
        f"{path.name}: no device identifier column. Columns found: {found}. Accepted headers: "
        f"{ACCEPTED} (or id, managedDeviceId, azureADDeviceId, deviceId, deviceName, "
        "serialNumber). Name the column with --id-column NAME and its kind with --id-kind KIND"
    )


def _filled(value: Any) -> bool:
    return (
        value is not None
        and not (isinstance(value, float) and value != value)
        and bool(str(value).strip())
    )


def _refs(frame: pd.DataFrame, column: str, kind: IdKind, first_row: int) -> list[DeviceRef]:
    blank = (
        ~frame.apply(lambda col: col.map(_filled)).any(axis=1)
        if len(frame.columns) > 1
        else ~frame[column].map(_filled)
    )
    values = frame[column].tolist()
    refs: list[DeviceRef] = []
    for offset, (value, is_blank) in enumerate(zip(values, blank.tolist(), strict=True)):
        if is_blank:
            continue
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        text = "" if not _filled(value) else _cell_text(value)
        key, error = check_value(text, kind, column, numeric_cell=numeric)
        if key == text:
            key = text  # one string, not two equal ones (a million rows add up)
        refs.append(DeviceRef(first_row + offset, text, None if error else kind, key, error))
    return refs


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
