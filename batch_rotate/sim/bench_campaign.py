"""`python -m batch_rotate.sim.bench_campaign`: campaigns across many simulated tenants (issue 21).

One `batch-rotate rotate --tenants FILE --yes` child (GNU time: its CPU and peak RSS) against one
in-process simulated cloud serving every tenant; each tenant has its own inventory and its own
Intune write budget (200 writes per 20 s window, time-scaled). Scenarios:

- `tenants10`: 10 tenants x 2,000 devices, all at once: per-tenant budget use, aggregate.
- `tenants50`: 50 tenants x 2,000 devices, all at once: the same, and the campaign's wall time
  with the roll-up's share (the roll-up is written after the last lane ends).
- `faults`: 10 tenants x 500 devices under the fault mix, one unconsented (fails pre-flight) and
  one set down a few seconds into sending (its breaker stops it), then back, and the printed
  resume run after the uncertain grace until nothing is uncertain: lost, twice,
  cross-tenant requests.

The client is one process (one event loop) for every tenant and so is the simulator: each
scenario prints both CPU shares, for the whole run, for each part (before the first write,
sending, after the last) and at the busiest 5 s, because a time scale where either saturates a
core measures the machine, not the product.

`lost` counts rows without a final status in their tenant's report (`not_sent` is final: the
run stopped before sending them) plus every device whose acceptance by the simulator and
`queued` row disagree. A row `uncertain` (its answer was lost, Intune showed nothing, and it is
not re-sent within --uncertain-grace) is counted there and also alone (`unsettled`), with the
ground truth beside it (`rotated_not_queued`). Prints figures beside the goals and writes
reports/bench_campaign.json; never asserts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_rotate.campaign_model import CAMPAIGN_FILE
from batch_rotate.models import FINAL_STATUSES, Status
from batch_rotate.sim.bench import LATENCY_S, _fleet, _steady, _write_ids
from batch_rotate.sim.bench_machine import cpu_model
from batch_rotate.sim.cloud import CloudTenant, SimCloud
from batch_rotate.sim.config import FaultConfig, SimConfig
from batch_rotate.sim.demo import STATE_ENV
from batch_rotate.sim.handle import TenantHandle
from batch_rotate.sim.inventory import eligible

WINDOW_S = 20.0
WRITE_LIMIT = 200  # Intune's rotate budget per app per tenant per window
# Statuses a row may end a run with: every final status, and not_sent (the run stopped before
# sending it: an outage or Ctrl-C; resumable, not lost).
SETTLED = frozenset({*FINAL_STATUSES, Status.NOT_SENT})


# The fault scenario: Intune shows an accepted rotation this long after its 204 (unscaled; the
# simulator divides it by the time scale), and the client waits out a grace longer than that
# (real seconds) before it decides a lost answer's device was not rotated.
READ_LAG_S = 20.0
GRACE_S = 8.0
RESUMES = 4


@dataclass(frozen=True)
class Scenario:
    """One campaign to time."""

    name: str
    tenants: int
    devices: int  # per tenant
    scale: float
    at_once: int
    faults: bool = False  # the fault mix, one tenant unconsented, one set down while sending
    goal_use: float = 0.95  # per-tenant budget use (min over the tenants that sent)
    goal_aggregate: float = 0.9  # aggregate steady writes / (N x the per-tenant limit)


def tenant_id(n: int) -> str:
    """A fixed, valid tenant id per index, so runs are comparable."""
    return f"{n + 1:08x}-0000-4000-8000-{n + 1:012x}"


def _specs(scenario: Scenario) -> list[CloudTenant]:
    faults = FaultConfig.mix(rate=0.02, timeout_s=3.0) if scenario.faults else FaultConfig()
    specs = []
    for n in range(scenario.tenants):
        config = SimConfig(
            tenant_id=tenant_id(n),
            seed=1000 + n,  # one seed per tenant: device ids are unique across the cloud
            devices=_fleet(scenario.devices),
            time_scale=scenario.scale,
            latency_s=LATENCY_S,
            faults=faults,
            # Intune's read side lags its writes (unscaled seconds): a lost answer's rotation
            # shows late, so the client must wait its grace before deciding to send again
            action_visible_after_s=READ_LAG_S if scenario.faults else 0.0,
        )
        # the fault scenario's second tenant has not consented to the app
        consent = "AADSTS7000229" if scenario.faults and n == 1 else None
        specs.append(
            CloudTenant(
                config,
                name=f"Customer {n:03d}",
                domain=f"customer{n:03d}.example",
                consent=consent,  # type: ignore[arg-type]
            )
        )
    return specs


def _eligible(handle: TenantHandle, devices: int) -> list[str]:
    ids = [str(d["id"]) for d in handle.inventory if eligible(d)][:devices]
    if len(ids) < devices:
        raise SystemExit(f"the simulated fleet holds {len(ids)} eligible devices, not {devices}")
    return ids


def _tenants_file(folder: Path, lists: Sequence[list[str]]) -> Path:
    rows = [("tenant", "name", "input")]
    for n, ids in enumerate(lists):
        name = f"customer{n:03d}.csv"
        _write_ids(folder / name, ids)
        rows.append((tenant_id(n), f"Customer {n:03d}", name))
    path = folder / "tenants.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


class Outage:
    """Sets one tenant down once it has been sending for `after_s` (and leaves it down)."""

    def __init__(self, cloud: SimCloud, tenant: str, after_s: float) -> None:
        self._cloud, self._tenant, self._after_s = cloud, tenant, after_s
        self._stop = threading.Event()
        self.down_at_accepted = -1  # rotations the tenant had accepted when it went down
        self._thread = threading.Thread(target=self._watch, name="bench-outage", daemon=True)

    def _watch(self) -> None:
        handle = self._cloud.tenant(self._tenant)
        while not self._stop.wait(0.1):
            if handle.metrics()["rotate_accepted"]:
                break
        if self._stop.wait(self._after_s):
            return
        self._cloud.set_down(self._tenant, True)
        self.down_at_accepted = int(handle.metrics()["rotate_accepted"])

    def __enter__(self) -> Outage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _own_cpu_s() -> float:
    """This process's CPU seconds: the simulator's loop (the bench's threads only wait)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_cpu_s(time_pid: int) -> float | None:
    """CPU seconds so far of the CLI that GNU time (`time_pid`) started; None if unreadable
    (not Linux, or not started yet)."""
    try:
        children = Path(f"/proc/{time_pid}/task/{time_pid}/children").read_text().split()
        fields = Path(f"/proc/{children[0]}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class Phases:
    """Samples, while the campaign runs, the rotate calls the cloud received (every tenant) and
    both CPU counters: when the first and the last write came (so the wall splits into before
    sending, sending and after) and each side's CPU share in each part and at its busiest."""

    def __init__(self, cloud: SimCloud, time_pid: int, every_s: float = 0.25) -> None:
        self._handles = [cloud.tenant(spec.config.tenant_id) for spec in cloud.specs]
        self._time_pid = time_pid
        self._every_s = every_s
        self._stop = threading.Event()
        self.samples: list[tuple[float, float | None, float]] = []  # (time, client, sim)
        self.first: float | None = None
        self.last: float | None = None
        self._seen = 0
        self._thread = threading.Thread(target=self._watch, name="bench-phases", daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self._every_s):
            calls = sum(h.count("rotate_calls") for h in self._handles)
            now = time.perf_counter()
            self.samples.append((now, _child_cpu_s(self._time_pid), _own_cpu_s()))
            if calls and self.first is None:
                self.first = now
            if calls > self._seen:
                self._seen, self.last = calls, now

    def shares(self, start: float, end: float) -> tuple[float, float]:
        """(client, sim) CPU share of one core between two moments (nan: too few samples)."""
        inside = [s for s in self.samples if start <= s[0] <= end and s[1] is not None]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] <= 0:
            return float("nan"), float("nan")
        (t0, c0, s0), (t1, c1, s1) = inside[0], inside[-1]
        assert c0 is not None and c1 is not None
        return (c1 - c0) / (t1 - t0), (s1 - s0) / (t1 - t0)

    def peaks(self, span_s: float = 5.0) -> tuple[float, float]:
        """The highest (client, sim) share over any `span_s` of the run."""
        best = [float("nan"), float("nan")]
        for start, *_ in self.samples:
            if start + span_s > self.samples[-1][0]:
                break
            client, sim = self.shares(start, start + span_s)
            best = [max(b, v) if b == b else v for b, v in zip(best, (client, sim), strict=True)]
        return best[0], best[1]

    def __enter__(self) -> Phases:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _run_campaign(
    cloud: SimCloud,
    workdir: Path,
    tenants: Path,
    *extra: str,
    profile: Path | None = None,
    resume: Path | None = None,
) -> dict[str, Any]:
    """`batch-rotate rotate --tenants FILE --yes` as a child under GNU time (`profile`: under
    cProfile too, its statistics written there)."""
    env = {**os.environ, **cloud.env(), STATE_ENV: str(workdir / "state")}
    env.pop("SSL_CERT_FILE", None)
    stats_file = workdir / "time.txt"
    command = [
        "/usr/bin/time",
        "-o",
        str(stats_file),
        "-f",
        "%M %U %S",
        sys.executable,
        *(["-m", "cProfile", "-o", str(profile)] if profile else []),
        "-m",
        "batch_rotate",
        "rotate",
        *(["--resume", str(resume)] if resume else ["--tenants", str(tenants)]),
        "--yes",
        "--max-devices",
        "10000000",
        "--authority-host",
        cloud.authority_host,
        "--graph-url",
        cloud.graph_url,
        "--ca-bundle",
        str(cloud.ca_path),
        *extra,
    ]
    if not Path(command[0]).exists():
        raise SystemExit("this bench needs GNU time (/usr/bin/time) for the client's CPU and RSS")
    sim_before = _own_cpu_s()
    start = time.perf_counter()
    with (
        subprocess.Popen(  # noqa: S603 - our own CLI, arguments built above
            command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc,
        Phases(cloud, proc.pid) as phases,
    ):
        stdout, stderr = proc.communicate()
    end = time.perf_counter()
    wall = end - start
    sim_cpu = _own_cpu_s() - sim_before
    first = phases.first if phases.first is not None else end
    last = phases.last if phases.last is not None else end
    peak, user, system = stats_file.read_text().split()[-3:]
    if proc.returncode not in (0, 1, 3):
        raise SystemExit(f"batch-rotate failed ({proc.returncode}):\n{stdout}\n{stderr}")
    (folder,) = [resume] if resume else (workdir / "reports").glob("campaign-*")
    figures = {
        "wall_s": wall,
        "before_sending_s": first - start,  # start-up, sign-in, pre-flight, resolution, gate
        "sending_s": last - first,
        "after_sending_s": end - last,  # the last answers, reports, roll-up, exit
        "client_cpu_share": (float(user) + float(system)) / wall,  # of one core, whole run
        "sim_cpu_share": sim_cpu / wall,
    }
    for part, (since, until) in {
        "before": (start, first),
        "sending": (first, last),
        "after": (last, end),
    }.items():
        client, sim = phases.shares(since, until)
        figures[f"client_cpu_share_{part}"] = client
        figures[f"sim_cpu_share_{part}"] = sim
    figures["client_cpu_peak_5s"], figures["sim_cpu_peak_5s"] = phases.peaks()
    return {
        **figures,
        "peak_rss_mb": int(peak) / 1024,  # GNU time prints KiB
        "exit": proc.returncode,
        "folder": folder,
        "stderr": stderr,
    }


def _report(run_dir: Path) -> dict[str, str]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Input value"]: row["Status"] for row in csv.DictReader(handle)}


def rollup_seconds(folder: Path) -> float:
    """The roll-up's time: `campaign.json` is saved as the last lane ends, then the roll-up's
    files are written; the newest of them less the record's time (file times, no product hook)."""
    record = (folder / CAMPAIGN_FILE).stat().st_mtime
    written = [p.stat().st_mtime for p in folder.glob("rollup*") if p.is_file()]
    return max(written) - record if written else float("nan")


def aggregate_windows(per_tenant: Sequence[Sequence[int]]) -> list[int]:
    """Accepted writes per window summed over tenants (their windows share one clock start)."""
    width = max((len(w) for w in per_tenant), default=0)
    return [sum(w[i] for w in per_tenant if i < len(w)) for i in range(width)]


def _tally(
    cloud: SimCloud, folder: Path, lists: Sequence[list[str]]
) -> tuple[list[float], dict[str, int], list[list[int]]]:
    """Per tenant that sent: budget use; over all: lost, duplicates, not_sent, queued."""
    record = {t["tenant"]: t for t in json.loads((folder / CAMPAIGN_FILE).read_text())["tenants"]}
    uses: list[float] = []
    windows: list[list[int]] = []
    statuses: dict[str, int] = {}
    counts = dict.fromkeys(
        ("lost", "unsettled", "rotated_not_queued", "queued_not_rotated", "duplicates"), 0
    )
    counts.update(dict.fromkeys(("queued", "not_sent", "failed", "skipped"), 0))
    for n, ids in enumerate(lists):
        metrics = cloud.tenant(tenant_id(n)).metrics()
        accepted = set(metrics["accepted_by_device"])
        counts["duplicates"] += int(metrics["duplicate_rotations"])
        entry = record[tenant_id(n)]
        if entry["preflight"] != "ok" or not entry["run_dir"]:
            # nothing may have been sent to a tenant that failed pre-flight
            counts["skipped"] += len(ids)
            counts["rotated_not_queued"] += len(accepted)
            counts["lost"] += len(accepted)
            continue
        report = _report(folder / entry["run_dir"])
        for status in report.values():
            statuses[status] = statuses.get(status, 0) + 1
        queued = {i for i, s in report.items() if s == Status.QUEUED}
        counts["queued"] += len(queued)
        counts["not_sent"] += sum(1 for s in report.values() if s == Status.NOT_SENT)
        counts["failed"] += sum(1 for s in report.values() if s == Status.FAILED)
        unsettled = sum(1 for i in ids if report.get(i) not in SETTLED)  # uncertain, or none
        counts["unsettled"] += unsettled
        counts["rotated_not_queued"] += len(accepted - queued)
        counts["queued_not_rotated"] += len(queued - accepted)
        counts["lost"] += unsettled + len(accepted ^ queued)
        windows.append(list(metrics["accepted_windows"]))
        if metrics["rotate_accepted"]:
            uses.append(_steady(metrics["accepted_windows"]) / WRITE_LIMIT)
    counts.update({f"status_{k}": v for k, v in sorted(statuses.items())})
    return uses, counts, windows


def run_scenario(scenario: Scenario, tmp: Path, profile: Path | None = None) -> dict[str, Any]:
    specs = _specs(scenario)
    print(
        f"running {scenario.name}: {scenario.tenants} tenants x {scenario.devices:,} devices, "
        f"x{scenario.scale:g} ...",
        flush=True,
    )
    with SimCloud(specs, workdir=tmp / "cloud") as cloud:
        lists = [_eligible(cloud.tenant(tenant_id(n)), scenario.devices) for n in range(len(specs))]
        tenants = _tenants_file(tmp, lists)
        window = f"{WINDOW_S / scenario.scale:g}s"
        extra = [
            "--tenants-at-once",
            str(scenario.at_once),
            "--write-budget",
            f"{WRITE_LIMIT}/{window}",
            "--read-budget",
            f"2000/{window}",
        ]
        down = tenant_id(2)
        outage_after_s = 2.0
        if scenario.faults:  # as bench.py's fault scenario; the breaker stops the down tenant
            extra += ["--timeout", "2", "--retry-delay", "0.05", "--max-attempts", "30"]
            extra += ["--outage-timeout", "10s", "--uncertain-grace", f"{GRACE_S:g}s"]
            with Outage(cloud, down, outage_after_s) as outage:
                result = _run_campaign(cloud, tmp, tenants, *extra, profile=profile)
            _, before_resume, _ = _tally(cloud, result["folder"], lists)
            # the tenant comes back; after the grace, the resume the campaign printed settles
            # what stayed uncertain (and sends what the outage left unsent), each device once
            cloud.set_down(down, False)
            result["resume_wall_s"], result["resume_rounds"] = 0.0, 0
            unsettled = before_resume["unsettled"] + before_resume["not_sent"]
            # the faults go on during a resume too (2% of its answers lost again): resume, as
            # an operator would, until nothing is uncertain, at most RESUMES times
            while unsettled and result["resume_rounds"] < RESUMES:
                time.sleep(GRACE_S)
                resumed = _run_campaign(cloud, tmp, tenants, *extra, resume=result["folder"])
                result["resume_wall_s"] += resumed["wall_s"]
                result["resume_rounds"] += 1
                result["resume_exit"] = resumed["exit"]
                _, now, _ = _tally(cloud, result["folder"], lists)
                unsettled = now["unsettled"] + now["not_sent"]
        else:
            outage = None
            result = _run_campaign(cloud, tmp, tenants, *extra, profile=profile)
        uses, counts, windows = _tally(cloud, result["folder"], lists)
        cross = cloud.cross_tenant_requests()
    sent_tenants = len(windows)
    limit_rate = WRITE_LIMIT / (WINDOW_S / scenario.scale)  # devices/s per tenant at the limit
    aggregate_steady = _steady(aggregate_windows(windows)) / (WRITE_LIMIT * max(sent_tenants, 1))
    rollup_s = rollup_seconds(result["folder"])
    figures: dict[str, Any] = {
        "tenants": scenario.tenants,
        "devices_per_tenant": scenario.devices,
        "tenants_at_once": scenario.at_once,
        "time_scale": scenario.scale,
        "wall_s": result["wall_s"],
        "before_sending_s": result["before_sending_s"],
        "sending_s": result["sending_s"],
        "after_sending_s": result["after_sending_s"],
        "devices_per_s": counts["queued"] / result["wall_s"],
        # end to end (sign-in, resolution, roll-up included) over N x the limit
        "ratio_end_to_end": counts["queued"] / result["wall_s"] / (limit_rate * sent_tenants),
        "aggregate_ratio_steady": aggregate_steady,
        "budget_use_min": min(uses, default=float("nan")),
        "budget_use_median": statistics.median(uses) if uses else float("nan"),
        "budget_use_max": max(uses, default=float("nan")),
        **{k: v for k, v in result.items() if "cpu" in k},
        "peak_rss_mb": result["peak_rss_mb"],
        "rollup_s": rollup_s,
        "rollup_share": rollup_s / result["wall_s"],
        "exit": result["exit"],
        **counts,
        "cross_tenant_requests": cross,
        "stderr": result["stderr"],
    }
    if outage is not None:
        figures["down_tenant_accepted_before_down"] = outage.down_at_accepted
        figures["unsettled_before_resume"] = before_resume["unsettled"]
        figures["not_sent_before_resume"] = before_resume["not_sent"]
        figures["resume_rounds"] = result["resume_rounds"]
        figures["resume_wall_s"] = result["resume_wall_s"]
        figures["resume_exit"] = result.get("resume_exit")
    return figures


def _goals(scenario: Scenario) -> dict[str, str]:
    goals = {
        "client_cpu_share": "< 0.8 (headroom)",
        "sim_cpu_share": "< 0.8 (headroom)",
        "client_cpu_peak_5s": "< 0.9 (no saturated phase)",
        "sim_cpu_peak_5s": "< 0.9 (no saturated phase)",
        "lost": "== 0",
        "rotated_not_queued": "== 0",
        "queued_not_rotated": "== 0",
        "duplicates": "== 0",
        "cross_tenant_requests": "== 0",
    }
    if not scenario.faults:
        goals["budget_use_min"] = f">= {scenario.goal_use:.2f}"
        goals["aggregate_ratio_steady"] = f">= {scenario.goal_aggregate:.1f}"
    if scenario.tenants >= 50:
        goals["rollup_s"] = "< 60"
    return goals


SCENARIOS: dict[str, Callable[[argparse.Namespace], Scenario]] = {
    "tenants10": lambda a: Scenario("tenants10", 10, a.devices, a.scale10, 10),
    "tenants50": lambda a: Scenario("tenants50", 50, a.devices, a.scale50, 50, goal_use=0.90),
    "faults": lambda a: Scenario("faults", 10, 500, a.scale_faults, 10, faults=True),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=2000, help="devices per tenant")
    parser.add_argument("--scale10", type=float, default=2.0, help="time scale, 10 tenants")
    parser.add_argument("--scale50", type=float, default=2.0, help="time scale, 50 tenants")
    parser.add_argument("--scale-faults", type=float, default=5.0, help="time scale, fault mix")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_campaign.json"))
    parser.add_argument(
        "--log", type=Path, help="folder for the client's output (stderr), per scenario"
    )
    parser.add_argument(
        "--profile", type=Path, help="folder for the client's cProfile statistics, per scenario"
    )
    args = parser.parse_args(argv)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, "
        f"Python {platform.python_version()}"
    )
    print(f"campaign bench: {machine}", flush=True)
    results: dict[str, Any] = {"machine": machine}
    for name in args.only or list(SCENARIOS):
        scenario = SCENARIOS[name](args)
        with tempfile.TemporaryDirectory(prefix=f"bench-campaign-{name}-") as tmp:
            profile = args.profile.resolve() / f"{name}.prof" if args.profile else None
            if profile:
                profile.parent.mkdir(parents=True, exist_ok=True)
            figures = run_scenario(scenario, Path(tmp), profile)
        if args.log:
            args.log.mkdir(parents=True, exist_ok=True)
            (args.log / f"{name}.log").write_text(figures.pop("stderr"), encoding="utf-8")
        figures.pop("stderr", None)
        results[name] = figures
        goals = _goals(scenario)
        print(f"\n{name}: {'figure':30} {'value':>12}  goal")
        for key, value in figures.items():
            shown = f"{value:12.3f}" if isinstance(value, float) else f"{value!s:>12}"
            print(f"{name}: {key:30} {shown}  {goals.get(key, '')}", flush=True)
        print()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
