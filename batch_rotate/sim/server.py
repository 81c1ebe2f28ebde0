"""The simulated tenant: `SimTenant`, a simulated cloud of one tenant that is its own handle.

The server (thread, loop, TLS, routes) is cloud.py's; behaviour lives in tenant.py (Graph front
door), identity.py, devices.py, keys.py, batch.py, throttling.py, faults.py and escrow.py.
Never imported by product code.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from batch_rotate.sim.cloud import CloudTenant, Directory, SimCloud, build_cloud_app
from batch_rotate.sim.config import FaultConfig, SimConfig
from batch_rotate.sim.handle import TenantHandle
from batch_rotate.sim.standalone import run_until_interrupted
from batch_rotate.sim.tenant import Tenant

__all__ = ["FaultConfig", "SimConfig", "SimTenant", "build_app", "serve_forever"]


def build_app(tenant: Tenant) -> web.Application:
    """The routes of a cloud of one: every answer is this tenant's."""
    return build_cloud_app(Directory([tenant]))


class SimTenant(TenantHandle, SimCloud):
    """The simulated tenant in a background thread with its own event loop; a context manager."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        config = config or SimConfig()
        SimCloud.__init__(self, [CloudTenant(config)], workdir=workdir, host=host, port=port)
        TenantHandle.__init__(self, self, config)

    def start(self) -> SimTenant:
        SimCloud.start(self)
        return self

    def __enter__(self) -> SimTenant:
        return self.start()


def serve_forever(
    config: SimConfig, *, host: str, port: int, workdir: Path, approve_as: str | None = None
) -> None:
    """Run standalone until Ctrl-C (or SIGTERM), printing what a client needs to use it."""
    sim = SimTenant(config, workdir=workdir, host=host, port=port)

    def banner() -> str:
        ca = sim.ca_path.resolve()
        return (
            f"simulated tenant running ({len(sim.inventory)} devices, time scale {config.time_scale})\n"
            f"  authority URL : {sim.authority_url}\n"
            f"  Graph URL     : {sim.graph_url}\n"
            f"  tenant id     : {config.tenant_id}\n"
            f"  client id     : {config.client_id}\n"
            f"  client secret : {config.client_secret}\n"
            f"  CA file       : {ca}\n\n"
            "In another shell:\n"
            f"  export AZURE_TENANT_ID={config.tenant_id} AZURE_CLIENT_ID={config.client_id} "
            f"AZURE_CLIENT_SECRET={config.client_secret}\n"
            f"  batch-rotate rotate inputs/sample-devices.csv --authority-url {sim.authority_url} "
            f"--graph-url {sim.graph_url} --ca-bundle {ca}\n\n"
            "Ctrl-C stops it."
        )

    run_until_interrupted(sim, banner, approve_as=approve_as)
