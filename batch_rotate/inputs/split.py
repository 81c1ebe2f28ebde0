"""One device list spanning many tenants (an RMM export with a `Tenant ID` column), split into one
CSV per tenant for a campaign (issue 21). A row whose tenant is not in the tenants file is refused
before anything is sent: it is never guessed into another tenant.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from batch_rotate.errors import InputError
from batch_rotate.inputs.read import _check_path, _open
from batch_rotate.inputs.sheet import Sheet
from batch_rotate.inputs.text import Hashing, encoding_of, field_limit, not_text, read_text
from batch_rotate.inputs.xlsx import read_xlsx
from batch_rotate.textsafe import safe_text

TENANT_HEADERS = ("tenant id", "tenantid", "tenant_id", "tenant", "customer tenant id", "tid")
SOURCE_ROW = "Source row"  # the row in the spanning file, kept in each tenant's list


@dataclass(frozen=True)
class Split:
    files: dict[str, Path]  # tenant key -> its device list
    rows: dict[str, int]  # tenant key -> rows in it


def split_by_tenant(
    path: Path,
    out_dir: Path,
    key_of: Callable[[str], str | None],
    *,
    sheet: str | None = None,
) -> Split:
    """Write each row of `path` to `out_dir/<key>.csv` by its tenant column; `key_of` maps the
    cell (a tenant id or domain) to a tenant key, or None when the tenant is not in the campaign."""
    is_text = _check_path(path)
    with field_limit():
        if not is_text:
            with _open(path) as handle:
                start = handle.read(4096)
                handle.seek(0)
                return _split(path, read_xlsx(path, handle, sheet, start), out_dir, key_of)
        with _open(path) as handle:
            encodings = encoding_of(path, handle.read(4096))
            for encoding in encodings:
                handle.seek(0)
                try:
                    return _split(path, read_text(path, Hashing(handle), encoding), out_dir, key_of)
                except UnicodeDecodeError:
                    continue
    raise not_text(path, 0)


def _split(path: Path, table: Sheet, out_dir: Path, key_of: Callable[[str], str | None]) -> Split:
    lowered = [h.strip().lower() for h in table.header]
    column = next((lowered.index(h) for h in TENANT_HEADERS if h in lowered), None)
    if column is None:
        raise InputError(
            f"{path.name}: no Tenant ID column; a device list spanning tenants needs one (the "
            "tenant id or domain of each row), or give each tenant its own input in the tenants "
            "file"
        )
    unknown: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    files: dict[str, Path] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        writers: dict[str, csv.DictWriter[str]] = {}
        header = [SOURCE_ROW, *(h for i, h in enumerate(table.header) if i != column and h)]
        for row, cells, _numeric, _first, _last in table.records:
            if not any(c.strip() for c in cells):
                continue
            value = cells[column].strip() if column < len(cells) else ""
            key = key_of(value) if value else None
            if key is None:
                unknown.setdefault(value, []).append(row)
                continue
            if key not in writers:
                files[key] = out_dir / f"{key}.csv"
                handle: IO[str] = stack.enter_context(
                    files[key].open("w", encoding="utf-8", newline="")
                )
                writers[key] = csv.DictWriter(handle, header, extrasaction="ignore")
                writers[key].writeheader()
            record = {
                h: cells[i] if i < len(cells) else "" for i, h in enumerate(table.header) if h
            }
            record[SOURCE_ROW] = str(row)
            writers[key].writerow(record)
            counts[key] = counts.get(key, 0) + 1
    if unknown:
        for file in files.values():
            file.unlink(missing_ok=True)
        value, rows = next(iter(unknown.items()))
        more = sum(len(r) for r in unknown.values()) - len(rows)
        what = f"tenant {safe_text(value)!r}" if value else "no tenant"
        shown_rows = ", ".join(map(str, rows[:5])) + (" ..." if len(rows) > 5 else "")
        raise InputError(
            f"{path.name} rows {shown_rows}: {what} is not in the tenants file"
            + (f" (and {more} more rows of other tenants)" if more else "")
            + "; add the tenant to the tenants file or remove those rows; nothing was sent"
        )
    return Split(files, counts)
