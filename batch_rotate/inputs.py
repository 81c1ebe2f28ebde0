"""Read a device list (CSV or XLSX) into `DeviceRef`s: find the identifier column, check each value.

The only module that uses pandas. Bad rows become refs with an error, never exceptions; a file that
cannot be used at all raises `InputError` naming the file, what was found and what to do.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import compress
from pathlib import Path

import numpy as np
import pandas as pd

from batch_rotate.errors import InputError
from batch_rotate.models import DeviceRef, IdKind

CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})

# Header names per kind, compared case-insensitively after stripping the ends. Inner spaces are
# significant: "Device ID" (Intune "All devices" export) is the Intune id, "deviceId" (Entra
# devices export) is the Entra device id. See GRAPH_NOTES.md "Device inventory".
HEADERS: dict[IdKind, tuple[str, ...]] = {
    IdKind.INTUNE_ID: (
        "Device ID",
        "id",
        "managedDeviceId",
        "intuneDeviceId",
        "Intune Device ID",
        "Managed Device ID",
    ),
    IdKind.ENTRA_DEVICE_ID: (
        "Microsoft Entra Device ID",
        "Azure AD Device ID",
        "azureADDeviceId",
        "entraDeviceId",
        "Entra Device ID",
        "deviceId",
    ),
    IdKind.SERIAL_NUMBER: ("Serial number", "serialNumber", "serial"),
    IdKind.DEVICE_NAME: (
        "Device name",
        "deviceName",
        "displayName",
        "name",
        "hostname",
        "computer name",
        "computerName",
    ),
}
PREFERENCE = (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID, IdKind.SERIAL_NUMBER, IdKind.DEVICE_NAME)
_KIND_OF_HEADER = {name.casefold(): kind for kind, names in HEADERS.items() for name in names}
# In an Entra devices list (columns deviceId/objectId), a bare "id" is the Entra *object* id, a
# different GUID from both the Intune id and the Entra device id: never use it.
_ENTRA_LIST_MARKERS = frozenset({"deviceid", "objectid"})
_KIND_WORDS = {
    IdKind.INTUNE_ID: "Intune device IDs",
    IdKind.ENTRA_DEVICE_ID: "Microsoft Entra device IDs",
    IdKind.SERIAL_NUMBER: "serial numbers",
    IdKind.DEVICE_NAME: "device names",
}
_OPTIONS_HINT = (
    "name the column with --id-column NAME and say what it holds with --id-kind "
    "intune_id|entra_device_id|serial_number|device_name"
)

_GUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_LOOSE_GUID = re.compile(
    r"\s*(\{)?\s*([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})\s*(?(1)\})\s*"
)
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"
_EXAMPLE_GUID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
# What Excel shows for a long number it has turned into a float: 1.23457E+11, 1,23457E+11, 1E+15.
_SCIENTIFIC_PATTERN = r"[+-]?\d+(?:[.,]\d+)?[eE][+-]\d+"
_LOOKS_LIKE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_EMPTY = re.compile(rb"[ \t\r\n\x00\xef\xbb\xbf\xff\xfe]*")
_LINE = re.compile(r"([^\r\n]*)(\r\n|\r|\n|$)")
_DELIMITERS = ("\t", ";", ",")  # preferred in this order when a header line splits equally
_DELIMITER_NAMES = {"\t": "tab", ";": "';'", ",": "','"}
_NO_HEADER = "(no header)"


@dataclass(frozen=True, slots=True)
class DeviceList:
    """The rows of one device list and how they were read."""

    path: Path
    sha256: str  # of the file bytes
    column: str  # the header used, as written in the file
    kind: IdKind  # kind of that column
    columns_found: tuple[str, ...]
    refs: list[DeviceRef]  # one per non-blank data row, in file order

    def __len__(self) -> int:
        return len(self.refs)


@dataclass(frozen=True, slots=True)
class _Table:
    """A sheet or CSV file as text cells with positional columns, before any column is chosen."""

    header: list[str]  # header cells as written (ends stripped); "" for an unnamed column
    header_row: int  # line/row number of the header, 1-based
    cells: pd.DataFrame  # data rows below the header; columns 0..n-1; "" for an empty cell
    numeric: pd.DataFrame | None = None  # XLSX: True where the cell held a number, date or bool
    overflow: dict[int, int] | None = None  # CSV: data-row position -> cell count, if too many
    delimiter: str = ","


def read_device_list(
    path: Path,
    *,
    id_column: str | None = None,
    id_kind: IdKind | None = None,
    sheet: str | None = None,
) -> DeviceList:
    """Read the file, choose the identifier column, and turn every non-blank row into a ref."""
    path = Path(path)
    data = _read_bytes(path)
    sha256 = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        if sheet is not None:
            raise InputError(
                f"{path.name}: --sheet {sheet!r} applies only to .xlsx workbooks and this is a "
                "text file; drop --sheet"
            )
        table = _read_csv(path, data)
    else:
        table = _read_xlsx(path, data, sheet)
    del data  # a big file's bytes are not needed any more
    headerless = _is_headerless(table)
    if headerless:
        if id_kind is None:
            raise InputError(
                f"{path.name}: the first line {table.header[0].strip()!r} is a GUID, so the file "
                "has no header line and what the GUIDs are is unknown; add --id-kind intune_id "
                "or --id-kind entra_device_id (or add a header line such as 'Device ID' or "
                "'Microsoft Entra Device ID')"
            )
        if id_column is not None:
            raise InputError(
                f"{path.name}: the file has no header line (its first line is a GUID), so there is "
                f"no column {id_column!r}; drop --id-column and keep --id-kind"
            )
        table = _as_headerless(table)
    columns = tuple(name for name in table.header if name)
    index, kind = _choose_column(path, table, columns, id_column, id_kind)
    label = "value" if headerless else table.header[index]
    refs = _refs(table, index, kind, label)
    if not refs:
        where = "sheet" if suffix in XLSX_SUFFIXES else "file"
        raise InputError(
            f"{path.name}: no device rows below the header (row {table.header_row}); put one "
            f"device per row in the {where}, under the header"
        )
    return DeviceList(path, sha256, table.header[index], kind, columns, refs)


# --- the file ------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or an InputError saying why there are none."""
    if not path.exists():
        raise InputError(f"{path}: no such file; give the path of a .csv or .xlsx device list")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the path of a .csv or .xlsx device list")
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES | XLSX_SUFFIXES:
        raise InputError(
            f"{path.name}: unsupported file type {suffix or '(no extension)'}; supported: .csv, "
            ".txt, .tsv (comma, semicolon or tab separated) and .xlsx, .xlsm (for example the "
            "Intune admin center's 'All devices' export); save the list in one of those formats"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"{path.name}: cannot be read ({exc.strerror or exc}); check the permissions, or "
            "close it in Excel and try again"
        ) from None
    if _EMPTY.fullmatch(data):  # stops at the first real byte: no copy of a big file
        raise InputError(f"{path.name}: the file is empty; export the device list again")
    return data


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    """The text of a CSV file and its encoding: UTF-8 (BOM or not), UTF-16, else Windows-1252."""
    if data.startswith(b"PK\x03\x04"):
        raise InputError(
            f"{path.name}: is an Excel workbook (.xlsx) with a text-file name; rename it to .xlsx "
            "or save it from Excel as 'CSV UTF-8'"
        )
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            f"{path.name}: is an old-style .xls or password-protected workbook, not text; save it "
            "from Excel as .xlsx (without a password) or as 'CSV UTF-8'"
        )
    if data.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)  # Excel "Unicode text": the codec reads the BOM's byte order
    elif b"\x00" in data[:4096]:
        sample = data[:4096]
        if sample[1::2].count(0) > len(sample) // 4:
            encodings = ("utf-16-le",)
        elif sample[0::2].count(0) > len(sample) // 4:
            encodings = ("utf-16-be",)
        else:
            encodings = ()
    else:
        encodings = ("utf-8", "cp1252")
    failure: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            failure = failure or exc
            continue
        if "\x00" not in text:
            return text, encoding
    line = data.count(b"\n", 0, failure.start) + 1 if failure else 0
    where = f" at line {line}" if line else ""
    raise InputError(
        f"{path.name}: not readable as text{where} (tried UTF-8, UTF-16 and Windows-1252); "
        "open it in Excel and save it as 'CSV UTF-8', or export the device list again"
    )


