"""The confirmation prompt on a real (pseudo) terminal: shows tenant, count and examples."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, sim_flags


def _run_on_tty(
    args: list[str], env: dict[str, str], cwd: Path, answer: str, raw: list[bytes] | None = None
) -> tuple[int, str]:
    """Exit code and the terminal's text (styles stripped); `raw` gets the bytes as written."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_rotate", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if not answered and b"Send the rotate requests now?" in output:
            os.write(master, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=30)
    os.close(master)
    if raw is not None:
        raw.append(output)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    return proc.returncode, text


@pytest.mark.parametrize(("answer", "code"), [("y", 0), ("n", 2)])
def test_prompt_shows_what_will_happen_and_obeys_the_answer(
    make_sim: Callable[..., SimTenant], tmp_path: Path, answer: str, code: int
) -> None:
    sim = make_sim()
    env = {**os.environ, **sim.env(), "COLUMNS": "200"}
    env.pop("SSL_CERT_FILE", None)
    returncode, output = _run_on_tty(
        ["rotate", str(SAMPLE), *sim_flags(sim)], env, tmp_path, answer
    )
    assert returncode == code, output
    assert sim.config.tenant_id in output
    assert "Devices to rotate: 47" in output
    assert "row 2:" in output  # examples
    accepted = sim.metrics()["rotate_accepted"]
    assert accepted == (47 if answer == "y" else 0)
    if answer == "n":
        assert "nothing was sent" in output
