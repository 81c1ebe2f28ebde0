"""Runs are found wherever you stand (issue 18 item 6): the recent-run guard, the unfinished-run
note and `runs` see every run of this user, whatever the working folder and --reports-dir, and
only runs of the same tenant hold devices back. Against the simulated tenant, through the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from batch_rotate.cli import app
from batch_rotate.journal import Journal
from batch_rotate.models import DeviceRef, IdKind, Status
from batch_rotate.runindex import register_run
from batch_rotate.runs import unfinished_runs
from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, sim_flags
from .schema_check import problems, schema

OTHER_TENANT = "11111111-1111-4111-8111-111111111111"
# The sample planned again after its 47 devices were queued: those 47 held back as recent_run,
# besides the sample's one ineligible device, one invalid row and one unknown device.
HELD_BACK = {"ineligible": 48, "invalid_input": 1, "not_found": 1}


def _cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Result:
    cwd.mkdir(parents=True, exist_ok=True)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, args, env=env or {}, catch_exceptions=False)
    finally:
        os.chdir(old)


def _plan(sim: SimTenant, cwd: Path, *extra: str) -> dict[str, object]:
    planned = _cli(["plan", str(SAMPLE), "--json", *extra, *sim_flags(sim)], cwd, sim.env())
    assert planned.exit_code == 0, planned.output
    doc: dict[str, object] = json.loads(planned.stdout)
    return doc


def test_a_run_from_another_folder_and_reports_dir_holds_its_devices_back(
    sim: SimTenant, tmp_path: Path
) -> None:
    first = _cli(
        ["rotate", str(SAMPLE), "--yes", "--reports-dir", str(tmp_path / "A"), *sim_flags(sim)],
        tmp_path / "X",
        sim.env(),
    )
    assert first.exit_code == 0, first.output
    (first_dir,) = [p.parent for p in (tmp_path / "A").glob("*/journal.sqlite")]

    doc = _plan(sim, tmp_path / "Y", "--reports-dir", "B")
    assert doc["counts"] == HELD_BACK  # type: ignore[comparison-overlap]
    warnings = doc["warnings"]
    assert isinstance(warnings, list)
    assert any(first_dir.name in w and "--force-recent" in w for w in warnings), warnings
    assert list((tmp_path / "Y" / "B").glob("*/journal.sqlite"))  # the plan went to its own B


def test_a_run_of_another_tenant_holds_nothing_back(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    demo, real = make_sim(), make_sim(tenant_id=OTHER_TENANT)  # the same seeded fleet
    first = _cli(["rotate", str(SAMPLE), "--yes", *sim_flags(demo)], tmp_path, demo.env())
    assert first.exit_code == 0, first.output
    accepted = demo.metrics()["rotate_accepted"]
    assert accepted == 47

    doc = _plan(real, tmp_path)  # same folder, same reports dir, same device ids
    counts = doc["counts"]
    assert isinstance(counts, dict)
    assert counts.get("would_rotate") == accepted
    assert not any("recent_run" in str(w) or "already queued" in str(w) for w in doc["warnings"])  # type: ignore[attr-defined]
    # and the same tenant still is held back, from any folder
    again = _plan(demo, tmp_path / "elsewhere")
    assert again["counts"] == HELD_BACK  # type: ignore[comparison-overlap]


def _journal(
    folder: Path,
    started: str,
    state: str,
    *,
    tenant: str = "T",
    sha: str = "s",
    statuses: tuple[Status, ...] = (),
    register: bool = True,
) -> Path:
    meta = {
        "tenant_id": tenant,
        "input_file": f"/data/{folder.name}.csv",
        "input_sha256": sha,
        "started_at": started,
        "dry_run": "False",
        "state": state,
        "resolution": "looked up devices by id",
    }
    journal = Journal.create(folder, meta)
    refs = [
        DeviceRef(n, f"{n:08d}-0000-4000-8000-{n:012d}", IdKind.INTUNE_ID, f"{n:012d}")
        for n in range(1, len(statuses) + 1)
    ]
    try:
        journal.add_refs(refs)
        with journal._db:
            for ref, status in zip(refs, statuses, strict=True):
                journal._db.execute(
                    "UPDATE devices SET status = ? WHERE row = ?", (status.value, ref.row)
                )
    finally:
        journal.close()
    if register:
        register_run(folder, meta)
    return folder.resolve()


def test_the_unfinished_run_note_finds_the_run_from_another_folder_of_the_same_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    q, p = Status.QUEUED, Status.PENDING
    run = _journal(tmp_path / "A" / "r", "2026-01-01T00:00:00.000Z", "interrupted", statuses=(q, p))
    _journal(tmp_path / "A" / "other-file", "2026-01-01T00:00:00.000Z", "interrupted", sha="x")
    monkeypatch.chdir(tmp_path / "A")
    assert unfinished_runs(Path("reports"), "s", tenant_id="T") == [Path("r")]  # typed as here
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Y").mkdir()
    monkeypatch.chdir(tmp_path / "Y")
    assert unfinished_runs(Path("B"), "s", tenant_id="t") == [run]
    assert unfinished_runs(Path("B"), "s", tenant_id=OTHER_TENANT) == []


def _runs(cwd: Path, *args: str) -> dict[str, object]:
    result = _cli(["runs", "--json", *args], cwd)
    assert result.exit_code == 0, result.output
    doc: dict[str, object] = json.loads(result.stdout)
    assert problems(doc, schema("runs.schema.json")) == []
    return doc


def _ids(doc: dict[str, object]) -> list[str]:
    runs = doc["runs"]
    assert isinstance(runs, list)
    return [r["run_id"] for r in runs]


def test_runs_lists_every_run_newest_first_with_limit_state_and_reports_dir(
    tmp_path: Path,
) -> None:
    a, b, here = tmp_path / "A", tmp_path / "B", tmp_path / "here"
    _journal(a / "r1", "2026-01-01T00:00:00.000Z", "finished")
    _journal(b / "r2", "2026-01-02T00:00:00.000Z", "interrupted")
    _journal(a / "r3", "2026-01-03T00:00:00.000Z", "plan")
    _journal(b / "r4", "2026-01-04T00:00:00.000Z", "finished")
    # a run made before the index existed, in ./reports of the folder `runs` is called from
    _journal(here / "reports" / "20251201T000000Z-old-beef", "", "failed", register=False)
    broken = b / "r5"
    broken.mkdir(parents=True)
    (broken / "journal.sqlite").write_bytes(b"this is not a database at all" * 100)
    register_run(broken, {"started_at": "2026-01-05T00:00:00.000Z"})

    everything = _runs(here)
    assert _ids(everything) == ["r5", "r4", "r3", "r2", "r1", "20251201T000000Z-old-beef"]
    assert everything["scope"] == "user" and everything["more"] is False
    (damaged,) = [r for r in everything["runs"] if r["state"] == "unreadable"]  # type: ignore[attr-defined]
    assert "damaged" in damaged["detail"] and damaged["started_at"] == "2026-01-05T00:00:00.000Z"

    limited = _runs(here, "--limit", "2")
    assert _ids(limited) == ["r5", "r4"] and limited["more"] is True
    assert _ids(_runs(here, "--state", "finished")) == ["r4", "r1"]
    one = _runs(here, "--state", "finished", "--state", "Failed", "--limit", "2")
    assert (
        _ids(one) == ["r4", "r1"]
        and one["more"] is True
        and one["states"]
        == [
            "failed",
            "finished",
        ]
    )
    assert _ids(_runs(here, "--state", "unreadable")) == ["r5"]
    only_b = _runs(here, "--reports-dir", str(b), "--limit", "0")
    assert _ids(only_b) == ["r5", "r4", "r2"] and only_b["scope"] == "reports_dir"

    human = _cli(["runs", "--limit", "1"], here)
    assert human.exit_code == 0 and "r5  unreadable" in human.stdout and "r4" not in human.stdout
    assert "--limit 0 shows all" in human.stderr
    bad = _cli(["runs", "--state", "finshed"], here)
    assert bad.exit_code == 2 and "finished" in bad.output
    none = _cli(["runs", "--state", "rotating"], here)
    assert none.exit_code == 0 and "no runs in the run index or under reports" in none.stderr


@pytest.mark.parametrize("kind", ["garbage", "folder-is-a-file"])
def test_an_unusable_run_index_does_not_stop_a_run(
    kind: str, sim: SimTenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    if kind == "garbage":
        state.mkdir()
        (state / "runs.sqlite").write_bytes(b"garbage " * 1000)
    else:
        state.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("BATCH_ROTATE_STATE_DIR", str(state))
    first = _cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], tmp_path, sim.env())
    assert first.exit_code == 0, first.output
    assert first.output.count("run index") == 1, first.output  # warned once, not per lookup
    assert sim.metrics()["rotate_accepted"] == 47
    # the guard falls back to ./reports: the same devices are still held back
    assert _plan(sim, tmp_path)["counts"] == HELD_BACK
    listed = _runs(tmp_path)
    assert len(_ids(listed)) == 2
