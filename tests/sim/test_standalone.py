"""`python -m batch_rotate.sim` prints what a client needs and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from batch_rotate.sim import SimConfig, SimTenant


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_standalone_prints_settings_and_stops_on_ctrl_c(tmp_path: Path, inherited: str) -> None:
    """Also when started the way a shell starts a background job: with SIGINT ignored."""

    def start_as_shell_would() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN if inherited == "ignored" else signal.SIG_DFL)

    proc = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "faulthandler",  # a hang below dumps every thread's stack on SIGABRT
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
        preexec_fn=start_as_shell_would,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate(timeout=20)
        raise AssertionError(f"no exit 20 s after Ctrl-C; the stacks:\n{err}") from None
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


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_the_server_thread_leaves_ctrl_c_to_the_main_thread(tmp_path: Path) -> None:
    """The kernel may hand a process's SIGINT to any thread that does not block it; one handed
    to the server thread never woke the standalone server's main thread (a hung Ctrl-C)."""
    with SimTenant(SimConfig(devices=5), workdir=tmp_path / "sim") as sim:
        blocked = sim._on_loop(lambda _: signal.pthread_sigmask(signal.SIG_BLOCK, []))
    assert {signal.SIGINT, signal.SIGTERM} <= set(blocked)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # main: unblocked
