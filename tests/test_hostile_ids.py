"""Issue 19 item 1: an id from Graph that is not a GUID never reaches a URL.

A tenant (or anything answering as one) that returns a path as a device id must not turn a
rotation into a request for another resource: the device fails with `invalid_id`, and the
simulated tenant's request log shows only the valid devices' rotate URLs were ever posted.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from batch_rotate.graph.batch import BatchItem, InnerResponse
from batch_rotate.graph.client import BatchResult, GraphResponse
from batch_rotate.graph.errors import InvalidIdError
from batch_rotate.graph.paths import device_path, is_guid, recovery_key_path, recovery_keys_of
from batch_rotate.journal import Journal
from batch_rotate.models import Device, DeviceRef, IdKind
from batch_rotate.resolve import SELECT, Wanted, resolve
from batch_rotate.resolve_reasons import invalid_id
from batch_rotate.sim import SimTenant
from tests.graph.fakeclock import FakeClock
from tests.graph.fakes import session_on

from .conftest import run_dirs, sim_flags

Cli = Callable[..., Result]
USER = "00000000-0000-4000-8000-0000000000aa"
HOSTILE_ID = f"../../../../users/{USER}/revokeSignInSessions?x="
HOSTILE_ENTRA = "x' or deviceId ne 'y"


def _device(n: int, name: str, **extra: str) -> dict[str, str]:
    synced = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "deviceName": name,
        "serialNumber": f"SN{n:05d}",
        "azureADDeviceId": f"10000000-0000-4000-8000-{n:012d}",
        "operatingSystem": "Windows",
        "osVersion": "10.0.22631.4460",
        "joinType": "azureADJoined",
        "managementAgent": "mdm",
        "lastSyncDateTime": synced,
        **extra,
    }


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {r["Device name"] or r["Input value"]: r for r in csv.DictReader(handle)}


def test_a_path_as_device_id_fails_and_nothing_but_valid_rotations_is_sent(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    devices = [
        _device(1, "GOOD-01"),
        _device(2, "EVIL-01", id=HOSTILE_ID),
        _device(3, "EVIL-02", azureADDeviceId=HOSTILE_ENTRA),
        _device(4, "GOOD-02"),
    ]
    inventory = tmp_path / "fleet.json"
    inventory.write_text(json.dumps(devices), encoding="utf-8")
    sim = make_sim(inventory_file=inventory, log_requests=True)
    names = tmp_path / "names.csv"
    names.write_text("Device name\nGOOD-01\nEVIL-01\nEVIL-02\nGOOD-02\nEVIL-01\n", encoding="utf-8")

    result = run_cli(["rotate", str(names), "--yes", *sim_flags(sim)], env=sim.env())

    assert result.exit_code == 1, result.output  # some devices failed: see the report
    (run_dir,) = run_dirs(tmp_path)
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = {int(r["Row"]): r for r in csv.DictReader(handle)}
    assert {n: rows[n]["Status"] for n in rows} == {
        2: "queued",
        3: "failed",
        4: "failed",
        5: "queued",
        6: "failed",  # the same hostile device again: it fails too, never "rotated once there"
    }
    assert rows[3]["Reason"] == (
        f"invalid_id: Graph returned an id that is not a GUID ('{HOSTILE_ID}'); nothing was sent"
    )
    assert rows[6]["Reason"] == rows[3]["Reason"]
    assert rows[4]["Reason"] == (
        "invalid_id: Graph returned an azureADDeviceId that is not a GUID "
        "('x\\' or deviceId ne \\'y'); nothing was sent"
    )
    sent = sim.requests()
    writes = sorted(r for r in sent if not r.startswith("GET ") and r != "POST /beta/$batch")
    assert writes == [
        f"POST /beta/deviceManagement/managedDevices/{d['id']}/rotateBitLockerKeys (in $batch)"
        for d in (devices[0], devices[3])
    ]
    assert not [r for r in sent if "users" in r or ".." in r or "revokeSignIn" in r]
    assert not [r for r in sent if devices[2]["id"] in r or "deviceId ne" in r]
    assert sim.metrics()["devices_rotated"] == 2


def test_url_builders_refuse_anything_but_a_guid() -> None:
    good = "0F8FAD5B-D9CB-469F-A165-70867728950E"
    assert device_path(good, "/rotateBitLockerKeys") == (
        f"/deviceManagement/managedDevices/{good}/rotateBitLockerKeys"
    )
    assert recovery_key_path(good).endswith(f"/recoveryKeys/{good}")
    assert recovery_keys_of(good).endswith(f"deviceId%20eq%20'{good}'")
    for bad in (
        HOSTILE_ID,
        HOSTILE_ENTRA,
        "",
        f"{{{good}}}",
        f"{good}\n",
        f" {good}",
        good.replace("0", "\uff10"),  # fullwidth digits are digits to \d, not to a GUID
        good[:-1] + "g",
        f"{good}/../x",
    ):
        assert not is_guid(bad)
        for build in (device_path, recovery_key_path, recovery_keys_of):
            with pytest.raises(InvalidIdError, match="not a GUID"):
                build(bad)


def test_resolution_names_the_invalid_id_escaped() -> None:
    assert invalid_id(Device(id="0f8fad5b-d9cb-469f-a165-70867728950e")) is None
    reason = invalid_id(Device(id="a\x1b[2J/\u202e"))
    assert reason == (
        "invalid_id: Graph returned an id that is not a GUID ('a\\x1b[2J/\\u202e'); "
        "nothing was sent"
    )
    assert invalid_id(Device(id="")) is not None  # no id at all cannot be addressed either


class _AnswersWithAPath:
    """A `$batch` transport whose GET by id answers with a path as the device's id."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    async def batch(self, items: Sequence[BatchItem], *, version: str = "beta") -> BatchResult:
        self.urls += (item.url for item in items)
        body = {"id": HOSTILE_ID, "deviceName": "EVIL-01", "operatingSystem": "Windows"}
        answers = {item.key: InnerResponse(200, {}, body) for item in items}
        return BatchResult(GraphResponse(200, {}, None, "rid", "crid"), answers)

    async def request(self, method: str, path: str, **_: Any) -> GraphResponse:
        raise AssertionError("lookups go through $batch")


def test_a_lookup_answered_with_a_path_fails_the_row(tmp_path: Path) -> None:
    good = "0f8fad5b-d9cb-469f-a165-70867728950e"
    journal = Journal.create(tmp_path / "run", {})
    journal.add_refs([DeviceRef(2, good, IdKind.INTUNE_ID, good)])
    graph = _AnswersWithAPath()
    session = session_on(graph, FakeClock(start_epoch=time.time()))
    try:
        wanted = Wanted.of([(IdKind.INTUNE_ID, good)])
        asyncio.run(resolve(journal, wanted, session, eligibility=lambda _: None))
        (row,) = journal.report_rows()
    finally:
        journal.close()
    assert graph.urls == [f"/deviceManagement/managedDevices/{good}?$select={SELECT}"]
    assert (row.status, row.intune_device_id) == ("failed", "")
    assert row.reason == (
        f"invalid_id: Graph returned an id that is not a GUID ('{HOSTILE_ID}'); nothing was sent"
    )
