"""A damaged journal is exit 2 for every command on that run, and never breaks `runs`
(issue 19 item 7): an unknown status in one row, or a file that is no database at all."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]


def _damage(run_dir: Path, how: str) -> None:
    path = run_dir / "journal.sqlite"
    if how == "unknown_status":
        with sqlite3.connect(path) as db:
            db.execute("UPDATE devices SET status = 'teleported' WHERE row = 2")
        db.close()
    else:
        for extra in ("journal.sqlite-wal", "journal.sqlite-shm"):
            (run_dir / extra).unlink(missing_ok=True)
        path.write_bytes(b"this is not a journal\n" * 200)


@pytest.mark.parametrize("how", ["unknown_status", "not_a_database"])
def test_a_damaged_journal_is_exit_2_everywhere_and_runs_lists_the_others(
    sim: SimTenant, run_cli: Cli, tmp_path: Path, how: str
) -> None:
    flags = sim_flags(sim)
    for _ in range(2):
        result = run_cli(["plan", str(SAMPLE), *flags], env=sim.env())
        assert result.exit_code == 0, result.output
    damaged, sound = run_dirs(tmp_path)
    _damage(damaged, how)
    for args in (
        ["report", str(damaged)],
        ["verify", str(damaged), *flags],
        ["rotate", "--resume", str(damaged), "--yes", *flags],
    ):
        result = run_cli(args, env=sim.env())
        assert result.exit_code == 2, (args, result.output)
        assert "journal" in result.output and "Traceback" not in result.output
    listed = run_cli(["runs"], env=sim.env())
    assert listed.exit_code == 0, listed.output
    assert sound.name in listed.output
    assert sim.metrics()["rotate_calls"] == 0