def _lines(text: str, start: int = 0) -> Iterator[tuple[str, int]]:
    """Each line of `text` from `start` (without its line break) and the offset just after it."""
    for match in _LINE.finditer(text, start):
        if match.start() == len(text):
            return
        yield match.group(1), match.end()


def _sniff(line: str) -> tuple[str, list[str]]:
    """The delimiter that splits the header line into the most cells, and those cells."""
    best, cells = ",", [line]
    for delimiter in _DELIMITERS:
        found = next(csv.reader([line], delimiter=delimiter))
        if len(found) > len(cells):
            best, cells = delimiter, found
    return best, cells


def _read_csv(path: Path, data: bytes) -> _Table:
    """Parse a delimited text file; blank lines stay as empty rows so row numbers are the lines'."""
    text, encoding = _decode(path, data)
    number, offset, header_line, forced = 0, 0, None, None
    for line, end in _lines(text):
        number += 1
        stripped = line.strip().strip("\ufeff")
        if not stripped:
            continue
        match = re.fullmatch(r'"?sep=(.)"?[,;\t]*', stripped)
        if forced is None and match:  # Excel's "sep=;" hint line names the delimiter
            forced = match.group(1)
            continue
        header_line, offset = line, end
        break
    if header_line is None:
        raise InputError(f"{path.name}: the file has no rows; export the device list again")
    if forced is not None:
        delimiter, header = forced, next(csv.reader([header_line], delimiter=forced))
    else:
        delimiter, header = _sniff(header_line)
    header = [cell.strip().strip("\ufeff").strip() for cell in header]
    # The rows below the header as UTF-8 bytes for pandas, without another copy of the whole text.
    if encoding.startswith("utf-8"):
        skip = len(text[:offset].encode("utf-8")) + (
            len(codecs.BOM_UTF8) if "sig" in encoding else 0
        )
        del text
        payload = data[skip:]
    else:
        payload = text[offset:].encode("utf-8")
        del text
    width = len(header)
    cells = _parse_rows(payload, delimiter, width)
    overflow: dict[int, int] | None = None
    if cells is None:  # a row pandas cannot take as it is: read line by line, flag bad rows
        cells, overflow = _parse_lines(payload.decode("utf-8"), delimiter, width)
    return _Table(header, number, cells, overflow=overflow, delimiter=delimiter)


