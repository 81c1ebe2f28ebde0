"""`make bench`: scenarios against the simulated tenant; prints a table, writes reports/bench.json.

The product runs as a subprocess (its own CPU time and peak memory are measured) against an
in-process simulated tenant. Time-scaled: a 20 s Intune window lasts 20/scale seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import re
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp

from batch_rotate.sim import FaultConfig, SimConfig, SimTenant
from batch_rotate.sim.bench_machine import cpu_model, reference_s
from batch_rotate.sim.demo import STATE_ENV
from batch_rotate.sim.inventory import eligible

# 20 s windows last 2 s: 100 writes/s for the app. At x40 one core saturated on some machines
# (the budget figure was 0.978 on one and 0.945 on another); x10 leaves both sides headroom,
# and each scenario prints the CPU share the client and the simulator used.
SCALE = 10.0
FAULT_READ_LAG_S = 20.0  # Intune's read lag in the fault scenario (scaled by the sim)
FAULT_GRACE_S = 6.0  # the client's --uncertain-grace there (real seconds, beyond the lag)
LATENCY_S = 0.15  # Graph's time to answer one request (unscaled); the sim divides it by SCALE


def _write_ids(path: Path, ids: list[str]) -> None:
    path.write_text("managedDeviceId\n" + "\n".join(ids) + "\n", encoding="utf-8")


def _run_cli(
    sim: SimTenant,
    workdir: Path,
    input_file: Path | None,
    *extra: str,
    command_name: str = "rotate",
) -> dict[str, Any]:
    """Run `batch-rotate rotate` (or plan) as a child; wall time, CPU time and peak RSS."""
    env = {**os.environ, **sim.env(), STATE_ENV: str(workdir / "state")}  # not the user's index
    env.pop("SSL_CERT_FILE", None)
    command = [
        sys.executable,
        "-m",
        "batch_rotate",
        command_name,
        *([str(input_file)] if input_file is not None else []),  # None: --resume RUN in extra
        "--authority-url",
        sim.authority_url,
        "--graph-url",
        sim.graph_url,
        "--ca-bundle",
        str(sim.ca_path),
        *(["--yes", "--max-devices", "10000000"] if command_name == "rotate" else []),
        *extra,
    ]
    # A child forked from this process inherits its high-water RSS (the simulated fleet lives
    # here), so peak memory is read by GNU time, which forks the CLI from a small process.
    gnu_time = Path("/usr/bin/time").exists()
    stats_file = workdir / "time.txt"
    if gnu_time:
        command = ["/usr/bin/time", "-o", str(stats_file), "-f", "%M %U %S", *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sim_before = resource.getrusage(resource.RUSAGE_SELF)  # the simulator runs in this process
    start = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 - our own CLI, arguments built above
        command, cwd=workdir, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    sim_after = resource.getrusage(resource.RUSAGE_SELF)
    sim_cpu_s = (sim_after.ru_utime - sim_before.ru_utime) + (
        sim_after.ru_stime - sim_before.ru_stime
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = after.ru_maxrss
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if gnu_time and stats_file.exists():
        peak, user, system = stats_file.read_text().split()[-3:]
        peak_kib, cpu_s = int(peak), float(user) + float(system)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"batch-rotate failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    (run_dir,) = [p.parent for p in (workdir / "reports").glob("*/journal.sqlite")]
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        report = list(csv.DictReader(handle))
    return {
        "wall_s": wall,
        "cpu_s": cpu_s,
        "client_cpu_share": cpu_s / wall,  # of one core: near 1.0 means the client saturated
        "sim_cpu_share": sim_cpu_s / wall,
        "peak_rss_mb": peak_kib / 1024,  # KiB on Linux
        "report": report,
        "exit": proc.returncode,
        "run_dir": run_dir,
        "stderr": proc.stderr,
    }


def _unsettled(report: list[dict[str, str]]) -> int:
    return sum(1 for row in report if row["Status"] in ("uncertain", "not_sent"))


def _steady(windows: list[int]) -> float:
    """Mean per window while the run was sending: the windows before the first accepted write
    (sign-in and resolution, on the read budget) are not the write budget's to use; of the rest
    the first and the last two are partial (the run starts and ends inside them)."""
    first = next((i for i, n in enumerate(windows) if n), len(windows))
    sending = windows[first:]
    middle = sending[1:-2] if len(sending) > 5 else sending
    return sum(middle) / max(len(middle), 1)


def _fleet(devices: int) -> int:
    """A fleet with room for `devices` eligible ones: about 3 in 4 simulated devices are."""
    return int(devices * 1.5) + 50


def _eligible_ids(sim: SimTenant, devices: int) -> list[str]:
    ids = [d["id"] for d in sim.inventory if eligible(d)][:devices]
    if len(ids) < devices:
        raise SystemExit(f"the simulated fleet holds {len(ids)} eligible devices, not {devices}")
    return ids


def throttled_run(
    devices: int,
    neighbour: float,
    tmp: Path,
    faults: FaultConfig | None = None,
    window_mode: str = "fixed",
) -> dict[str, Any]:
    config = SimConfig(
        devices=_fleet(devices),
        time_scale=SCALE,
        neighbour_write_share=neighbour,
        faults=faults or FaultConfig(),
        # under faults Intune's read side lags its writes (unscaled s): a lost answer's rotation
        # shows late, so the client must wait its grace (FAULT_GRACE_S) before sending again
        action_visible_after_s=FAULT_READ_LAG_S if faults is not None else 0.0,
        latency_s=LATENCY_S,
        window_mode=window_mode,
    )
    with SimTenant(config, workdir=tmp / "sim") as sim:
        ids = _eligible_ids(sim, devices)
        _write_ids(tmp / "devices.csv", ids)
        budget = f"200/{20 / SCALE:g}s"
        extra = ["--write-budget", budget, "--read-budget", f"2000/{20 / SCALE:g}s"]
        if faults is not None:
            extra += ["--timeout", "2", "--retry-delay", "0.05", "--max-attempts", "30"]
            extra += ["--uncertain-grace", f"{FAULT_GRACE_S:g}s"]
        result = _run_cli(sim, tmp, tmp / "devices.csv", *extra)
        resumes = 0
        # faults lose answers: such rows end `uncertain`; as an operator would, resume after the
        # grace (the faults go on) until every row is settled, at most 4 times
        while faults is not None and resumes < 4 and _unsettled(result["report"]):
            time.sleep(FAULT_GRACE_S)
            again = ["--resume", str(result["run_dir"].relative_to(tmp)), *extra]
            result = {**_run_cli(sim, tmp, None, *again), "wall_s": result["wall_s"]}
            resumes += 1
        metrics = sim.metrics()
    queued = sum(1 for row in result["report"] if row["Status"] == "queued")
    left = min(200.0, 400.0 * (1 - neighbour))
    return {
        "devices": devices,
        "queued": queued,
        "wall_s": result["wall_s"],
        "utilisation": _steady(metrics["accepted_windows"]) / left,
        "inner_429_share": metrics["throttled_429_inner"] / max(metrics["rotate_calls"], 1),
        "requests_per_device": metrics["inner_requests"] / max(queued, 1),
        "lost": len(set(ids) - set(metrics["accepted_by_device"]))
        + sum(1 for r in result["report"] if r["Status"] != "queued"),
        "duplicates": metrics["duplicate_rotations"],
        "faults": sum(metrics["faults_injected"].values()),
        "resumes": resumes,
        # the most writes the tenant admitted in any window of its length (sliding or not)
        "max_admitted_any_window": metrics["max_admitted_writes_any_window"],
        "client_cpu_share": result["client_cpu_share"],
        "sim_cpu_share": result["sim_cpu_share"],
    }


WIDE_HEADER = (  # the Intune admin center's "All devices" export, 13 columns
    "Device ID,Device name,Managed by,Ownership,Compliance,OS,OS version,Last check-in,"
    "Primary user UPN,Serial number,Microsoft Entra Device ID,JoinType,Encrypted"
)


def _write_wide(path: Path, devices: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(WIDE_HEADER.split(","))
        for d in devices:
            writer.writerow(
                [
                    d["id"],
                    d["deviceName"],
                    "Intune",
                    "Corporate",
                    "Compliant",
                    d["operatingSystem"],
                    d["osVersion"],
                    d["lastSyncDateTime"],
                    d.get("userPrincipalName") or "user@contoso.example",
                    d["serialNumber"],
                    d["azureADDeviceId"],
                    d["joinType"],
                    "Yes",
                ]
            )


def _report_part(run_dir: Path) -> dict[str, Any]:
    """The plan's report alone: its journal rendered again (XLSX and CSV, as every run does) in
    a fresh child, which prints its seconds and CPU seconds (bench_report.py). Not its peak RSS:
    forked from this process, the child would report this one's (the plan's peak covers it)."""
    done = subprocess.run(  # noqa: S603 - this interpreter, our module, our arguments
        [sys.executable, "-m", "batch_rotate.sim.bench_report", "--child", "both", str(run_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


_RESOLUTION = re.compile(r"^resolution: \d+ rows in ([\d.]+) s", re.MULTILINE)


def resolve_run(devices: int, tmp: Path, *, wide: bool = False) -> dict[str, Any]:
    """`plan` on a list naming every device of a same-sized inventory (the listing strategy);
    `wide`: the list is a realistic 13-column Intune export rather than one id column. A few
    devices have not synced for a month, so the plan's 30-day warning is part of the figure.
    Its parts: resolution (as the plan prints it) and the report (rendered again alone)."""
    config = SimConfig(devices=devices, throttling=False, unsynced_share=0.05)
    with SimTenant(config, workdir=tmp / "sim") as sim:
        if wide:
            _write_wide(tmp / "devices.csv", sim.inventory)
        else:
            _write_ids(tmp / "devices.csv", [d["id"] for d in sim.inventory])
        result = _run_cli(
            sim, tmp, tmp / "devices.csv", "--read-budget", "1000000/1s", command_name="plan"
        )
        metrics = sim.metrics()
    resolution = _RESOLUTION.search(result["stderr"])
    report = _report_part(result["run_dir"])
    return {
        "wall_s": result["wall_s"],
        "cpu_s": result["cpu_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "requests_per_device": metrics["inner_requests"] / devices,
        "rows": len(result["report"]),
        "resolution_s": float(resolution.group(1)) if resolution else float("nan"),
        "report_s": report["seconds"],
    }


def unthrottled_run(devices: int, tmp: Path) -> dict[str, Any]:
    config = SimConfig(devices=devices, throttling=False)
    with SimTenant(config, workdir=tmp / "sim") as sim:
        ids = [d["id"] for d in sim.inventory]
        _write_ids(tmp / "devices.csv", ids)
        result = _run_cli(
            sim,
            tmp,
            tmp / "devices.csv",
            "--write-budget",
            "1000000/1s",
            "--read-budget",
            "1000000/1s",
            "--max-concurrency",
            "8",
        )
        metrics = sim.metrics()
    return {
        "devices": devices,
        "queued": metrics["rotate_accepted"],
        "wall_s": result["wall_s"],
        "devices_per_s": devices / result["wall_s"],
        "client_cpu_s_per_1k": result["cpu_s"] / devices * 1000,
        "peak_rss_mb": result["peak_rss_mb"],
    }


async def _baseline(sim: SimTenant, ids: list[str]) -> dict[str, Any]:
    """How common scripts do it: one request at a time, SDK-style 3 tries honouring Retry-After."""
    context = ssl.create_default_context(cafile=str(sim.ca_path))
    async with aiohttp.ClientSession() as session:
        form = {
            "grant_type": "client_credentials",
            "client_id": sim.config.client_id,
            "client_secret": sim.config.client_secret,
            "scope": f"{sim.graph_url}/.default",
        }
        async with session.post(
            f"{sim.authority_url}/oauth2/v2.0/token", data=form, ssl=context
        ) as resp:
            token = (await resp.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        lost = 0
        start = time.perf_counter()
        for device_id in ids:
            url = f"{sim.graph_url}/beta/deviceManagement/managedDevices/{device_id}"
            for _ in range(3):
                url_rotate = f"{url}/rotateBitLockerKeys"
                async with session.post(url_rotate, headers=headers, ssl=context) as resp:
                    await resp.read()
                    if resp.status != 429:
                        break
                    await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
            else:
                lost += 1
        return {"wall_s": time.perf_counter() - start, "lost": lost}


def baseline_run(devices: int, tmp: Path) -> dict[str, Any]:
    config = SimConfig(devices=_fleet(devices), time_scale=SCALE, latency_s=LATENCY_S)
    with SimTenant(config, workdir=tmp / "sim") as sim:
        ids = _eligible_ids(sim, devices)
        result = asyncio.run(_baseline(sim, ids))
        metrics = sim.metrics()
    return {
        "devices_per_s": devices / result["wall_s"],
        "utilisation": _steady(metrics["accepted_windows"]) / 200,
        "inner_429_share": metrics["throttled_429_inner"] / max(metrics["rotate_calls"], 1),
        "lost": result["lost"],
    }


def main() -> None:
    """Run the scenarios and print the figures; long because it is the list of scenarios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--devices", type=int, default=10_000, help="devices in the throttled scenarios"
    )
    parser.add_argument(
        "--unthrottled", type=int, default=100_000, help="devices in the unthrottled run"
    )
    parser.add_argument(
        "--resolve", type=int, default=1_000_000, help="rows and devices in the plan run (0: skip)"
    )
    parser.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, "
            f"Python {platform.python_version()}"
        ),
        "time_scale": SCALE,
    }
    steps: list[tuple[str, Callable[[Path], dict[str, Any]]]] = [
        ("budget", lambda tmp: throttled_run(args.devices, 0.0, tmp)),
        (
            "budget_sliding",
            lambda tmp: throttled_run(args.devices, 0.0, tmp, window_mode="sliding"),
        ),
        ("small", lambda tmp: throttled_run(300, 0.0, tmp)),
        ("small_sliding", lambda tmp: throttled_run(300, 0.0, tmp, window_mode="sliding")),
        ("neighbour", lambda tmp: throttled_run(args.devices, 0.5, tmp)),
        ("neighbour75", lambda tmp: throttled_run(args.devices, 0.75, tmp)),
        (
            "faults",
            # correctness under faults (lost, duplicates), not throughput: 2,000 devices do;
            # random 429s at 2% of requests keep the pacer cut, so 10,000 take over 15 minutes
            lambda tmp: throttled_run(
                min(args.devices, 2000), 0.0, tmp, FaultConfig.mix(rate=0.02, timeout_s=3.0)
            ),
        ),
        ("unthrottled", lambda tmp: unthrottled_run(args.unthrottled, tmp)),
        ("baseline", lambda tmp: baseline_run(args.devices, tmp)),
    ]
    if args.resolve:  # last: the children's peak RSS is a running maximum
        steps.append(("resolve", lambda tmp: resolve_run(args.resolve, tmp)))
        steps.append(("resolve_wide", lambda tmp: resolve_run(args.resolve, tmp, wide=True)))
    raw: dict[str, dict[str, Any]] = {}
    for name, step in steps:
        speed = reference_s()  # the machine's speed drifts: read with each figure
        print(f"running {name} ... (reference workload {speed:.2f} s)", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            raw[name] = step(Path(tmp))
        raw[name]["reference_s"] = speed
    budget_rate = 200 / (20 / SCALE)
    results.update(
        {
            "budget_utilisation": raw["budget"]["utilisation"],
            "inner_429_share": raw["budget"]["inner_429_share"],
            "budget_utilisation_sliding": raw["budget_sliding"]["utilisation"],
            "inner_429_share_sliding": raw["budget_sliding"]["inner_429_share"],
            "max_admitted_any_window": raw["budget"]["max_admitted_any_window"],
            "max_admitted_any_window_sliding": raw["budget_sliding"]["max_admitted_any_window"],
            "small_300_inner_429_share": raw["small"]["inner_429_share"],
            "small_300_inner_429_share_sliding": raw["small_sliding"]["inner_429_share"],
            "budget_client_cpu_share": raw["budget"]["client_cpu_share"],
            "budget_sim_cpu_share": raw["budget"]["sim_cpu_share"],
            "budget_devices_per_s": raw["budget"]["devices"] / raw["budget"]["wall_s"],
            "budget_ratio_to_limit": raw["budget"]["devices"]
            / raw["budget"]["wall_s"]
            / budget_rate,
            "neighbour_utilisation": raw["neighbour"]["utilisation"],
            "neighbour75_utilisation": raw["neighbour75"]["utilisation"],
            "neighbour75_inner_429_share": raw["neighbour75"]["inner_429_share"],
            "requests_per_device": raw["budget"]["requests_per_device"],
            "devices_per_s_unthrottled": raw["unthrottled"]["devices_per_s"],
            "client_cpu_s_per_1k": raw["unthrottled"]["client_cpu_s_per_1k"],
            "peak_rss_mb": raw["unthrottled"]["peak_rss_mb"],
            "unthrottled_reference_s": raw["unthrottled"]["reference_s"],
            "fault_lost": raw["faults"]["lost"],
            "fault_duplicates": raw["faults"]["duplicates"],
            "faults_injected": raw["faults"]["faults"],
            "baseline_devices_per_s": raw["baseline"]["devices_per_s"],
            "baseline_utilisation": raw["baseline"]["utilisation"],
            "baseline_inner_429_share": raw["baseline"]["inner_429_share"],
            "baseline_lost": raw["baseline"]["lost"],
        }
    )
    if "resolve" in raw:
        results["resolve_devices"] = args.resolve
        results["resolve_1m_s"] = raw["resolve"]["wall_s"]
        results["resolve_1m_rss_mb"] = raw["resolve"]["peak_rss_mb"]
        results["resolve_requests_per_device"] = raw["resolve"]["requests_per_device"]
        results["resolve_1m_wide_s"] = raw["resolve_wide"]["wall_s"]
        results["resolve_1m_wide_rss_mb"] = raw["resolve_wide"]["peak_rss_mb"]
        for name in ("resolve", "resolve_wide"):  # where the plan's time goes
            key = name.replace("resolve", "resolve_1m")
            results[f"{key}_resolution_s"] = raw[name]["resolution_s"]
            results[f"{key}_report_s"] = raw[name]["report_s"]
            results[f"{key}_reference_s"] = raw[name]["reference_s"]
    results["speedup_vs_baseline"] = results["budget_devices_per_s"] / max(
        results["baseline_devices_per_s"], 1e-9
    )
    goals = {
        "budget_utilisation": ">= 0.97",
        "inner_429_share": "<= 0.01",
        "budget_utilisation_sliding": ">= 0.97",
        "inner_429_share_sliding": "<= 0.01",
        "max_admitted_any_window": "<= 200",
        "max_admitted_any_window_sliding": "<= 200",
        "small_300_inner_429_share": "<= 0.01",
        "small_300_inner_429_share_sliding": "<= 0.01",
        "budget_client_cpu_share": "< 0.8 (headroom)",
        "budget_sim_cpu_share": "< 0.8 (headroom)",
        "neighbour_utilisation": ">= 0.90",
        "devices_per_s_unthrottled": ">= 2000",
        "client_cpu_s_per_1k": "<= 0.15",
        "fault_lost": "== 0",
        "fault_duplicates": "== 0",
        "resolve_1m_s": "<= 90",
        "resolve_1m_rss_mb": "<= 300",
        "resolve_1m_report_s": "<= 30",
        "resolve_1m_wide_s": "<= 90",
        "resolve_1m_wide_rss_mb": "<= 300",
        "resolve_1m_wide_report_s": "<= 30",
        "unthrottled_reference_s": "the machine's speed then (0.3 s quiet; higher is slower)",
        "resolve_1m_reference_s": "the machine's speed then (0.3 s quiet; higher is slower)",
        "resolve_1m_wide_reference_s": "the machine's speed then (0.3 s quiet; higher is slower)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\n{'figure':32} {'value':>12}  goal")
    for key, value in results.items():
        shown = f"{value:12.3f}" if isinstance(value, float) else f"{value!s:>12}"
        print(f"{key:32} {shown}  {goals.get(key, '')}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
