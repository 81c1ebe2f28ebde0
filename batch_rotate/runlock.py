"""One writer per run: an OS lock on the run folder, held for the whole process.

The OS releases it when the process dies (kill -9 included), so a lock is never stale. The holder
writes who it is beside the lock, so a second writer can be told whom it is waiting for.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import filelock

from batch_rotate.errors import JournalError

LOCK_NAME = "run.lock"
HOLDER_NAME = "run.lock.holder"


class RunLock:
    """Exclusive, non-blocking; use as a context manager or call `release()`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # Never a soft (file-exists) lock: that one would outlive a killed process.
        self._lock = filelock.FileLock(
            run_dir / LOCK_NAME, timeout=0, mode=0o600, fallback_to_soft=False
        )

    def acquire(self) -> Self:
        try:
            self._lock.acquire()
        except filelock.Timeout:
            who = _holder(self.run_dir)
            raise JournalError(
                f"{self.run_dir} is in use by another batch-rotate process ({who});"
                " wait for it to finish or stop it, then run this command again "
                "(`batch-rotate report` can read a run in use)"
            ) from None
        except OSError as exc:
            raise JournalError(
                f"{self.run_dir}: cannot lock the run ({exc.strerror}); use a local folder "
                "that supports file locks for --reports-dir"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        path = self.run_dir / HOLDER_NAME
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(holder, handle)
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            with contextlib.suppress(OSError):
                (self.run_dir / HOLDER_NAME).unlink()
            self._lock.release()

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_held(run_dir: Path) -> bool:
    """Whether a live process holds this run's lock now (a killed one never does)."""
    probe = filelock.FileLock(run_dir / LOCK_NAME, timeout=0, mode=0o600, fallback_to_soft=False)
    try:
        probe.acquire()
    except filelock.Timeout:
        return True
    except OSError:
        return False  # no lock file can be made here: no writer can hold one either
    probe.release()
    return False


def _holder(run_dir: Path) -> str:
    try:
        info = json.loads((run_dir / HOLDER_NAME).read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
