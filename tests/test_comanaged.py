"""Co-managed devices (Configuration Manager + Intune) stay eligible and are flagged in the plan."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from typer.testing import Result

from batch_rotate.eligibility import comanaged_note, ineligibility
from batch_rotate.journal import Journal
from batch_rotate.journal_plan import MatchTexts
from batch_rotate.models import Device, DeviceRef, IdKind
from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import eligible, generate

from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]

DEVICE = Device(
    id="11111111-1111-4111-8111-111111111111",
    name="LT-1",
    entra_device_id="22222222-2222-4222-8222-222222222222",
    os="Windows",
    os_version="10.0.22631.4460",
    join_type="hybridAzureADJoined",
    management_agent="configurationManagerClientMdm",
)


def test_an_eligible_comanaged_device_is_flagged_not_refused() -> None:
    assert ineligibility(DEVICE) is None
    note = comanaged_note(DEVICE)
    assert note is not None and note.startswith("comanaged: ")
    assert "configurationManagerClientMdm" in note
    assert "Endpoint Protection workload is moved to Intune" in note


def test_only_eligible_configuration_manager_devices_are_flagged() -> None:
    assert comanaged_note(replace(DEVICE, management_agent="mdm")) is None
    # Configuration Manager alone is not Intune managed: refused, so no flag
    alone = replace(DEVICE, management_agent="configurationManagerClient")
    assert ineligibility(alone) is not None and comanaged_note(alone) is None
    assert comanaged_note(replace(DEVICE, os="macOS")) is None


def test_flags_are_stored_with_devices_and_reach_only_their_planned_rows(
    tmp_path: Path,
) -> None:
    # The flag lives in the journal (not in a per-device dict of the run): a duplicate row of a
    # flagged device and an unflagged device keep their own reasons.
    other = replace(DEVICE, id="33333333-3333-4333-8333-333333333333", management_agent="mdm")
    journal = Journal.create(tmp_path / "run", {})
    journal.add_refs(
        DeviceRef(row, device.id.upper(), IdKind.INTUNE_ID, device.id)
        for row, device in ((2, DEVICE), (3, other), (4, DEVICE))
    )
    journal.add_inventory(
        (d, ineligibility(d) or "", comanaged_note(d) or "") for d in (DEVICE, other)
    )
    journal.resolve_rows(
        {IdKind.INTUNE_ID: MatchTexts("not_found", ("ambiguous: ", " devices (", ")"))},
        duplicate=("duplicate: same device as row ", ""),
    )
    assert journal.any_flagged()
    assert journal.flag_planned() == 1
    reasons = {r.row: r.reason for r in journal.report_rows()}
    journal.close()
    assert reasons[2].startswith("comanaged: ")
    assert reasons[3] == "" and reasons[4] == "duplicate: same device as row 2"


def _report_and_comanaged(tmp_path: Path) -> tuple[list[dict[str, str]], set[str]]:
    """The run's report rows, and the sample's co-managed devices (by the export's column)."""
    (run_dir,) = run_dirs(tmp_path)
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        comanaged = {
            r["Device ID"] for r in csv.DictReader(handle) if r["Managed by"] == "Co-managed"
        }
    return rows, comanaged


def test_the_plan_flags_comanaged_rows_and_says_so(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    result = run_cli(["plan", str(SAMPLE), *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    rows, comanaged = _report_and_comanaged(tmp_path)
    flagged = [r for r in rows if r["Reason"].startswith("comanaged: ")]
    assert comanaged and {r["Intune device ID"] for r in flagged} == comanaged
    assert {r["Status"] for r in flagged} == {"would_rotate"}  # planned like any eligible device
    assert "co-managed devices in the plan: 1;" in " ".join(result.output.split())


def test_a_queued_comanaged_device_keeps_its_flag_after_the_answer(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    """The answer replaces the planned reason; the co-management flag stays beside it."""
    result = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    rows, comanaged = _report_and_comanaged(tmp_path)
    flagged = {r["Intune device ID"]: r for r in rows if "comanaged: " in r["Reason"]}
    assert comanaged and set(flagged) == comanaged
    for row in flagged.values():
        assert row["Status"] == "queued"
        assert row["Reason"].startswith("accepted by Intune")  # the answer first, then the flag


def test_no_comanaged_note_when_no_planned_row_is_comanaged(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    """A co-managed device resolution stored but did not plan (its name is ambiguous) is no
    co-managed device in the plan: the note, which said "in the plan: 0", is not printed."""
    fleet = generate(200, 1)
    comanaged = next(
        d for d in fleet if eligible(d) and d["managementAgent"] == "configurationManagerClientMdm"
    )
    twin = next(d for d in fleet if eligible(d) and d["managementAgent"] == "mdm")
    twin["deviceName"] = comanaged["deviceName"]
    (tmp_path / "fleet.json").write_text(json.dumps(fleet), encoding="utf-8")
    sim = make_sim(inventory_file=tmp_path / "fleet.json")
    (tmp_path / "names.csv").write_text(
        f"Device name\n{comanaged['deviceName']}\n", encoding="utf-8"
    )
    result = run_cli(["plan", "names.csv", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    journal = Journal.open(run_dir, write=False)
    stored, counts = journal.any_flagged(), journal.counts()
    journal.close()
    assert stored and counts == {"ambiguous": 1}  # stored, but no row plans it
    assert "co-managed" not in result.output