def _parse_rows(payload: bytes, delimiter: str, width: int) -> pd.DataFrame | None:
    """Fast path: pandas' C parser; None if a row has too many cells or lines were merged."""
    lines = payload.count(b"\n") + payload.count(b"\r") - payload.count(b"\r\n")
    if payload and not payload.endswith((b"\n", b"\r")):
        lines += 1
    if not lines:
        return pd.DataFrame({i: pd.Series([], dtype=object) for i in range(width)})
    try:
        with warnings.catch_warnings():
            # Extra cells in a one-column file only warn: make that a failure, not lost data.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(payload),
                sep=delimiter,
                header=None,
                names=list(range(width)),
                index_col=False,
                dtype=str,
                na_filter=False,
                skip_blank_lines=False,
                encoding="utf-8",
                engine="c",
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError):
        return None
    # A stray quote makes the parser join lines into one cell: row numbers would no longer be the
    # file's lines, so fall back to reading line by line.
    return frame if len(frame) == lines else None


def _parse_lines(body: str, delimiter: str, width: int) -> tuple[pd.DataFrame, dict[int, int]]:
    """Slow path: each line on its own with the csv module; note rows with extra non-empty cells."""
    rows: list[list[str]] = []
    overflow: dict[int, int] = {}
    for position, (line, _) in enumerate(_lines(body)):
        cells = next(csv.reader([line], delimiter=delimiter), [])
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            overflow[position] = len(cells)
        rows.append((cells + [""] * width)[:width])
    frame = pd.DataFrame(rows, columns=list(range(width)), dtype=object)
    return frame, overflow


