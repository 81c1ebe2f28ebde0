"""Read a device list (CSV or XLSX) into `DeviceRef`s: open it, stream its rows, keep one column.

One streaming pass: only the identifier column (chosen by `columns.py`) is kept as text, refs are
made as they are iterated. Bad rows become refs with an error; an unusable file raises InputError.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import overload

from batch_rotate.errors import InputError
from batch_rotate.inputs.columns import NO_HEADER, choose, is_headerless, meaning_from_values
from batch_rotate.inputs.headers import Meaning
from batch_rotate.inputs.sheet import Record, Sheet
from batch_rotate.inputs.text import (
    Hashing,
    bad_line,
    encoding_of,
    field_limit,
    not_text,
    read_text,
)
from batch_rotate.inputs.values import Problem, make_ref
from batch_rotate.inputs.xlsx import read_xlsx
from batch_rotate.models import DeviceRef, IdKind

CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})


class RefList(Sequence[DeviceRef]):
    """The rows' refs, made when read: only the identifier cells are held (about 100 MB for a
    million GUIDs instead of twice that as finished records)."""

    def __init__(
        self,
        rows: array[int],
        values: list[str],
        problems: dict[int, Problem],
        kind: IdKind,
        label: str,
    ) -> None:
        self._rows, self._values, self._problems = rows, values, problems
        self.kind, self._label = kind, label

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> DeviceRef: ...
    @overload
    def __getitem__(self, index: slice) -> list[DeviceRef]: ...
    def __getitem__(self, index: int | slice) -> DeviceRef | list[DeviceRef]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]
        return make_ref(
            self._rows[i], self._values[i], self.kind, self._label, self._problems.get(i)
        )

    def __iter__(self) -> Iterator[DeviceRef]:
        kind, label, problems = self.kind, self._label, self._problems
        for i, (row, value) in enumerate(zip(self._rows, self._values, strict=True)):
            yield make_ref(row, value, kind, label, problems.get(i))

    def as_kind(self, kind: IdKind) -> RefList:
        """The same rows read as `kind` (after the run layer decided an ambiguous column)."""
        return RefList(self._rows, self._values, self._problems, kind, self._label)


@dataclass(frozen=True, slots=True)
class DeviceList:
    """The rows of one device list and how they were read.

    `kind_candidates` has more than one kind when neither the header nor the columns beside it
    tell whose GUIDs these are: the run layer must decide (probe Graph) and call `as_kind`.
    """

    path: Path
    sha256: str  # of the file bytes
    column: str  # the header used, as written in the file
    kind: IdKind  # kind of that column; the first candidate while undecided
    columns_found: tuple[str, ...]
    refs: RefList  # one per non-blank data row, in file order
    kind_candidates: tuple[IdKind, ...] = ()
    kind_evidence: str = ""  # why this kind (or these candidates), for the operator
    header_row: int = 1
    rows_skipped: int = field(default=0)  # blank rows below the header

    @property
    def ambiguous(self) -> bool:
        return len(self.kind_candidates) > 1

    def __len__(self) -> int:
        return len(self.refs)

    def as_kind(self, kind: IdKind, evidence: str) -> DeviceList:
        """This list with its column's kind decided (`evidence` says how)."""
        return replace(
            self,
            kind=kind,
            refs=self.refs.as_kind(kind),
            kind_candidates=(kind,),
            kind_evidence=evidence,
        )


def read_device_list(
    path: Path,
    *,
    id_column: str | None = None,
    id_kind: IdKind | None = None,
    sheet: str | None = None,
) -> DeviceList:
    """Read the file, choose the identifier column, and keep each non-blank row's identifier."""
    path = Path(path)
    is_text = _check_path(path)
    if is_text and sheet is not None:
        raise InputError(
            f"{path.name}: --sheet {sheet!r} applies only to .xlsx workbooks and this is a "
            "text file; drop --sheet"
        )
    with field_limit():
        first = _scan(path, is_text, sheet, id_column, id_kind, forced=None)
        if first.retry is None:
            return first.result()
        again = _scan(path, is_text, sheet, id_column, id_kind, forced=first.retry)
        if again.sha256 != first.sha256:
            raise InputError(
                f"{path.name}: the file changed while it was being read; wait until it is "
                "written completely, then run again"
            )
        return again.result()


# --- the file ------------------------------------------------------------------------------------


