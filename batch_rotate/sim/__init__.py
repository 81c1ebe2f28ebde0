"""The simulated tenant for the demo, tests and benchmarks. Product code never imports it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batch_rotate.sim.config import FaultConfig, SimConfig

if TYPE_CHECKING:
    from batch_rotate.sim.server import SimTenant, serve_forever

__all__ = ["FaultConfig", "SimConfig", "SimTenant", "serve_forever"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m batch_rotate.sim.inventory` runs without the server pre-imported.
    if name in ("SimTenant", "serve_forever"):
        from batch_rotate.sim import server

        return getattr(server, name)
    raise AttributeError(name)
