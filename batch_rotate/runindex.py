"""The per-user index of run folders, so earlier runs are found whatever folder the operator is in.

A small SQLite file in the user's state folder (WAL, one short statement per write: two runs may
start at once). It only locates runs; each run's journal stays the truth. Unusable: warn, glob.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batch_rotate.journal_schema import JOURNAL_NAME, utc_now

STATE_ENV = "BATCH_ROTATE_STATE_DIR"
INDEX_NAME = "runs.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_dir TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    started_at TEXT NOT NULL DEFAULT '',
    tenant_id TEXT NOT NULL DEFAULT '',
    input_sha256 TEXT NOT NULL DEFAULT '',
    registered_at TEXT NOT NULL
);
"""
log = logging.getLogger("batch_rotate.runindex")
_warned: set[str] = set()  # index paths already warned about in this process


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One run folder; `tenant_id`/`input_sha256` are None when only globbing found it."""

    run_dir: Path  # absolute
    started_at: str = ""
    tenant_id: str | None = None
    input_sha256: str | None = None

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def sort_key(self) -> str:
        """When it started (the journal's text form), from the index or, failing that, its name."""
        return self.started_at or _stamp_of(self.run_dir)


def state_dir(environ: Mapping[str, str] | None = None, *, windows: bool | None = None) -> Path:
    """BATCH_ROTATE_STATE_DIR, else %LOCALAPPDATA%\\batch-rotate, else the XDG state home."""
    env = os.environ if environ is None else environ
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV]).expanduser()
    if os.name == "nt" if windows is None else windows:
        local = env.get("LOCALAPPDATA")
        return (Path(local) if local else Path.home() / "AppData" / "Local") / "batch-rotate"
    xdg = env.get("XDG_STATE_HOME", "")
    # the XDG spec: a relative value is invalid and ignored
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "batch-rotate"


def index_path() -> Path | None:
    """Where the index is (or would be); None when not even that can be told (no home)."""
    try:
        return (state_dir() / INDEX_NAME).absolute()
    except (OSError, RuntimeError):  # Path.home() without HOME or a passwd entry
        return None


def register_run(run_dir: Path, meta: Mapping[str, str]) -> None:
    """Record a new (or resumed) run; never raises: a run goes on without its index entry.

    Runs starting at once (a campaign's tenants in several processes) can meet SQLite's
    immediate SQLITE_BUSY (WAL's mode switch, a stale snapshot), which skips the busy handler:
    tried again a few times, briefly, before the entry is given up with its warning."""
    for attempt in range(_ATTEMPTS):
        if _register(run_dir, meta, last=attempt == _ATTEMPTS - 1):
            return
        time.sleep(0.02 * 2**attempt)


_ATTEMPTS = 6  # about 0.6 s of waits in all


def _register(run_dir: Path, meta: Mapping[str, str], *, last: bool) -> bool:
    """One try; False when SQLite was busy and another try may succeed."""
    path = index_path()
    db = _open(path, create=True, quiet_busy=not last)
    if db is _BUSY:
        return False
    if db is None or path is None:
        return True
    folder = run_dir.resolve()
    with closing(db):
        try:
            db.execute(
                "INSERT INTO runs(run_dir, run_id, started_at, tenant_id, input_sha256, "
                "registered_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(run_dir) DO UPDATE SET "
                "started_at = excluded.started_at, tenant_id = excluded.tenant_id, "
                "input_sha256 = excluded.input_sha256",
                (
                    str(folder),
                    folder.name,
                    meta.get("started_at", ""),
                    meta.get("tenant_id", ""),
                    meta.get("input_sha256", ""),
                    utc_now(),
                ),
            )
        except sqlite3.Error as exc:
            if not last and _busy(exc):
                return False
            _warn(path, exc)
    return True


