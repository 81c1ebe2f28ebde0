"""A lone DeviceId column (Log Analytics `project DeviceId`, Graph PowerShell scripts) against the
simulated tenant: a sample is looked up both ways in one $batch and decides, or the run stops."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from typer.testing import Result

from batch_rotate.journal import Journal
from batch_rotate.sim import SimTenant
from batch_rotate.sim.config import FaultConfig
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags

Cli = Callable[..., Result]


def _report(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _meta(run_dir: Path) -> dict[str, str]:
    with closing(Journal.open(run_dir)) as journal:
        return journal.meta()


def _devices(sim: SimTenant, count: int) -> list[dict[str, str]]:
    return [d for d in sim.inventory if eligible(d)][:count]


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_deviceid_holding_intune_ids_is_probed_read_as_intune_and_rotated(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    devices = _devices(sim, 12)
    unknown = str(uuid.UUID(int=7, version=4))
    rows = [f"{d['id']},{d['deviceName']}" for d in devices] + [f"{unknown},GONE-1"]
    # KQL: IntuneDevices | project DeviceId, DeviceName (no ReferenceId beside it to tell)
    path = _write(tmp_path / "la-export.csv", "DeviceId,DeviceName", rows)

    result = run_cli(["rotate", str(path), "--yes", *sim_flags(sim)], env=sim.env())

    assert result.exit_code == 0, result.output
    assert (
        "column DeviceId: 10 of 10 sampled values are Intune device IDs (GET by id found them; "
        "none is an Entra device ID): reading it as intune_id"
    ) in " ".join(result.output.split())
    (run_dir,) = run_dirs(tmp_path)
    report = _report(run_dir)
    assert [r["Status"] for r in report] == ["queued"] * 12 + ["not_found"]
    assert [r["Intune device ID"] for r in report[:12]] == [d["id"] for d in devices]
    assert "read as Intune device ID by sampling" in report[12]["Reason"]
    assert set(sim.metrics()["accepted_by_device"]) == {d["id"] for d in devices}
    meta = _meta(run_dir)
    assert meta["id_kind"] == "intune_id" and meta["id_kind_basis"] == "sampled"
    assert "10 of 10 sampled values are Intune device IDs" in meta["id_kind_evidence"]


def test_the_probe_is_one_batch_of_both_lookups_before_resolution(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    devices = _devices(sim, 4)
    path = _write(tmp_path / "ids.csv", "DeviceId", [d["id"] for d in devices])

    result = run_cli(["plan", str(path), *sim_flags(sim)], env=sim.env())

    assert result.exit_code == 0, result.output
    metrics = sim.metrics()
    # the probe: 4 values x 2 reads in one $batch; then resolution: 4 lookups in one $batch
    assert metrics["batch_requests"] == 2 and metrics["inner_requests"] == 8 + 4
    assert metrics["rotate_calls"] == 0


def test_deviceid_holding_entra_ids_is_probed_and_read_as_entra(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    devices = _devices(sim, 15)
    path = _write(tmp_path / "devices.csv", "DeviceId", [d["azureADDeviceId"] for d in devices])

    result = run_cli(["plan", str(path), *sim_flags(sim)], env=sim.env())

    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    assert "10 of 10 sampled values are Entra device IDs" in shown
    assert "reading it as entra_device_id" in shown
    (run_dir,) = run_dirs(tmp_path)
    report = _report(run_dir)
    assert {r["Status"] for r in report} == {"would_rotate"}
    assert [r["Intune device ID"] for r in report] == [d["id"] for d in devices]
    assert _meta(run_dir)["id_kind"] == "entra_device_id"


def test_mixed_values_stop_with_exit_2_naming_id_kind_and_leave_no_run(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    devices = _devices(sim, 6)
    values = [d["id"] for d in devices[:3]] + [d["azureADDeviceId"] for d in devices[3:]]
    path = _write(tmp_path / "mixed.csv", "DeviceId", values)

    result = run_cli(["rotate", str(path), "--yes", *sim_flags(sim)], env=sim.env())

    assert result.exit_code == 2, result.output
    shown = " ".join(result.output.split())
    assert "3 are Intune device IDs" in shown and "3 are Entra device IDs" in shown
    assert "--id-kind intune_id or --id-kind entra_device_id" in shown
    assert "Traceback" not in result.output
    assert run_dirs(tmp_path) == [] and not list((tmp_path / "reports").glob("*"))
    assert sim.metrics()["rotate_calls"] == 0


def test_values_found_neither_way_stop_with_exit_2(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    values = [str(uuid.UUID(int=n, version=4)) for n in range(1, 6)]
    path = _write(tmp_path / "strangers.csv", "DeviceId", values)

    result = run_cli(["plan", str(path), *sim_flags(sim)], env=sim.env())

    assert result.exit_code == 2, result.output
    shown = " ".join(result.output.split())
    assert "none of 5 sampled values was found" in shown and "--id-kind" in shown
    assert run_dirs(tmp_path) == []


def test_id_kind_given_means_no_probe(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    devices = _devices(sim, 3)
    path = _write(tmp_path / "ids.csv", "DeviceId", [d["id"] for d in devices])

    result = run_cli(["plan", str(path), "--id-kind", "intune_id", *sim_flags(sim)], env=sim.env())

    assert result.exit_code == 0, result.output
    assert "sampled" not in result.output
    assert sim.metrics()["inner_requests"] == 3  # the lookups only
    (run_dir,) = run_dirs(tmp_path)
    assert _meta(run_dir)["id_kind_basis"] == "read"


def test_a_probe_graph_never_answers_stops_with_exit_3_and_leaves_no_run(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(faults=FaultConfig(inner_500=1.0))
    path = _write(tmp_path / "ids.csv", "DeviceId", [d["id"] for d in _devices(sim, 3)])

    result = run_cli(["plan", str(path), "--max-attempts", "1", *sim_flags(sim)], env=sim.env())

    assert result.exit_code == 3, result.output
    shown = " ".join(result.output.split())
    assert "Graph answered none of the lookups" in shown and "--id-kind" in shown
    assert run_dirs(tmp_path) == []
