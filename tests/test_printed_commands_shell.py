"""Printed commands are shell-safe: hostile folder and file names, the printed line run by a real
shell (`sh -c`), and the README's `runs --json | jq -r '.runs[].next_command' | sh` automation."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.commandline import command, quote
from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, sim_flags

Cli = Callable[..., Result]
HOSTILE_FOLDER = "my runs; $(touch PWNED) `touch PWNED` 'q' \"d\""
HOSTILE_FILE = "x$(touch PWNED);id.csv"


def _sh(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The line as an operator's POSIX shell runs it, with the venv's batch-rotate on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["/bin/sh", "-c", line],
        cwd=cwd,
        env={**os.environ, **env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt" or not shutil.which("sh"), reason="a POSIX shell")
def test_hostile_names_in_printed_commands_never_run_anything(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / HOSTILE_FOLDER
    folder.mkdir()
    devices = folder / HOSTILE_FILE
    devices.write_bytes(SAMPLE.read_bytes())
    reports = ["--reports-dir", str(folder / "reports")]
    planned = run_cli(["plan", str(devices), *reports, *sim_flags(sim)], env=sim.env())
    assert planned.exit_code == 0, planned.output
    line = next(x for x in planned.output.splitlines() if x.startswith("next: "))[6:]
    applied = _sh(line + " --yes", tmp_path, sim.env())
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert sim.metrics()["rotate_accepted"] == 47
    listed = run_cli(["runs", "--json", *reports])
    nexts = [r["next_command"] for r in json.loads(listed.stdout)["runs"] if r["next_command"]]
    assert nexts and all(HOSTILE_FOLDER[:7] in n for n in nexts)
    for line in nexts:  # the README's automation: runs --json | jq -r ... | sh
        ran = _sh(line, tmp_path, sim.env())
        assert ran.returncode in (0, 1, 2, 75), ran.stdout + ran.stderr
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()


def test_quoting_for_posix_and_powershell() -> None:
    hostile = Path("runs/x$(id) `id` 'q'")
    posix = command("verify", hostile, windows=False)
    assert posix == "batch-rotate verify 'runs/x$(id) `id` '\"'\"'q'\"'\"''"
    assert (
        command("verify", hostile, windows=True) == "batch-rotate verify 'runs/x$(id) `id` ''q'''"
    )
    assert command("verify", Path("reports/r-1"), windows=True) == "batch-rotate verify reports/r-1"
    # a file named like an option is never one
    assert shlex.split(command("verify", Path("--yes"), windows=False))[-1] == f".{os.sep}--yes"
    assert quote("a\u2019b", windows=True) == "'a\u2019\u2019b'"  # PowerShell's other quote
