"""`python -m batch_rotate.sim.bench_select [DEVICES]`: time `batch-rotate select` against a
simulated tenant of 100,000 devices (default) and print `select_100k_s`. Prints, never asserts.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

from typer.testing import CliRunner

from batch_rotate.cli import app
from batch_rotate.sim.server import SimConfig, SimTenant
from batch_rotate.sim.targeting import TargetingConfig

SCENARIOS = {
    "exposed_7d": ["--exposed-since", "7d"],
    "group_finance": ["--group", "Finance"],
    "all_windows": ["--all-windows"],
    "keys_older_90d": ["--keys-older-than", "90d"],
}


def main() -> None:
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        config = SimConfig(devices=devices, targeting=TargetingConfig(audit_reads=400))
        with SimTenant(config, workdir=Path(tmp)) as sim:
            flags = ["--authority-url", sim.authority_url, "--graph-url", sim.graph_url]
            flags += ["--ca-bundle", str(sim.ca_path)]
            figures = {}
            for name, args in SCENARIOS.items():
                out = Path(tmp) / f"{name}.csv"
                started = time.monotonic()
                with contextlib.redirect_stderr(io.StringIO()):
                    result = CliRunner().invoke(
                        app, ["select", *args, "--out", str(out), *flags], env=sim.env()
                    )
                seconds = time.monotonic() - started
                lines = max(0, len(out.read_text(encoding="utf-8-sig").splitlines()) - 1)
                status = "ok" if result.exit_code == 0 else f"exit {result.exit_code}"
                print(f"select {name}: {lines} devices in {seconds:.1f} s ({status})", flush=True)
                figures[name] = seconds
            print(
                f"select_100k_s {max(figures.values()):.1f}  (slowest selector, {devices} devices)"
            )


if __name__ == "__main__":
    main()
