"""Property: resolution never loses a row and never matches a row to a device it does not name."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from batch_rotate.eligibility import ineligibility
from batch_rotate.journal import Journal
from batch_rotate.journal_plan import MatchTexts
from batch_rotate.models import Device, DeviceRef, IdKind
from batch_rotate.present import shown_rows

NAMES = st.sampled_from(["LT-1", "lt-1", "LT-2", "WS-3", "MAC-4", "PC-5"])
GOOD = {"os": "Windows", "os_version": "10.0.22631.1", "join_type": "azureADJoined"}


@settings(max_examples=150, deadline=None)
@given(
    inventory=st.lists(st.tuples(NAMES, st.booleans()), max_size=8),
    names=st.lists(st.one_of(NAMES, st.just("")), min_size=1, max_size=10),
)
def test_every_row_resolves_to_exactly_what_it_names(
    inventory: list[tuple[str, bool]], names: list[str]
) -> None:
    devices = [
        Device(
            id=f"dev{n}",
            name=name,
            entra_device_id=f"e{n}",
            management_agent="mdm",
            **{**GOOD, "os": "Windows" if windows else "macOS"},
        )
        for n, (name, windows) in enumerate(inventory)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal.create(Path(tmp) / "run", {})
        journal.add_refs(
            DeviceRef(row, name, IdKind.DEVICE_NAME, name.casefold())
            if name
            else DeviceRef(row, "", None, "", "empty")
            for row, name in enumerate(names, start=2)
        )
        journal.add_inventory((d, ineligibility(d) or "", "") for d in devices)
        journal.resolve_rows(
            {IdKind.DEVICE_NAME: MatchTexts("not_found", ("ambiguous: ", " devices (", ")"))},
            duplicate=("duplicate: same device as row ", ""),
        )
        rows = list(shown_rows(journal.report_rows(), dry_run=False))
        journal.close()
    assert [r.row for r in rows] == list(range(2, len(names) + 2))  # none lost, none invented
    first_row: dict[str, int] = {}
    for row, name in zip(rows, names, strict=True):
        named = [d for d in devices if name and d.name.casefold() == name.casefold()]
        if not name:
            assert row.status == "invalid_input"
        elif not named:
            assert row.status == "not_found" and row.intune_device_id == ""
        elif len(named) > 1:
            assert row.status == "ambiguous" and row.intune_device_id == ""
            assert all(d.id in row.reason for d in named)
        else:
            (device,) = named
            assert row.intune_device_id == device.id  # only ever the device it names
            if device.id in first_row:
                assert row.status == "duplicate" and f"row {first_row[device.id]}" in row.reason
            else:
                first_row[device.id] = row.row
                assert row.status == ("not_sent" if device.os == "Windows" else "ineligible")