def _read_xlsx(path: Path, data: bytes, sheet: str | None) -> _Table:
    """The chosen sheet as text cells, noting which cells Excel stored as numbers."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it skips
            with pd.ExcelFile(io.BytesIO(data), engine="openpyxl") as book:
                names = [str(name) for name in book.sheet_names]
                chosen = _pick_sheet(path, names, sheet)
                raw = book.parse(
                    sheet_name=chosen, header=None, dtype=object, keep_default_na=False
                )
    except InputError:
        raise
    except Exception as exc:  # any failure inside a corrupt workbook: report it, no traceback
        hint = (
            "it is an old-style .xls or password-protected workbook; "
            if data.startswith(b"\xd0\xcf\x11\xe0")
            else ""
        )
        raise InputError(
            f"{path.name}: not a readable Excel workbook ({hint}{type(exc).__name__}); open it in "
            "Excel and save it again as .xlsx without a password, or export the list as CSV"
        ) from None
    if raw.empty:
        raise InputError(f"{path.name}: sheet {chosen!r} is empty; choose another with --sheet")
    numeric = raw.map(_is_number)
    text = raw.map(_cell_text)
    filled = (text.apply(lambda col: col.str.strip() != "")).any(axis=1).to_numpy()
    if not filled.any():
        raise InputError(f"{path.name}: sheet {chosen!r} is empty; choose another with --sheet")
    top = int(filled.argmax())  # pandas keeps leading empty rows: position + 1 is Excel's row
    width = len(raw.columns)
    header = [str(cell).strip() for cell in text.iloc[top]]
    body = text.iloc[top + 1 :].reset_index(drop=True)
    body.columns = list(range(width))
    flags = numeric.iloc[top + 1 :].reset_index(drop=True)
    flags.columns = list(range(width))
    return _Table(header, top + 1, body, numeric=flags)


def _pick_sheet(path: Path, names: list[str], sheet: str | None) -> str:
    if not names:
        raise InputError(f"{path.name}: the workbook has no sheets; export the device list again")
    if sheet is None:
        return names[0]
    if sheet in names:
        return sheet
    folded = [name for name in names if name.strip().casefold() == sheet.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise InputError(
        f"{path.name}: no sheet {sheet!r}; the sheets are: {', '.join(names)}; "
        "give one of them with --sheet"
    )


def _is_number(cell: object) -> bool:
    return cell is not None and not isinstance(cell, str) and not _is_nan(cell)


def _is_nan(cell: object) -> bool:
    return (isinstance(cell, float) and math.isnan(cell)) or cell is pd.NaT


def _cell_text(cell: object) -> str:
    """A workbook cell as the text a user sees (integral floats without '.0')."""
    if cell is None or _is_nan(cell):
        return ""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, datetime | date | time):
        return cell.isoformat()
    return str(cell)


# --- the column ----------------------------------------------------------------------------------


def kind_of_header(header: str, headers: tuple[str, ...] | list[str] = ()) -> IdKind | None:
    """The identifier kind a header names (case-insensitive), given the other headers."""
    name = header.strip().casefold()
    if name == "id" and any(h.strip().casefold() in _ENTRA_LIST_MARKERS for h in headers):
        return None
    return _KIND_OF_HEADER.get(name)


def normalise_guid(value: str) -> str | None:
    """A GUID as lower-case 8-4-4-4-12 (braces, case and surrounding spaces allowed), else None."""
    match = _LOOSE_GUID.fullmatch(value)
    return match.group(2).lower() if match else None


def _is_headerless(table: _Table) -> bool:
    """A single-column file whose first line is a GUID has no header line."""
    named = [cell for cell in table.header if cell]
    return len(named) == 1 and normalise_guid(named[0]) is not None


def _as_headerless(table: _Table) -> _Table:
    """The header line put back as the first data row."""
    index = next(i for i, cell in enumerate(table.header) if cell)
    first = pd.DataFrame([table.header], columns=list(range(len(table.header))), dtype=object)
    cells = pd.concat([first, table.cells.astype(object)], ignore_index=True)
    numeric = None
    if table.numeric is not None:
        top = pd.DataFrame([[False] * len(table.header)], columns=list(range(len(table.header))))
        numeric = pd.concat([top, table.numeric], ignore_index=True)
    overflow = {k + 1: v for k, v in (table.overflow or {}).items()} or None
    header = [""] * len(table.header)
    header[index] = _NO_HEADER
    return _Table(header, table.header_row - 1, cells, numeric, overflow, table.delimiter)


def _has_values(table: _Table, index: int) -> bool:
    return any(value and not value.isspace() for value in table.cells[index].tolist())


def _choose_column(
    path: Path,
    table: _Table,
    columns: tuple[str, ...],
    id_column: str | None,
    id_kind: IdKind | None,
) -> tuple[int, IdKind]:
    """The position and kind of the identifier column (see the rules in DESIGN/README)."""
    header = table.header
    found = ", ".join(repr(name) for name in columns) or "none"
    if id_column is not None:
        index = _find_column(header, id_column)
        if index is None:
            raise InputError(
                f"{path.name}: no column {id_column!r}; columns found: {found}; give one of them "
                "with --id-column"
            )
        kind = id_kind or kind_of_header(header[index], header)
        if kind is None:
            raise InputError(
                f"{path.name}: column {header[index]!r} is not a known identifier column; say what "
                "it holds with --id-kind intune_id|entra_device_id|serial_number|device_name"
            )
        return index, kind
    recognised = sorted(
        (
            (PREFERENCE.index(kind), position, kind)
            for position, name in enumerate(header)
            if (kind := kind_of_header(name, header)) is not None
        ),
    )
    if id_kind is not None:
        same = [position for _, position, kind in recognised if kind == id_kind]
        if same:
            filled = [position for position in same if _has_values(table, position)]
            return (filled or same)[0], id_kind
        if len(columns) == 1:
            return header.index(columns[0]), id_kind
        raise InputError(
            f"{path.name}: no column is known to hold {_KIND_WORDS[id_kind]}; columns found: "
            f"{found}; name the column with --id-column NAME"
        )
    for _, position, kind in recognised:
        if _has_values(table, position):  # the preferred column is used unless it is all empty
            return position, kind
    if recognised:
        _, position, kind = recognised[0]
        return position, kind
    raise InputError(
        f"{path.name}: no device identifier column. Columns found: {found}. Accepted headers: "
        f"{_accepted()}. {_value_hint(table, columns)}Or {_OPTIONS_HINT}"
    )


def _find_column(header: list[str], wanted: str) -> int | None:
    """The column named `wanted`: exactly, else ignoring case and surrounding spaces."""
    if wanted in header:
        return header.index(wanted)
    folded = wanted.strip().casefold()
    return next((i for i, name in enumerate(header) if name and name.casefold() == folded), None)


def _accepted() -> str:
    return "; ".join(f"{', '.join(HEADERS[kind])} ({_KIND_WORDS[kind]})" for kind in PREFERENCE)


def _value_hint(table: _Table, columns: tuple[str, ...]) -> str:
    """What the values of a lone unrecognised column look like, to suggest the --id-kind."""
    if any(normalise_guid(name) for name in columns):
        return "The first line looks like data, not a header: add a header line. "
    if len(columns) != 1:
        return ""
    values = table.cells[table.header.index(columns[0])].str.strip()
    values = values[values != ""]
    if values.empty:
        return ""
    column = columns[0]
    if values.map(lambda v: normalise_guid(v) is not None).all():
        return (
            f"The values in {column!r} are GUIDs: if they are Intune device IDs add --id-kind "
            "intune_id, if Microsoft Entra device IDs add --id-kind entra_device_id. "
        )
    if values.str.fullmatch(_LOOKS_LIKE_NAME.pattern).all():
        return (
            f"The values in {column!r} look like device names or serial numbers: add --id-kind "
            "device_name or --id-kind serial_number. "
        )
    return ""


# --- the rows ------------------------------------------------------------------------------------


def _refs(table: _Table, index: int, kind: IdKind, label: str) -> list[DeviceRef]:
    """One ref per non-blank row: vectorised checks pass the usual values, the rest row by row."""
    column = table.cells[index]
    count = len(column)
    guid = kind in (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID)
    if guid:
        # Most ids are already lower-case 8-4-4-4-12 with nothing around them: value is key.
        values: list[str] = column.tolist()
        keys = list(values)
        good = np.array(column.str.fullmatch(_GUID_PATTERN), dtype=bool)
        good &= np.array(column != _ZERO_GUID, dtype=bool)
        if table.overflow:
            good[list(table.overflow)] = False
        # Then the ones with braces, upper case or spaces around them, in one pass of one regex.
        others = np.flatnonzero(~good)
        if table.overflow:
            others = others[~np.isin(others, list(table.overflow))]
        for i in others.tolist():
            match = _LOOSE_GUID.fullmatch(values[i])
            if match and (key := match.group(2).lower()) != _ZERO_GUID:
                values[i], keys[i], good[i] = values[i].strip(), key, True
    else:
        stripped = column.str.strip()
        values = stripped.tolist()
        keys = stripped.str.casefold().tolist()
        good = np.array(stripped != "", dtype=bool)
        if kind == IdKind.SERIAL_NUMBER:
            good &= ~np.array(stripped.str.fullmatch(_SCIENTIFIC_PATTERN), dtype=bool)
        if table.numeric is not None:
            good &= ~table.numeric[index].to_numpy(dtype=bool)
    if table.overflow:
        good[list(table.overflow)] = False
    kinds: list[IdKind | None] = [kind] * count
    errors: list[str | None] = [None] * count
    suspects: list[int] = np.flatnonzero(~good).tolist()
    blank = _blank_rows(table, index, [i for i in suspects if not values[i].strip()])
    for i in suspects:
        if i in blank:
            continue
        values[i] = value = values[i].strip()
        error = _row_error(table, index, i, value, kind, label)
        if error is None:
            keys[i] = (normalise_guid(value) or "") if guid else value.casefold()
        else:
            kinds[i], keys[i], errors[i] = None, "", error
    rows = (np.arange(count) + table.header_row + 1).tolist()
    if not blank:
        return list(map(DeviceRef, rows, values, kinds, keys, errors))
    keep = [i not in blank for i in range(count)]
    return list(
        map(DeviceRef, *(compress(items, keep) for items in (rows, values, kinds, keys, errors)))
    )


def _blank_rows(table: _Table, index: int, empty: list[int]) -> set[int]:
    """Those of the rows with an empty identifier cell whose other cells are empty too."""
    if not empty or len(table.cells.columns) == 1:
        return set(empty)
    others = table.cells.iloc[empty].drop(columns=index)
    filled = others.apply(lambda col: col.str.strip() != "").any(axis=1).to_numpy(dtype=bool)
    return {row for row, has_other in zip(empty, filled.tolist(), strict=True) if not has_other}


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _row_error(
    table: _Table, index: int, position: int, value: str, kind: IdKind, label: str
) -> str | None:
    """Why this row's value cannot be used and what to do about it; None if it can be used."""
    if table.overflow and position in table.overflow:
        cut = _DELIMITER_NAMES.get(table.delimiter, repr(table.delimiter))
        return (
            f"this row has {table.overflow[position]} cells but the header has "
            f"{len(table.header)}: a value probably contains a {cut} without quotes; put that "
            f"value in double quotes or remove the extra {cut}"
        )
    if not value:
        return f"empty {label}; fill it in or delete the row"
    if kind in (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID):
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
    if table.numeric is not None and bool(table.numeric[index].iloc[position]):
        return (
            f"{label} {_show(value)} was changed by Excel: the workbook stores it as a number, so "
            "leading zeros may be lost and long numbers rounded; format the column as Text, "
            "enter the values again and save, or use the CSV export from Intune"
        )
    if kind == IdKind.SERIAL_NUMBER and re.fullmatch(_SCIENTIFIC_PATTERN, value):
        return (
            f"{label} {_show(value)} was changed by Excel into scientific notation and the real "
            "serial number cannot be recovered from it; export the list again and do not open "
            "and save the CSV in Excel, or in Excel format the column as Text before pasting "
            "serials"
        )
    return None
