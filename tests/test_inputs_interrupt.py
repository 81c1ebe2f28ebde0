"""The first Ctrl-C or SIGTERM while a large device list is read stops the command at once.

Reading runs on the event loop before anything is sent or any run folder exists; a first signal
used to be noted and acted on only after the whole file was read (and a run folder made).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_first_signal_while_reading_stops_at_once_without_a_run_folder(
    sim: SimTenant, tmp_path: Path, big_workbook: Path, signum: signal.Signals
) -> None:
    env = {**os.environ, **sim.env()}
    env.pop("SSL_CERT_FILE", None)
    args = ["plan", str(big_workbook), "--verbose", *sim_flags(sim)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_rotate", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        while not any(f"debug: reading {big_workbook}" in line for line in seen):
            line = lines.get(timeout=60)
            assert line, f"the CLI ended before reading: {''.join(seen)}"
            seen.append(line)
        proc.send_signal(signum)
        code = proc.wait(timeout=60)  # a hang guard, not a speed threshold
    finally:
        if proc.poll() is None:
            proc.kill()
    while (line := lines.get(timeout=30)) != "":
        seen.append(line)
    output = "".join(seen)
    assert code == 130, output
    assert "interrupted while reading devices.xlsx: nothing was sent and no run folder" in output
    assert "Traceback" not in output
    assert f"read {ROWS} rows" not in output  # it stopped inside the read, not after it
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())
    metrics = sim.metrics()
    assert (metrics["token_requests"], metrics["graph_requests"]) == (0, 0)