def indexed_runs() -> list[RunEntry]:
    """The runs in the index whose journal still exists; the others are pruned from it."""
    path = index_path()
    db = _open(path, create=False)
    if db is None or path is None:
        return []
    with closing(db):
        try:
            rows = db.execute(
                "SELECT run_dir, started_at, tenant_id, input_sha256 FROM runs"
            ).fetchall()
        except sqlite3.Error as exc:
            _warn(path, exc)
            return []
        found, gone = [], []
        for run_dir, started_at, tenant_id, sha256 in rows:
            folder = Path(run_dir)
            if (folder / JOURNAL_NAME).is_file():
                found.append(RunEntry(folder, started_at, tenant_id, sha256))
            else:
                gone.append((run_dir,))
        if gone:  # best effort: a locked index is pruned by a later command
            with contextlib.suppress(sqlite3.Error):
                db.executemany("DELETE FROM runs WHERE run_dir = ?", gone)
    return found


def known_runs(reports_dir: Path) -> list[RunEntry]:
    """Every run of this user: the index, and the folders under `reports_dir` (runs made before
    the index existed, or by another user), each once (by resolved path), newest first."""
    seen: dict[str, RunEntry] = {}
    for entry in indexed_runs():
        seen.setdefault(_key(entry.run_dir), entry)
    with contextlib.suppress(OSError):
        for journal in reports_dir.glob(f"*/{JOURNAL_NAME}"):
            with contextlib.suppress(OSError, RuntimeError):
                folder = journal.parent.resolve()
                seen.setdefault(_key(folder), RunEntry(folder))
    return sorted(seen.values(), key=lambda e: (e.sort_key, e.run_id), reverse=True)


def same_tenant(recorded: str | None, current: str) -> bool:
    """Runs of another tenant never count; one that recorded no tenant might be this one."""
    if not recorded or not current:
        return True
    return recorded.strip().lower() == current.strip().lower()


def _key(path: Path) -> str:
    return os.path.normcase(str(path))


def _stamp_of(run_dir: Path) -> str:
    """A folder named by `new_run_dir` (20240501T100000Z-...) started then; else its journal's
    last change (a run folder named by hand)."""
    with contextlib.suppress(ValueError):
        moment = datetime.strptime(run_dir.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with contextlib.suppress(OSError):
        moment = datetime.fromtimestamp((run_dir / JOURNAL_NAME).stat().st_mtime, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return ""


def _busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _open(
    path: Path | None, *, create: bool, quiet_busy: bool = False
) -> sqlite3.Connection | None:
    """The index, created owner-only when asked; None (after one warning) when unusable, and
    `_BUSY` (no warning) when `quiet_busy` and SQLite was only busy."""
    if path is None:
        _warn(Path(STATE_ENV), "no home folder to keep it in; set BATCH_ROTATE_STATE_DIR")
        return None
    try:
        if not create and not path.exists():
            return None  # no run registered yet: nothing to read, nothing to warn about
        if not path.parent.is_dir():
            path.parent.mkdir(mode=0o700, parents=True)
            _owner_only(path.parent, 0o700)  # mkdir's mode is filtered by the umask
        old_umask = os.umask(0o077)  # the index, its -wal and -shm: they name tenants and files
        try:
            db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        finally:
            os.umask(old_umask)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
    except (OSError, sqlite3.Error) as exc:
        if quiet_busy and _busy(exc):
            return _BUSY
        _warn(path, exc)
        return None
    with contextlib.suppress(OSError):
        _owner_only(path, 0o600)
    return db


# `_open`'s answer when SQLite was only busy: a closed, never-used connection as a sentinel.
_BUSY = sqlite3.connect(":memory:")
_BUSY.close()


def _owner_only(path: Path, mode: int) -> None:
    if os.name != "nt":  # Windows: the profile folder's ACL already keeps it to the user
        path.chmod(mode)


def _warn(path: Path, exc: BaseException | str) -> None:
    """Once per index and process: the run goes on, finding only the runs in its reports folder."""
    if str(path) in _warned:
        return
    _warned.add(str(path))
    log.warning(
        "the run index %s cannot be used (%s); earlier runs are looked for only in the reports "
        "folder. Fix its permissions, move it away (new runs rebuild it), or set %s to "
        "another folder",
        path,
        exc,
        STATE_ENV,
    )