def _check_path(path: Path) -> bool:
    """Refuse what is not a regular CSV or XLSX file before opening it; True for text files."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(
            f"{path}: no such file; give the path of a .csv or .xlsx device list"
        ) from None
    except OSError as exc:
        raise InputError(
            f"{path}: cannot be read ({exc.strerror or exc}); give a CSV or XLSX file"
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a folder, not a file; give a CSV or XLSX file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(
            f"{path}: is not a regular file (a device, pipe or socket cannot be a device "
            "list); give a CSV or XLSX file"
        )
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES | XLSX_SUFFIXES:
        raise InputError(
            f"{path.name}: unsupported file type {suffix or '(no extension)'}; supported: .csv, "
            ".txt, .tsv (comma, semicolon or tab separated) and .xlsx, .xlsm (for example the "
            "Intune admin center's 'All devices' export); save the list in one of those formats"
        )
    if info.st_size == 0:
        raise InputError(f"{path.name}: the file is empty; export the device list again")
    return suffix in CSV_SUFFIXES


def _open(path: Path) -> io.BufferedReader:
    """The file opened without blocking (a FIFO swapped in after the check never hangs)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InputError(
            f"{path.name}: cannot be read ({exc.strerror or exc}); check the permissions, or "
            "close it in Excel and try again"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{path}: is not a regular file; give a CSV or XLSX file")
    return open(fd, "rb")


@dataclass(slots=True)
class _Column:
    """The identifier cells of the non-blank rows, and which watched columns had any value."""

    rows: array[int] = field(default_factory=lambda: array("q"))
    values: list[str] = field(default_factory=list)
    problems: dict[int, Problem] = field(default_factory=dict)
    filled: set[int] = field(default_factory=set)
    skipped: int = 0


@dataclass(slots=True)
class _Scan:
    """One pass over the file: what was read, and whether another column must be read instead."""

    path: Path
    sha256: str
    header: list[str]
    header_row: int
    index: int
    meaning: Meaning
    column: _Column
    where: str
    retry: int | None = None

    def result(self) -> DeviceList:
        label = self.header[self.index]
        refs = RefList(
            self.column.rows,
            self.column.values,
            self.column.problems,
            self.meaning.kind,
            "value" if label == NO_HEADER else label,
        )
        if not refs:
            raise InputError(
                f"{self.path.name}: no device rows below the header (row {self.header_row}); put "
                f"one device per row in the {self.where}, under the header"
            )
        return DeviceList(
            self.path,
            self.sha256,
            label,
            self.meaning.kind,
            tuple(name for name in self.header if name),
            refs,
            self.meaning.candidates,
            self.meaning.evidence,
            self.header_row,
            self.column.skipped,
        )


def _scan(
    path: Path,
    is_text: bool,
    sheet: str | None,
    id_column: str | None,
    id_kind: IdKind | None,
    forced: int | None,
) -> _Scan:
    """Read the file once, keeping only the chosen identifier column."""
    with _open(path) as handle:
        start = handle.read(4096)
        handle.seek(0)
        if not is_text:
            digest = hashlib.sha256()
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
            handle.seek(0)
            table = read_xlsx(path, handle, sheet, start)
            return _scan_sheet(path, table, digest.hexdigest, id_column, id_kind, forced)
        encodings = encoding_of(path, start)
        for encoding in encodings:
            handle.seek(0)
            raw = Hashing(handle)
            try:
                table = read_text(path, raw, encoding)
                return _scan_sheet(path, table, raw.digest.hexdigest, id_column, id_kind, forced)
            except UnicodeDecodeError:
                continue
        raise not_text(path, bad_line(path, encodings[0]) if encodings else 0)


def _scan_sheet(
    path: Path,
    table: Sheet,
    sha256: Callable[[], str],
    id_column: str | None,
    id_kind: IdKind | None,
    forced: int | None,
) -> _Scan:
    header, header_row = table.header, table.header_row
    records = table.records
    headerless = is_headerless(header)
    if headerless:
        if id_kind is None:
            raise InputError(
                f"{path.name}: the first line {next(c for c in header if c)!r} is a GUID, so the "
                "file has no header line and what the GUIDs are is unknown; add --id-kind "
                "intune_id or --id-kind entra_device_id (or add a header line such as 'Device "
                "ID' or 'Microsoft Entra Device ID')"
            )
        if id_column is not None:
            raise InputError(
                f"{path.name}: the file has no header line (its first line is a GUID), so there is "
                f"no column {id_column!r}; drop --id-column and keep --id-kind"
            )
        first: Record = (header_row, list(header), None, 0, 0)
        records = _chain(first, records)
        header_row -= 1
        header = [NO_HEADER if cell else "" for cell in header]
    choices = choose(path, header, id_column, id_kind)
    if forced is not None:
        choices = [c for c in choices if c[0] == forced]
    index, meaning = choices[0]
    watch = [position for position, _ in choices[1:]]
    column = _collect(records, index, len(header), table.delimiter, watch)
    digest = sha256()
    if meaning is None:
        meaning = meaning_from_values(path, header, index, column.values, id_column)
    filled = bool(column.filled and index in column.filled)
    scan = _Scan(path, digest, header, header_row, index, meaning, column, table.where)
    if not filled and forced is None:
        scan.retry = next((p for p in watch if p in column.filled), None)
    return scan


def _chain(first: Record, rest: Iterator[Record]) -> Iterator[Record]:
    yield first
    yield from rest


def _collect(
    records: Iterator[Record], index: int, width: int, delimiter: str, watch: list[int]
) -> _Column:
    """Keep column `index` of every non-blank row; note which `watch` columns hold a value."""
    column = _Column()
    rows, values, problems = column.rows, column.values, column.problems
    pending = list(watch)
    for row, cells, numeric, first, last in records:
        count = len(cells)
        value = cells[index] if index < count else ""
        if not value or value.isspace():
            if not any(cell and not cell.isspace() for cell in cells):
                column.skipped += 1
                continue
        else:
            column.filled.add(index)
        problem = None
        if count > width and any(cell and not cell.isspace() for cell in cells[width:]):
            problem = Problem(cells=count, delimiter=delimiter, width=width)
        elif numeric is not None and index < count and numeric[index]:
            problem = Problem(numeric=True)
        elif last > first and ("\n" in value or "\r" in value):
            problem = Problem(lines=(first, last))
        if problem is not None:
            problems[len(values)] = problem
        rows.append(row)
        values.append(value)
        if pending:
            for position in [p for p in pending if p < count and cells[p].strip()]:
                column.filled.add(position)
                pending.remove(position)
    return column
