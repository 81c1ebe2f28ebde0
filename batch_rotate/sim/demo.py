"""`make demo`: start the simulated tenant, rotate inputs/sample-devices.csv through the real CLI.

The CLI runs as a subprocess with the same environment variables and flags a real run would use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from batch_rotate.sim import SimConfig, SimTenant


def main(argv: list[str] | None = None) -> int:
    root = Path.cwd()
    input_file = root / "inputs" / "sample-devices.csv"
    with (
        tempfile.TemporaryDirectory(prefix="batch-rotate-sim-") as workdir,
        SimTenant(SimConfig(), workdir=Path(workdir)) as sim,
    ):
        print(f"simulated tenant {sim.config.tenant_id} at {sim.base_url}", flush=True)
        command = [
            sys.executable,
            "-m",
            "batch_rotate",
            "rotate",
            str(input_file.relative_to(root)),
            "--yes",
            "--authority-url",
            sim.authority_url,
            "--graph-url",
            sim.graph_url,
            "--ca-bundle",
            str(sim.ca_path),
            *(argv if argv is not None else sys.argv[1:]),
        ]
        env = {**os.environ, **sim.env()}
        return subprocess.call(command, env=env)  # noqa: S603


if __name__ == "__main__":
    raise SystemExit(main())
