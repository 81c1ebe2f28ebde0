"""Running the simulated tenant or cloud standalone until Ctrl-C, with a banner for a human.

`python -m batch_rotate.sim` (and `--tenants N`) call these; tests start the servers directly.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Callable
from pathlib import Path

from batch_rotate.sim.cloud import CloudTenant, SimCloud
from batch_rotate.sim.config import SimConfig


def cloud_specs(config: SimConfig, count: int) -> list[CloudTenant]:
    """`count` tenants like `config`: tenant n (from 1) has its own id, seed + n - 1, the name
    "Tenant n" and the domain tenantn.example; the first keeps `config`'s tenant id."""
    specs = []
    for n in range(1, count + 1):
        tenant_id = config.tenant_id if n == 1 else f"00000000-0000-4000-8000-{0xA11C + n - 1:012x}"
        seed = config.seed + n - 1
        specs.append(
            CloudTenant(
                dataclasses.replace(config, tenant_id=tenant_id, seed=seed),
                name=f"Tenant {n}",
                domain=f"tenant{n}.example",
            )
        )
    return specs


def run_until_interrupted(
    cloud: SimCloud, banner: Callable[[], str], *, approve_as: str | None = None
) -> None:
    """Start `cloud`, print `banner()` and serve until Ctrl-C (or SIGTERM)."""
    # A shell starts a background job with SIGINT ignored, and Python then installs no handler:
    # Ctrl-C (kill -INT) would never stop it. Stopping is this command's whole interface.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cloud.start()
    for handle in cloud.tenants():
        handle.approve_device_codes(approve_as)
        handle.sign_in_browser_as(approve_as)  # the same admin signs in (--auth interactive)
    try:  # Ctrl-C may come while the banner is still being written
        print(banner(), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        cloud.stop()


def serve_cloud_forever(
    config: SimConfig,
    count: int,
    *,
    host: str,
    port: int,
    workdir: Path,
    approve_as: str | None = None,
) -> None:
    """Run `count` tenants standalone until Ctrl-C (or SIGTERM), printing each one's authority."""
    cloud = SimCloud(cloud_specs(config, count), workdir=workdir, host=host, port=port)

    def banner() -> str:
        ca, app = cloud.ca_path.resolve(), cloud.env()
        lines = [
            f"simulated cloud running ({count} tenants, time scale {config.time_scale})",
            f"  Graph URL      : {cloud.graph_url}",
            f"  authority host : {cloud.authority_host}",
            f"  client id      : {app['AZURE_CLIENT_ID']}  (one multi-tenant app)",
            f"  client secret  : {app['AZURE_CLIENT_SECRET']}",
            f"  CA file        : {ca}",
            "  tenants (id, domain, devices):",
        ]
        for spec, handle in zip(cloud.specs, cloud.tenants(), strict=True):
            devices = len(handle.inventory)
            lines.append(f"    {spec.config.tenant_id}  {spec.domain}  {devices}")
        first = cloud.specs[0].config.tenant_id
        lines += [
            "",
            "In another shell (one tenant at a time; GET /_sim/metrics?tenant=<id or domain>):",
            f"  export AZURE_TENANT_ID={first} AZURE_CLIENT_ID={app['AZURE_CLIENT_ID']} "
            f"AZURE_CLIENT_SECRET={app['AZURE_CLIENT_SECRET']}",
            f"  batch-rotate rotate inputs/sample-devices.csv --authority-url "
            f"{cloud.authority_host}/{first} --graph-url {cloud.graph_url} --ca-bundle {ca}",
            "",
            "Ctrl-C stops it.",
        ]
        return "\n".join(lines)

    run_until_interrupted(cloud, banner, approve_as=approve_as)
