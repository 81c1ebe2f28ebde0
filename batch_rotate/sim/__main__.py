"""`python -m batch_rotate.sim`: run the simulated tenant standalone."""

from __future__ import annotations

import argparse
from pathlib import Path

from batch_rotate.sim.server import SimConfig, serve_forever


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m batch_rotate.sim", description=__doc__)
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--workdir", type=Path, default=Path(".sim"))
    parser.add_argument("--inventory", type=Path, default=None)
    args = parser.parse_args()
    config = SimConfig(
        devices=args.devices,
        seed=args.seed,
        time_scale=args.time_scale,
        inventory_file=args.inventory,
    )
    serve_forever(config, host="127.0.0.1", port=args.port, workdir=args.workdir)


if __name__ == "__main__":
    main()
