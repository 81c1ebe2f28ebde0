"""The generated fleet: deterministic, compact, with the trouble resolution must handle."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import Fleet, generate, load, write_sample

from .helpers import call, token

ROOT = Path(__file__).resolve().parents[2]


def test_committed_sample_matches_the_default_fleet(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    write_sample(path, generate(500, 1))
    assert path.read_bytes() == (ROOT / "inputs" / "sample-devices.csv").read_bytes()


def test_sample_resolves_against_a_default_tenant(sim: SimTenant) -> None:
    lines = (ROOT / "inputs" / "sample-devices.csv").read_text(encoding="utf-8").splitlines()
    ids = [line.split(",")[0] for line in lines[1:]]
    known = {d["id"]: d for d in sim.inventory}
    found = [known[i] for i in ids if i in known]
    assert len(lines) == 51 and len(found) == 48
    assert [d["operatingSystem"] for d in found].count("macOS") == 1


def test_fleet_has_the_trouble_resolution_must_handle() -> None:
    fleet = generate(2000, 7)
    names = [d["deviceName"] for d in fleet]
    serials = [d["serialNumber"] for d in fleet]
    assert len(set(names)) < len(names) and len(set(serials)) < len(serials)
    assert {d["operatingSystem"] for d in fleet} == {"Windows", "macOS", "iOS", "Android"}
    windows = [d for d in fleet if d["operatingSystem"] == "Windows"]
    assert any(d["joinType"] == "azureADRegistered" for d in windows)
    assert any(d["azureADDeviceId"] == "00000000-0000-0000-0000-000000000000" for d in windows)
    assert any(d["osVersion"].startswith("10.0.17763.") for d in windows)
    assert {d["managementAgent"] for d in fleet} == {"mdm", "configurationManagerClientMdm", "eas"}
    assert generate(50, 3) == generate(50, 3) != generate(50, 4)


def test_compact_fleet_equals_the_plain_list() -> None:
    fleet = Fleet.generated(300, 2)
    plain = generate(300, 2)
    assert len(fleet) == 300 and list(fleet) == plain and fleet[-1] == plain[-1]
    assert fleet.index_of(plain[10]["id"].upper()) == 10
    assert fleet.find("deviceName", plain[10]["deviceName"].lower())[0] <= 10
    fleet.record_action(plain[0]["id"], {"actionName": "rotateBitLockerKeys"})
    assert fleet[0]["deviceActionResults"] == [{"actionName": "rotateBitLockerKeys"}]
    assert plain[0]["deviceActionResults"] == []


def test_the_tenant_fleet_syncs_on_its_clock_except_the_unsynced_share(
    make_sim: Callable[..., SimTenant],
) -> None:
    def ages_days(sim: SimTenant) -> list[float]:
        now = datetime.now(UTC) + timedelta(seconds=sim.config.clock_offset_s)
        return [
            (now - datetime.fromisoformat(d["lastSyncDateTime"].replace("Z", "+00:00"))).days
            for d in sim.inventory
        ]

    assert max(ages_days(make_sim(devices=200))) < 21
    assert max(ages_days(make_sim(devices=200, clock_offset_s=-86400 * 40))) < 21
    ages = ages_days(make_sim(devices=200, unsynced_share=0.25))
    old = [age for age in ages if age > 30]
    assert 25 <= len(old) <= 75 and max(old) <= 120
    assert all(age < 21 for age in ages if age <= 30)


def test_inventory_from_json_and_intune_export(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    devices = generate(5, 9)
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(devices), encoding="utf-8")
    sim = make_sim(inventory_file=path)
    assert list(sim.inventory) == devices
    tok = token(sim)
    _, _, body = call(sim, "GET", "/beta/deviceManagement/managedDevices", token=tok)
    assert [d["id"] for d in body["value"]] == [d["id"] for d in devices]
    export = load(ROOT / "inputs" / "sample-devices.csv")
    assert len(export) == 50  # the bad row has an id too; it is just not a GUID
    assert export[0]["joinType"] in ("azureADJoined", "hybridAzureADJoined")
    assert export[0]["id"] in {d["id"] for d in generate(500, 1)}
