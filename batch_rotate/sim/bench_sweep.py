"""`python -m batch_rotate.sim.bench_sweep [--devices N]`: one `batch-rotate sweep` over a
simulated tenant of 100,000 devices of which about 30 % hold a key older than 90 days: selection,
rotation at the write budget and the evidence. Prints the whole run against the time the write
budget alone needs (goal <= 1.05), devices/s, CPU model, CPU shares and peak memory. Never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batch_rotate.runindex import STATE_ENV
from batch_rotate.sim.bench_machine import cpu_model
from batch_rotate.sim.server import SimConfig, SimTenant
from batch_rotate.sim.targeting import TargetingConfig

# 10x: a 20 s window lasts 2 s. 30,000 writes then need 300 s, long enough that the fixed costs
# (sign-in, listing 100,000 devices and their keys, resolving the run, the reports) show as the
# few per cent they are; the client and the simulator each stay well under a core.
SCALE = 10.0
# Newest key ages are spread evenly over 0..133 days, so (133 - 90) / 134 are older than 90;
KEY_DAYS = 133  # 93.6 % of the Windows devices are eligible: 0.936 * 43 / 134 = 30 % due
_PHASES = ("population:", "sweep ", "read ", "resolution:", "rotation:", "sweep:", "exit ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--time-scale", type=float, default=SCALE)
    args = parser.parse_args()
    scale = float(args.time_scale)
    targeting = TargetingConfig(no_key_share=0.0, newest_key_max_days=KEY_DAYS, groups=False)
    config = SimConfig(devices=args.devices, time_scale=scale, targeting=targeting)
    with tempfile.TemporaryDirectory() as tmp, SimTenant(config, workdir=Path(tmp)) as sim:
        work = Path(tmp)
        window = f"{20 / scale:g}s"
        command = [
            sys.executable,
            "-m",
            "batch_rotate",
            "sweep",
            "--keys-older-than",
            "90d",
            "--yes",
            "--json",
            "--max-devices",
            "10000000",
            "--write-budget",
            f"200/{window}",
            "--read-budget",
            f"2000/{window}",
            "--authority-url",
            sim.authority_url,
            "--graph-url",
            sim.graph_url,
            "--ca-bundle",
            str(sim.ca_path),
        ]
        stats = work / "time.txt"
        gnu_time = Path("/usr/bin/time").exists()
        if gnu_time:  # peak memory of the CLI alone (a fork would inherit the sim's)
            command = ["/usr/bin/time", "-o", str(stats), "-f", "%M %U %S", *command]
        env = {**os.environ, **sim.env(), STATE_ENV: str(work / "state")}
        env.pop("SSL_CERT_FILE", None)
        sim_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        out_file = work / "sweep.json.out"
        with out_file.open("w", encoding="utf-8") as out:  # a file: a pipe could fill and block
            proc = subprocess.Popen(  # noqa: S603 - our own CLI, arguments built above
                command, cwd=work, env=env, stdout=out, stderr=subprocess.PIPE, text=True
            )
            assert proc.stderr is not None
            lines = [(time.perf_counter() - started, line.rstrip()) for line in proc.stderr]
            proc.wait()
        wall = time.perf_counter() - started
        stderr = "\n".join(line for _, line in lines)
        sim_after = resource.getrusage(resource.RUSAGE_SELF)
        if proc.returncode not in (0, 1, 75):
            raise SystemExit(f"sweep failed ({proc.returncode}):\n{stderr[-3000:]}")
        doc = json.loads(out_file.read_text(encoding="utf-8"))
        peak_mb, cpu_s = 0.0, 0.0
        if gnu_time and stats.exists():
            peak, user, system = stats.read_text().split()[-3:]
            peak_mb, cpu_s = int(peak) / 1024, float(user) + float(system)
        sim_cpu = sim_after.ru_utime - sim_before.ru_utime + sim_after.ru_stime
        sim_cpu -= sim_before.ru_stime
        sent = int(doc["counts"]["to_send"])
        budget_s = sent / (200 / (20 / scale))  # the write budget alone, at this time scale
        phases = [line for line in stderr.splitlines() if "rotation:" in line]
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, "
            f"Python {platform.python_version()}; time_scale {scale:g}"
        )
        print(
            f"sweep of {doc['counts']['population']} Windows devices ({args.devices} in the "
            f"tenant): {doc['counts']['due']} due "
            f"({doc['counts']['due'] / max(doc['counts']['population'], 1):.1%}), {sent} sent"
        )
        print(f"  {phases[-1].strip() if phases else 'rotation: (not reported)'}")
        print(f"  whole run {wall:.1f} s; the write budget alone needs {budget_s:.1f} s")
        print(f"sweep_ratio_to_budget {wall / budget_s if budget_s else 0:.3f}  (goal <= 1.05)")
        rotating = _rotation_s(phases[-1]) if phases else 0.0
        fixed = wall - rotating
        print(
            f"  fixed costs (start-up, sign-in, listing devices and keys, resolving, reports) "
            f"{fixed:.1f} s; rotating {rotating:.1f} s"
        )
        if budget_s:  # the fixed costs do not shrink with the time scale; the writes do
            real = (fixed + rotating * scale) / (budget_s * scale)
            print(f"sweep_ratio_at_real_budget {real:.3f}  (the same run at 200/20s, projected)")
        print(f"sweep_devices_per_s {sent / wall:.1f}  (budget {200 / (20 / scale):g}/s)")
        print(
            f"sweep_client_cpu_share {cpu_s / wall:.2f}  sweep_sim_cpu_share {sim_cpu / wall:.2f}"
            "  (of one core)"
        )
        print(f"sweep_peak_rss_mb {peak_mb:.0f}")
        print("phases (seconds from the start, as the sweep said them):")
        for at, line in lines:
            if line.startswith(_PHASES):
                print(f"  {at:7.1f}  {line[:110]}")
        print(f"exit {proc.returncode}; evidence in {doc['sweep_dir']} (removed)")


def _rotation_s(line: str) -> float:
    """The rotation phase's seconds from `rotation: N answered in X s (...)`."""
    try:
        return float(line.split(" in ", 1)[1].split(" s", 1)[0])
    except (IndexError, ValueError):
        return 0.0


if __name__ == "__main__":
    main()
