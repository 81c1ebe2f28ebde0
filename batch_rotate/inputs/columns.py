"""Which column holds the device identifiers, and what kind they are: from the header, the
options, the columns beside it, or (for a lone unknown column) its values. Refusals say why.
"""

from __future__ import annotations

from pathlib import Path

from batch_rotate.errors import InputError
from batch_rotate.inputs.headers import (
    GUID_CANDIDATES,
    KIND_WORDS,
    PREFERENCE,
    Meaning,
    accepted,
    interpret,
)
from batch_rotate.inputs.values import normalise_guid
from batch_rotate.models import IdKind

NO_HEADER = "(no header)"
_KIND_OPTION = "--id-kind intune_id|entra_device_id|serial_number|device_name"
_OPTIONS_HINT = f"name the column with --id-column NAME and say what it holds with {_KIND_OPTION}"


def is_headerless(header: list[str]) -> bool:
    """A single-column file whose first line is a GUID has no header line."""
    named = [cell for cell in header if cell]
    return len(named) == 1 and normalise_guid(named[0]) is not None


def _find_column(header: list[str], wanted: str) -> int | None:
    """The column named `wanted`: exactly, else ignoring case and surrounding spaces."""
    if wanted in header:
        return header.index(wanted)
    folded = wanted.strip().casefold()
    return next((i for i, name in enumerate(header) if name and name.casefold() == folded), None)


def _given(kind: IdKind, column: str) -> Meaning:
    return Meaning((kind,), f"--id-kind {kind.value} says {column!r} holds {KIND_WORDS[kind]}")


def choose(
    path: Path, header: list[str], id_column: str | None, id_kind: IdKind | None
) -> list[tuple[int, Meaning | None]]:
    """The candidate columns in order of preference, each with what it holds (None: unknown)."""
    columns = [name for name in header if name]
    found = ", ".join(repr(name) for name in columns) or "none"
    if id_column is not None:
        index = _find_column(header, id_column)
        if index is None:
            raise InputError(
                f"{path.name}: no column {id_column!r}; columns found: {found}; give one of them "
                "with --id-column"
            )
        if id_kind is not None:
            return [(index, _given(id_kind, header[index]))]
        return [(index, interpret(header[index], header))]
    meanings = [
        (position, meaning)
        for position, name in enumerate(header)
        if name and (meaning := interpret(name, header)) is not None
    ]
    meanings.sort(key=lambda item: (min(PREFERENCE.index(k) for k in item[1].candidates), item[0]))
    if id_kind is not None:
        same = [(p, _given(id_kind, header[p])) for p, m in meanings if id_kind in m.candidates]
        if same:
            return list(same)
        if len(columns) == 1:
            index = header.index(columns[0])
            return [(index, _given(id_kind, header[index]))]
        raise InputError(
            f"{path.name}: no column is known to hold {KIND_WORDS[id_kind]}; columns found: "
            f"{found}; name the column with --id-column NAME"
        )
    if meanings:
        return list(meanings)
    if len(columns) != 1:  # nothing to look at: refuse now, without reading the rows
        raise _no_id_column(path, found, "")
    return [(header.index(columns[0]), None)]


def _no_id_column(path: Path, found: str, hint: str) -> InputError:
    return InputError(
        f"{path.name}: no device identifier column. Columns found: {found}. Accepted headers: "
        f"{accepted()}. {hint}Or {_OPTIONS_HINT}"
    )


def meaning_from_values(
    path: Path, header: list[str], index: int, values: list[str], id_column: str | None
) -> Meaning:
    """What an unknown column holds, judged from its values; refuse when they do not say."""
    name = header[index]
    values = [value.strip() for value in values if value.strip()]
    guids = bool(values) and all(normalise_guid(value) is not None for value in values)
    if id_column is None:  # a lone unknown column: say what it looks like, but do not guess
        if normalise_guid(name):
            hint = "The first line looks like data, not a header: add a header line. "
        elif guids:
            hint = (
                f"The values in {name!r} are GUIDs: if they are Intune device IDs add --id-kind "
                "intune_id, if Microsoft Entra device IDs add --id-kind entra_device_id. "
            )
        elif values and all(_looks_like_name(value) for value in values):
            hint = (
                f"The values in {name!r} look like device names or serial numbers: add "
                "--id-kind device_name or --id-kind serial_number. "
            )
        else:
            hint = ""
        raise _no_id_column(path, repr(name), hint)
    if guids:
        return Meaning(
            GUID_CANDIDATES[::-1],
            f"the values in {name!r} are GUIDs and its header does not say whether they are "
            "Microsoft Entra or Intune device IDs",
        )
    if not values:
        return Meaning((IdKind.DEVICE_NAME,), f"{name!r} has no values")  # no rows: refused later
    raise InputError(
        f"{path.name}: column {name!r} is not a known identifier column and its values are not "
        "GUIDs, so whether they are device names or serial numbers cannot be told; say what it "
        "holds with --id-kind device_name or --id-kind serial_number (or --id-kind intune_id "
        "or entra_device_id for GUIDs)"
    )


def _looks_like_name(value: str) -> bool:
    return len(value) <= 63 and all(c.isalnum() or c in "._-" for c in value) and value[0].isalnum()
