"""`python -m batch_rotate.sim`: run the simulated tenant standalone.

Behaviours that make the tenant harder on a client are off unless an option turns them on
(except `or` filters, answered like Graph: first match only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from batch_rotate.sim.config import LOST_PREFIX, FaultConfig
from batch_rotate.sim.escrow import EscrowConfig
from batch_rotate.sim.server import SimConfig, serve_forever
from batch_rotate.sim.standalone import serve_cloud_forever
from batch_rotate.sim.targeting import TargetingConfig

_LOST = ("timeout", "reset", "5xx", "truncated", "omit_ids")


def _parser() -> argparse.ArgumentParser:
    """Every behaviour switch; long because it is one option per line."""
    parser = argparse.ArgumentParser(prog="python -m batch_rotate.sim", description=__doc__)
    add = parser.add_argument
    add("--port", type=int, default=8443)
    add(
        "--tenants",
        type=int,
        default=1,
        metavar="N",
        help="serve N tenants (one app, one URL, routed by the token's tenant; seeds S, S+1, ...)",
    )
    add("--devices", type=int, default=500)
    add("--seed", type=int, default=1)
    add("--time-scale", type=float, default=1.0)
    add("--workdir", type=Path, default=Path(".sim"))
    add("--inventory", type=Path, default=None)
    add(
        "--targeting",
        action="store_true",
        help="seeded key ages, key-read audit events and groups for `batch-rotate select`",
    )
    add(
        "--approve-device-codes-as",
        metavar="UPN",
        default=None,
        help="approve every device code sign-in, and sign in every browser (interactive), as this "
        "user (else POST /_sim/devicecode/approve)",
    )
    add(
        "--window-mode",
        choices=("fixed", "sliding"),
        default="fixed",
        help="throttling windows aligned on the server's start, or sliding (default: fixed)",
    )
    add(
        "--listing-omit-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of devices broad managedDevices listings silently leave out",
    )
    add(
        "--or-filter-all-matches",
        action="store_true",
        help="answer `or`-chained $filter with every match (default: the first match only)",
    )
    add(
        "--clock-offset-s",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="tenant clock minus real time; negative: the tenant is behind",
    )
    add(
        "--action-visible-after-s",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="an accepted rotation shows in deviceActionResults only this long after its 204",
    )
    add(
        "--stale-action-results-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of devices holding a months-old failed rotate result before any request",
    )
    add(
        "--unsynced-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of devices Intune has not seen for 31 to 120 days (the plan warns of them)",
    )
    add(
        "--cloud-pc-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of eligible Windows devices that are Windows 365 Cloud PCs (never rotatable)",
    )
    add(
        "--home-edition-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of eligible Windows devices running a Home edition (never rotatable)",
    )
    escrow = EscrowConfig()
    add(
        "--offline-share",
        type=float,
        default=escrow.never_share,
        metavar="SHARE",
        help="share of devices that never check in after a rotate",
    )
    add(
        "--checkin-fail-share",
        type=float,
        default=escrow.fail_share,
        metavar="SHARE",
        help="share of devices whose rotation fails at check-in",
    )
    add(
        "--checkin-mean-s",
        type=float,
        default=escrow.checkin_mean_s,
        metavar="SECONDS",
        help="mean (simulated) seconds from a rotate to the device's check-in",
    )
    for kind in _LOST:
        add(
            f"--lost-after-processing-{kind.replace('_', '-')}",
            type=float,
            default=0.0,
            metavar="P",
            help=f"probability a processed batch's answer is lost ({kind})",
        )
    add(
        "--fault-timeout-s",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long timeout faults hold a batch",
    )
    return parser


def main() -> None:
    args = _parser().parse_args()
    faults = FaultConfig(
        timeout_s=args.fault_timeout_s,
        **{LOST_PREFIX + k: getattr(args, f"lost_after_processing_{k}") for k in _LOST},
    )
    escrow = EscrowConfig(
        never_share=args.offline_share,
        fail_share=args.checkin_fail_share,
        checkin_mean_s=args.checkin_mean_s,
    )
    config = SimConfig(
        devices=args.devices,
        seed=args.seed,
        time_scale=args.time_scale,
        inventory_file=args.inventory,
        window_mode=args.window_mode,
        listing_omit_share=args.listing_omit_share,
        or_filter_first_match_only=not args.or_filter_all_matches,
        clock_offset_s=args.clock_offset_s,
        stale_action_results_share=args.stale_action_results_share,
        action_visible_after_s=args.action_visible_after_s,
        unsynced_share=args.unsynced_share,
        cloud_pc_share=args.cloud_pc_share,
        home_edition_share=args.home_edition_share,
        targeting=TargetingConfig() if args.targeting else None,
        faults=faults,
        escrow=escrow,
    )
    if args.tenants > 1:
        serve_cloud_forever(
            config,
            args.tenants,
            host="127.0.0.1",
            port=args.port,
            workdir=args.workdir,
            approve_as=args.approve_device_codes_as,
        )
        return
    serve_forever(
        config,
        host="127.0.0.1",
        port=args.port,
        workdir=args.workdir,
        approve_as=args.approve_device_codes_as,
    )


if __name__ == "__main__":
    main()
