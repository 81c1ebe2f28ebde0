"""The simulated tenant for the demo, tests and benchmarks. Product code never imports it."""

from batch_rotate.sim.server import FaultConfig, SimConfig, SimTenant

__all__ = ["FaultConfig", "SimConfig", "SimTenant"]
