"""The run lock: one writer per run, released by the OS when the holder dies, files owner-only."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch_rotate.errors import JournalError
from batch_rotate.journal import Journal
from batch_rotate.runlock import RunLock

_HOLD = """
import sys, time
from pathlib import Path
from batch_rotate.runlock import RunLock
lock = RunLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_second_writer_is_refused_and_named(tmp_path: Path) -> None:
    with (
        RunLock(tmp_path),
        pytest.raises(JournalError, match=rf"pid {os.getpid()} on .* since "),
    ):
        RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()  # free again once released


def test_kill_9_never_leaves_a_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(JournalError, match=f"pid {holder.pid}"):
        RunLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    holder.stdout.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            RunLock(tmp_path).acquire().release()
            break
        except JournalError:
            assert time.monotonic() < deadline, "the lock outlived its killed holder"
            time.sleep(0.05)


def test_journal_writers_lock_readers_do_not(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    journal = Journal.create(run_dir, {"tenant_id": "t"})
    with pytest.raises(JournalError, match="in use"):
        Journal.open(run_dir)
    reader = Journal.open(run_dir, write=False)
    assert reader.meta()["tenant_id"] == "t"
    reader.close()
    journal.close()
    Journal.open(run_dir).close()


def test_run_folder_and_journal_are_owner_only(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    journal = Journal.create(run_dir, {"tenant_id": "t"})
    journal.set_meta(state="x")  # WAL and SHM exist while open
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in run_dir.iterdir()
        if p.name.startswith("journal")
    }
    journal.close()
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert {"journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"} <= set(modes)
    assert all(mode == 0o600 for mode in modes.values()), modes
