"""The first Ctrl-C or SIGTERM while a large device list is read stops the command at once.

Reading runs on the event loop before anything is sent or any run folder exists; a first signal
used to be noted and acted on only after the whole file was read (and a run folder made).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch_rotate.sim import SimTenant

from .conftest import sim_flags
from .xlsx_shapes import INTUNE_HEADER, intune_rows, write_xlsx

ROWS = 40_000  # seconds of reading, so the signal lands while the rows are still being read


@pytest.fixture(scope="module")
def big_workbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "devices.xlsx"
    return write_xlsx(path, INTUNE_HEADER, intune_rows(ROWS))


def _reading(pid: int, path: Path) -> bool:
    """The process holds `path` open: the read has begun (no output line marks it)."""
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == str(path):
                    return True
    return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see the read")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_first_signal_while_reading_stops_at_once_without_a_run_folder(
    sim: SimTenant, tmp_path: Path, big_workbook: Path, signum: signal.Signals
) -> None:
    env = {**os.environ, **sim.env()}
    env.pop("SSL_CERT_FILE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_rotate", "plan", str(big_workbook), *sim_flags(sim)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a speed threshold
        while not _reading(proc.pid, big_workbook.resolve()):
            assert proc.poll() is None, "the CLI ended before it read the workbook"
            assert time.monotonic() < deadline, "the CLI never opened the workbook"
            time.sleep(0.01)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, output
    assert "interrupted while reading devices.xlsx: nothing was sent and no run folder" in output
    assert "Traceback" not in output
    assert f"read {ROWS} rows" not in output  # it stopped inside the read, not after it
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())
    metrics = sim.metrics()
    assert (metrics["token_requests"], metrics["graph_requests"]) == (0, 0)
