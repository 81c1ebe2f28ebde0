"""Issue 19 item 3: a name or serial that matches a device only after Unicode folding (the Kelvin
sign for `K`, fullwidth letters) is ambiguous, never silently that device; exact names resolve."""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import Result

from batch_rotate.journal import Journal
from batch_rotate.models import Device, DeviceRef, IdKind
from batch_rotate.resolve_reasons import match_texts as _match_texts
from batch_rotate.sim import SimTenant
from batch_rotate.textsafe import ascii_shown, match_key, same_spelling

from .conftest import run_dirs, sim_flags
from .test_hostile_ids import _device

Cli = Callable[..., Result]
KELVIN = "\u212aIOSK-01"  # KELVIN SIGN, then Latin IOSK-01


def test_a_kelvin_sign_name_is_ambiguous_not_rotated(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    devices = [
        _device(1, KELVIN),
        _device(2, "KIOSK-02", serialNumber="ABC123"),
        _device(3, "KIOSK-03"),
    ]
    inventory = tmp_path / "fleet.json"
    inventory.write_text(json.dumps(devices), encoding="utf-8")
    sim = make_sim(inventory_file=inventory)
    names = tmp_path / "names.csv"
    names.write_text(f"Device name\nKIOSK-01\nkiosk-03\n{KELVIN}\n", encoding="utf-8")
    serials = tmp_path / "serials.csv"
    serials.write_text("Serial number\n\uff21\uff22\uff23123\nabc123\n", encoding="utf-8")

    for path in (names, serials):
        result = run_cli(["plan", str(path), *sim_flags(sim)], env=sim.env())
        assert result.exit_code == 0, result.output
    by_input: dict[str, tuple[str, str, str]] = {}
    for run_dir in run_dirs(tmp_path):
        with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
            for r in csv.DictReader(handle):
                by_input[r["Input value"]] = (r["Status"], r["Intune device ID"], r["Reason"])

    status, device, reason = by_input["KIOSK-01"]
    assert (status, device) == ("ambiguous", "")
    assert reason == (
        "ambiguous: no managed device has exactly this device name; one has a look-alike that "
        "matches only after Unicode folding (KIOSK-01 vs \\u212aIOSK-01); check which device is "
        "meant and list it by its Intune device ID"
    )
    assert by_input[KELVIN][:2] == ("would_rotate", devices[0]["id"])  # spelled exactly
    assert by_input["kiosk-03"][:2] == ("would_rotate", devices[2]["id"])  # ASCII case only
    status, device, reason = by_input["\uff21\uff22\uff23123"]
    assert (status, device) == ("ambiguous", "")
    assert "(\\uff21\\uff22\\uff23123 vs ABC123)" in reason and "serial number" in reason
    assert by_input["abc123"][:2] == ("would_rotate", devices[1]["id"])


def test_look_alike_rules() -> None:
    assert match_key("KIOSK-01") == match_key(KELVIN) == match_key("\uff2b\uff49osk-01")
    assert same_spelling(" kiosk-01", "KIOSK-01")
    assert not same_spelling("KIOSK-01", KELVIN)
    assert not same_spelling("kiosk-01", "\uff2b\uff49osk-01")
    assert not same_spelling("stra\u00dfe", "STRASSE")  # folds to the same, spelled apart
    assert ascii_shown(KELVIN) == "\\u212aIOSK-01"
    assert ascii_shown("PC\u202e1\n") == "PC\\u202e1\\n"


LETTERS = st.sampled_from(
    ["K", "k", "\u212a", "\uff2b", "S", "s", "\u017f", "A", "\u00c5", "\u212b"]
)


@settings(max_examples=150, deadline=None)
@given(
    inventory=st.lists(st.text(LETTERS, min_size=1, max_size=3), max_size=5, unique=True),
    names=st.lists(st.text(LETTERS, min_size=1, max_size=3), min_size=1, max_size=6),
)
def test_a_row_resolves_only_to_a_device_spelled_like_it(
    inventory: list[str], names: list[str]
) -> None:
    devices = [
        Device(
            id=f"00000000-0000-4000-8000-{n:012d}",
            name=name,
            entra_device_id=f"10000000-0000-4000-8000-{n:012d}",
        )
        for n, name in enumerate(inventory)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal.create(Path(tmp) / "run", {})
        journal.add_refs(
            DeviceRef(row, name, IdKind.DEVICE_NAME, match_key(name))
            for row, name in enumerate(names, start=2)
        )
        journal.add_inventory((d, "", "") for d in devices)
        journal.resolve_rows(
            {IdKind.DEVICE_NAME: _match_texts(IdKind.DEVICE_NAME)},
            duplicate=("duplicate: same device as row ", ""),
        )
        rows = {r.row: r for r in journal.report_rows()}
        journal.close()
    for row, name in enumerate(names, start=2):
        got = rows[row]
        alike = [d for d in devices if match_key(d.name) == match_key(name)]
        exact = [d for d in alike if same_spelling(d.name, name)]
        if got.intune_device_id:  # matched: exactly one candidate, spelled like the row
            assert alike == exact and len(exact) == 1
            assert got.intune_device_id == exact[0].id
        elif len(alike) == 1:
            assert got.status == "ambiguous" and "look-alike" in got.reason
        else:
            assert got.status == ("not_found" if not alike else "ambiguous")
