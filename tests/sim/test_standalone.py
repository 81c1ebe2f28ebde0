"""`python -m batch_rotate.sim` prints what a client needs and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def test_standalone_prints_settings_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch_rotate.sim",
            "--port",
            "0",
            "--devices",
            "20",
            "--workdir",
            str(tmp_path / "sim"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    text = "".join(lines) + out
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "export AZURE_TENANT_ID=" in text and "AZURE_CLIENT_SECRET=" in text
    assert "--authority-url https://127.0.0.1:" in text and "--ca-bundle" in text
    assert (tmp_path / "sim" / "ca.pem").exists()


def test_help_lists_every_behaviour_switch() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "batch_rotate.sim", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in (
        "--window-mode",
        "--listing-omit-share",
        "--or-filter-all-matches",
        "--clock-offset-s",
        "--stale-action-results-share",
        "--offline-share",
        "--checkin-fail-share",
        "--lost-after-processing-omit-ids",
    ):
        assert option in out
