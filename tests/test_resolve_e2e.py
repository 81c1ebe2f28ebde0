"""Resolution end to end: every outcome from a mixed list, each identifier kind, strategy choice."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import eligible, generate, write_mixed

from .conftest import ROOT, run_dirs, sim_flags

Cli = Callable[..., Result]
MIXED = ROOT / "inputs" / "mixed-devices.csv"


def _report(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _plan(
    sim: SimTenant, run_cli: Cli, tmp_path: Path, path: Path, *extra: str
) -> tuple[Result, list[dict[str, str]]]:
    result = run_cli(["plan", str(path), *extra, *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    return result, _report(run_dirs(tmp_path)[-1])


def test_committed_mixed_list_matches_the_default_fleet(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    write_mixed(path, generate(500, 1))
    assert path.read_bytes() == MIXED.read_bytes()


def test_mixed_list_shows_every_outcome(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    result, report = _plan(sim, run_cli, tmp_path, MIXED)
    got = [(r["Row"], r["Status"], r["Reason"].split(":")[0]) for r in report]
    assert got == [
        ("2", "would_rotate", "eligible; a rotate request would be sent"),
        ("3", "would_rotate", "eligible; a rotate request would be sent"),
        ("4", "ambiguous", "ambiguous"),
        ("5", "duplicate", "duplicate"),
        ("6", "not_found", "not_found"),
        ("7", "ineligible", "not_windows"),
        ("8", "ineligible", "not_windows"),
        ("9", "ineligible", "entra_registered_only"),
        ("10", "ineligible", "no_entra_device_id"),
        ("11", "ineligible", "os_too_old"),
        ("12", "ineligible", "not_intune_managed"),
        ("13", "invalid_input", "empty Device name; fill it in or delete the row"),
        ("14", "would_rotate", "eligible; a rotate request would be sent"),
        ("15", "not_found", "not_found"),
    ]
    ambiguous = report[2]
    candidates = [d["id"] for d in sim.inventory if d["deviceName"] == ambiguous["Input value"]]
    assert len(candidates) > 1 and all(c in ambiguous["Reason"] for c in candidates)
    assert report[13]["Input value"].startswith("'=")  # neutralised in the report
    assert "listed the inventory" in result.output
    assert sim.metrics()["rotate_calls"] == 0


def test_serials_and_entra_ids(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    serials = [d["serialNumber"] for d in sim.inventory]
    shared = next(s for s in serials if serials.count(s) > 1)
    unique = next(d for d in sim.inventory if eligible(d) and serials.count(d["serialNumber"]) == 1)
    path = tmp_path / "serials.csv"
    path.write_text(
        f"Serial number\n{unique['serialNumber'].lower()}\n{shared}\n1.23457E+11\n",
        encoding="utf-8",
    )
    _, report = _plan(sim, run_cli, tmp_path, path)
    assert [r["Status"] for r in report] == ["would_rotate", "ambiguous", "invalid_input"]
    assert report[0]["Intune device ID"] == unique["id"]

    entra = tmp_path / "entra.csv"
    entra.write_text(
        f"objectId,deviceId\nx,{{{unique['azureADDeviceId'].upper()}}}\n", encoding="utf-8"
    )
    _, report = _plan(sim, run_cli, tmp_path, entra)
    assert report[0]["Status"] == "would_rotate" and report[0]["Intune device ID"] == unique["id"]


def test_strategy_lookup_for_few_ids_listing_for_many(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(devices=3000, page_size=1000)
    ids = [d["id"] for d in sim.inventory if eligible(d)]
    few = tmp_path / "few.csv"
    few.write_text("id\n" + "\n".join(ids[:30]) + "\n", encoding="utf-8")
    result, _ = _plan(sim, run_cli, tmp_path, few)
    assert "looked up devices by id: 30 reads in 2 $batch requests" in result.output
    many = tmp_path / "many.csv"
    many.write_text("id\n" + "\n".join(ids[:2100]) + "\n", encoding="utf-8")
    result, report = _plan(sim, run_cli, tmp_path, many)
    assert "listed the inventory (3000 managed devices) in 3 requests" in result.output
    assert sum(r["Status"] == "would_rotate" for r in report) == 2100
