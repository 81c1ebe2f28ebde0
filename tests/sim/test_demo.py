"""`make demo` (the README's first command) rotates the sample against the simulated tenant."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate import runindex
from batch_rotate.sim import SimTenant, demo

from ..conftest import sim_flags

ROOT = Path(__file__).resolve().parents[2]


def test_demo_rotates_the_sample_and_says_where_its_next_command_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inputs").mkdir()
    sample = ROOT / "inputs" / "sample-devices.csv"
    (tmp_path / "inputs" / sample.name).write_bytes(sample.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert demo.main([]) == 0
    output = capfd.readouterr()
    (report,) = (tmp_path / "reports" / "demo").glob("*/report.csv")
    with report.open(encoding="utf-8-sig", newline="") as handle:
        statuses = [row["Status"] for row in csv.DictReader(handle)]
    assert len(statuses) == 50 and statuses.count("queued") == 47
    assert f"next: batch-rotate verify {Path('reports', 'demo')}" in output.out + output.err
    assert output.out.rstrip().endswith(demo.AFTER_DEMO)


def test_after_the_demo_a_first_rehearsal_is_not_held_back_by_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sim: SimTenant,
    run_cli: Callable[..., Result],
    _own_run_index: Path,
) -> None:
    """The demo's runs live in reports/demo/ with their own run index: the operator's first plan
    against a simulated tenant (the same tenant id, the same devices) would otherwise be 47
    recent_run skips and nothing to rotate."""
    (tmp_path / "inputs").mkdir()
    sample = ROOT / "inputs" / "sample-devices.csv"
    (tmp_path / "inputs" / sample.name).write_bytes(sample.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert demo.main([]) == 0
    (demo_run,) = (tmp_path / "reports" / "demo").glob("*/journal.sqlite")
    assert (tmp_path / "reports" / "demo" / ".state" / "runs.sqlite").is_file()
    assert not (_own_run_index / "runs.sqlite").exists()  # the operator's index: untouched
    assert demo.STATE_ENV == runindex.STATE_ENV

    planned = run_cli(
        ["plan", "inputs/sample-devices.csv", "--json", *sim_flags(sim)], env=sim.env()
    )
    assert planned.exit_code == 0, planned.output
    doc = json.loads(planned.stdout)
    assert doc["counts"]["would_rotate"] == 47
    assert not [w for w in doc["warnings"] if "already queued" in w], doc["warnings"]
    listed = json.loads(run_cli(["runs", "--json"]).stdout)
    assert demo_run.parent.name not in [r["run_id"] for r in listed["runs"]]
    in_demo = json.loads(run_cli(["runs", "--json", "--reports-dir", "reports/demo"]).stdout)
    assert [r["run_id"] for r in in_demo["runs"]] == [demo_run.parent.name]
