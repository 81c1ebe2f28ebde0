"""The per-user run index (issue 18 item 6): where it lives, what it records, that two writers
share it, and that an unusable index only warns."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from batch_rotate import runindex
from batch_rotate.journal import Journal
from batch_rotate.runindex import (
    INDEX_NAME,
    indexed_runs,
    known_runs,
    register_run,
    same_tenant,
    state_dir,
)

TENANT = "00000000-0000-4000-8000-000000000001"
POSIX = os.name != "nt"


def _meta(started: str, tenant: str = TENANT, sha: str = "abc") -> dict[str, str]:
    return {"started_at": started, "tenant_id": tenant, "input_sha256": sha}


def _new_run(folder: Path, started: str, *, register: bool = True, **meta: str) -> Path:
    record = {**_meta(started), **meta}
    Journal.create(folder, record).close()
    if register:
        register_run(folder, record)
    return folder.resolve()


def test_the_state_folder_follows_the_platform_conventions(tmp_path: Path) -> None:
    home = str(Path.home())
    assert state_dir({"BATCH_ROTATE_STATE_DIR": "/srv/state"}, windows=True) == Path("/srv/state")
    assert state_dir({"LOCALAPPDATA": r"C:\Users\op\AppData\Local"}, windows=True) == Path(
        r"C:\Users\op\AppData\Local", "batch-rotate"
    )
    assert state_dir({}, windows=True) == Path(home, "AppData", "Local", "batch-rotate")
    assert state_dir({"XDG_STATE_HOME": str(tmp_path)}, windows=False) == tmp_path / "batch-rotate"
    # the XDG spec: a relative XDG_STATE_HOME is invalid and ignored
    assert state_dir({"XDG_STATE_HOME": "rel"}, windows=False) == Path(
        home, ".local", "state", "batch-rotate"
    )


def test_a_registered_run_is_found_and_a_removed_one_is_pruned(
    tmp_path: Path, _own_run_index: Path
) -> None:
    kept = _new_run(tmp_path / "x" / "kept", "2026-01-02T00:00:00.000Z", tenant_id="T1")
    gone = _new_run(tmp_path / "y" / "gone", "2026-01-03T00:00:00.000Z")
    (gone / "journal.sqlite").unlink()
    (entry,) = indexed_runs()
    assert entry.run_dir == kept and entry.run_id == "kept"
    assert (entry.tenant_id, entry.input_sha256, entry.started_at) == (
        "T1",
        "abc",
        "2026-01-02T00:00:00.000Z",
    )
    with sqlite3.connect(_own_run_index / INDEX_NAME) as db:
        assert [r[0] for r in db.execute("SELECT run_dir FROM runs")] == [str(kept)]


@pytest.mark.skipif(not POSIX, reason="POSIX modes")
def test_the_index_is_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "fresh" / "batch-rotate"
    monkeypatch.setenv("BATCH_ROTATE_STATE_DIR", str(state))
    _new_run(tmp_path / "r", "2026-01-01T00:00:00.000Z")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in state.iterdir():  # the database and its -wal/-shm
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_runs_made_before_the_index_are_found_in_the_reports_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "reports"
    old = _new_run(reports / "20250101T000000Z-old-0000", "", register=False)
    both = _new_run(reports / "both", "2026-03-01T00:00:00.000Z")
    elsewhere = _new_run(tmp_path / "elsewhere" / "e", "2026-02-01T00:00:00.000Z")
    monkeypatch.chdir(tmp_path)
    found = known_runs(Path("reports"))  # relative, as the option is usually given
    assert [e.run_dir for e in found] == [both, elsewhere, old]  # newest first, each once
    assert found[2].tenant_id is None  # not indexed: its journal says
    assert found[2].sort_key == "2025-01-01T00:00:00.000Z"  # from the folder's name


def test_two_runs_starting_at_once_are_both_recorded(tmp_path: Path) -> None:
    folders = [tmp_path / f"run{n:02d}" for n in range(24)]
    start = threading.Barrier(len(folders))

    def register(folder: Path) -> None:
        start.wait()
        register_run(folder, _meta("2026-01-01T00:00:00.000Z"))

    for folder in folders:
        Journal.create(folder, {}).close()
    threads = [threading.Thread(target=register, args=(f,)) for f in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e.run_dir for e in indexed_runs()) == sorted(f.resolve() for f in folders)


def _unusable(kind: str, state: Path) -> None:
    if kind == "garbage":
        state.mkdir(parents=True, exist_ok=True)
        (state / INDEX_NAME).write_bytes(b"not a database, just bytes " * 200)
    elif kind == "folder-is-a-file":
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text("a file where the state folder should be", encoding="utf-8")
    else:  # no permission
        state.mkdir(parents=True, exist_ok=True)
        (state / INDEX_NAME).write_bytes(b"")
        (state / INDEX_NAME).chmod(0)
        state.chmod(0o500)


UNUSABLE = [
    "garbage",
    "folder-is-a-file",
    pytest.param(
        "no-permission",
        marks=pytest.mark.skipif(
            not POSIX or os.geteuid() == 0, reason="permissions do not stop root"
        ),
    ),
]


@pytest.mark.parametrize("kind", UNUSABLE)
def test_an_unusable_index_warns_once_and_the_reports_folder_still_counts(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state" / "batch-rotate"
    _unusable(kind, state)
    monkeypatch.setenv("BATCH_ROTATE_STATE_DIR", str(state))
    caplog.set_level(logging.WARNING, logger="batch_rotate.runindex")
    try:
        run = _new_run(tmp_path / "reports" / "r", "2026-01-01T00:00:00.000Z")  # registers
        assert [e.run_dir for e in known_runs(tmp_path / "reports")] == [run]
        assert indexed_runs() == []
    finally:
        if kind == "no-permission":
            state.chmod(0o700)
    (record,) = [r for r in caplog.records if r.name == "batch_rotate.runindex"]
    assert "run index" in record.getMessage() and str(state) in record.getMessage()
    assert "BATCH_ROTATE_STATE_DIR" in record.getMessage()


def test_a_missing_index_is_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert indexed_runs() == []
    assert caplog.records == []
    path = runindex.index_path()
    assert path is not None and not path.exists()  # reading never creates it


def test_tenants_compare_case_insensitively_and_an_unknown_one_counts() -> None:
    assert same_tenant("ABC", "abc")
    assert not same_tenant("abc", "def")
    assert same_tenant("", "abc") and same_tenant(None, "abc") and same_tenant("abc", "")
