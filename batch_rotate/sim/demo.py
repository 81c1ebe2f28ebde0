"""`make demo`: start the simulated tenant, rotate inputs/sample-devices.csv through the real CLI.

The CLI runs as a subprocess with the same environment variables and flags a real run would use,
but keeps its runs apart (reports/demo/, its own run index): they never hold back a rehearsal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from batch_rotate.sim import SimConfig, SimTenant

# The demo's runs and run index: not the operator's, so the recent-run guard and the
# unfinished-run note of a first rehearsal against the simulator never see a demo run.
DEMO_REPORTS = Path("reports", "demo")
DEMO_STATE = DEMO_REPORTS / ".state"
STATE_ENV = "BATCH_ROTATE_STATE_DIR"  # runindex.STATE_ENV; the simulator imports no product code


def main(argv: list[str] | None = None) -> int:
    """`demo [plan FILE] [extra options]`: rotate the sample, or plan another list."""
    args = list(argv if argv is not None else sys.argv[1:])
    root = Path.cwd()
    if args[:1] == ["campaign"]:
        return campaign(root, args[1:])
    verb, input_file = "rotate", root / "inputs" / "sample-devices.csv"
    if args[:1] == ["plan"] and len(args) > 1:
        verb, input_file, args = "plan", (root / args[1]).resolve(), args[2:]
    with (
        tempfile.TemporaryDirectory(prefix="batch-rotate-sim-") as workdir,
        SimTenant(SimConfig(), workdir=Path(workdir)) as sim,
    ):
        print(f"simulated tenant {sim.config.tenant_id} at {sim.base_url}", flush=True)
        command = [
            sys.executable,
            "-m",
            "batch_rotate",
            verb,
            str(input_file.relative_to(root)),
            *(["--yes"] if verb == "rotate" else []),
            "--reports-dir",
            str(DEMO_REPORTS),
            "--authority-url",
            sim.authority_url,
            "--graph-url",
            sim.graph_url,
            "--ca-bundle",
            str(sim.ca_path),
            *args,
        ]
        env = {**os.environ, **sim.env(), STATE_ENV: str(root / DEMO_STATE)}
        code = subprocess.call(command, env=env)  # noqa: S603
    print(AFTER_DEMO, flush=True)
    return code


def campaign(root: Path, args: list[str]) -> int:
    """`make demo-campaign`: three tenants on one simulated cloud (one has not consented to the
    app), one campaign rotating forty devices in each, its roll-up in reports/demo/."""
    from batch_rotate.sim.cloud import CloudTenant, SimCloud

    tenants = [
        ("c0000000-0000-4000-8000-00000000c001", "Contoso", "contoso.example", None),
        ("f0000000-0000-4000-8000-00000000fab1", "Fabrikam", "fabrikam.example", "AADSTS7000229"),
        ("e0000000-0000-4000-8000-0000000000e1", "Woodgrove", "woodgrove.example", None),
    ]
    specs = [
        CloudTenant(
            SimConfig(tenant_id=tid, seed=seed, devices=120),
            name=name,
            domain=domain,
            consent=consent,  # type: ignore[arg-type]
        )
        for seed, (tid, name, domain, consent) in enumerate(tenants, start=31)
    ]
    lists = root / DEMO_REPORTS / "demo-tenants"
    lists.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="batch-rotate-sim-") as workdir,
        SimCloud(specs, workdir=Path(workdir)) as cloud,
    ):
        lines = ["tenant,name,input"]
        for tid, name, domain, _consent in tenants:
            ids = [str(d["id"]) for d in list(cloud.tenant(tid).inventory)[:40]]
            (lists / f"{name.lower()}.csv").write_text("Device ID\n" + "\n".join(ids) + "\n")
            lines.append(f"{domain if name == 'Woodgrove' else tid},{name},{name.lower()}.csv")
        (lists / "tenants.csv").write_text("\n".join(lines) + "\n")
        print(f"simulated cloud of {len(tenants)} tenants at {cloud.base_url}", flush=True)
        command = [
            sys.executable, "-m", "batch_rotate", "rotate",
            "--tenants", str((lists / "tenants.csv").relative_to(root)), "--yes",
            "--reports-dir", str(DEMO_REPORTS),
            "--authority-host", cloud.authority_host,
            "--graph-url", cloud.graph_url,
            "--ca-bundle", str(cloud.ca_path),
            *args,
        ]  # fmt: skip
        env = {**os.environ, **cloud.env(), STATE_ENV: str(root / DEMO_STATE)}
        env.pop("AZURE_TENANT_ID", None)
        code = subprocess.call(command, env=env)  # noqa: S603
    print(AFTER_DEMO, flush=True)
    if code == 1:  # Fabrikam's pre-flight fails on purpose: the demo shows the fix
        print("demo: exit 1 is this demo's expected end (Fabrikam has not consented)", flush=True)
        return 0
    return code


# The `next:` line the CLI printed is for a real tenant; this one stops with the demo.
AFTER_DEMO = (
    "demo: the simulated tenant stopped with the demo, so the `next:` command above is what a "
    "real run would print. To follow it here, start a tenant that stays up with `.venv/bin/python "
    "-m batch_rotate.sim --port 8443` and use the exports and flags it prints."
)


if __name__ == "__main__":
    raise SystemExit(main())
