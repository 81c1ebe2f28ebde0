"""`batch-rotate sweep`: the thin Typer layer over `batch_rotate/sweep.py` (a scheduled pass of a
key-age policy). Unattended by design: it never waits on a prompt without a terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from batch_rotate.cli.exiting import exits
from batch_rotate.cli.groups import (
    CONNECTION,
    OUTPUT,
    PACING,
    SAFETY,
    SELECTION,
    SIGN_IN,
    Given,
    takes,
)
from batch_rotate.cli.options import duration_option
from batch_rotate.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from batch_rotate.run import ConfirmRequest
    from batch_rotate.sweep import SweepResult

SWEEP = "Sweep"
SWEEP_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "  batch-rotate sweep --keys-older-than 90d --all-windows --policy-name quarterly --yes\n"
    "  batch-rotate sweep --keys-older-than 180d --group Finance --max-share 0.3 --yes --json\n"
    "  batch-rotate sweep --keys-older-than 90d --auth workload-identity --yes   # a pipeline\n"
    "  batch-rotate runs --sweeps"
)


def _share(value: float) -> float:
    if not 0 < value <= 1:
        raise typer.BadParameter("give a share of the targeted devices: above 0, at most 1")
    return value


@takes(SIGN_IN, CONNECTION, PACING, SAFETY, SELECTION, OUTPUT)
def sweep_command(
    policy_name: Annotated[
        str | None,
        typer.Option(
            "--policy-name",
            metavar="NAME",
            rich_help_panel=SWEEP,
            help="Name of the policy's history folder, reports/sweeps/NAME (default: the policy "
            "id, from the selectors, the limit and the tenant).",
        ),
    ] = None,
    max_share: Annotated[
        float,
        typer.Option(
            "--max-share",
            metavar="SHARE",
            callback=_share,
            rich_help_panel=SWEEP,
            help="Refuse to rotate more than this share of the targeted devices (0-1).",
        ),
    ] = 1.0,
    resend_after: Annotated[
        float,
        duration_option(
            "--resend-after",
            "Send a device an earlier sweep rotated again only when that rotation is older "
            "(still pending, failed on the device, no new key); transient failures go at once.",
            SWEEP,
        ),
    ] = "7d",  # type: ignore[assignment]
    assume_yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            rich_help_panel=SWEEP,
            help="Do not ask to confirm (required without a terminal).",
        ),
    ] = False,
    verify_wait: Annotated[
        float | None,
        duration_option("--verify-wait", "After rotating, verify for this long (e.g. 4h).", SWEEP),
    ] = None,
    verify_every: Annotated[
        float, duration_option("--verify-every", "Time between verification checks.", SWEEP)
    ] = "5m",  # type: ignore[assignment]
    *,
    given: Given,
) -> None:
    """Verify earlier sweeps, rotate every key older than the policy's limit, write the evidence.

    Idempotent: devices an earlier sweep of the same policy rotated are verified, not sent again
    (see --resend-after). Exit 0 compliant, 75 pending verification, 1 look at the report.
    """
    import asyncio

    from batch_rotate.cli.output import closed_stdout_ok, console_logging, print_json
    from batch_rotate.cli.progress import ProgressView
    from batch_rotate.cli.running import context_of, criteria_of, mode_of, notify
    from batch_rotate.sweep import Policy, SweepOptions, run_sweep

    mode = mode_of("sweep", given)
    with exits("sweep", mode):
        if given["keys_older_than"] is None:
            raise InputError("a sweep enforces a key age: give --keys-older-than, e.g. 90d")
        criteria = criteria_of(given, True)
        context = context_of(given, verify=(verify_wait, verify_every))
        policy = Policy(criteria, context.credentials.tenant_id, policy_name or "")
        options = SweepOptions(max_share=max_share, resend_after_s=resend_after)

    async def job() -> SweepResult:
        with ProgressView(enabled=not mode.quiet) as progress:
            return await run_sweep(
                policy,
                settings=context.settings,
                credentials=context.credentials,
                options=options,
                context_meta=context.meta(),
                argv=sys.argv,
                confirm=_confirm(assume_yes),
                on_progress=progress,
                notify=notify,
            )

    with console_logging(mode):
        with exits("sweep", mode):
            result = asyncio.run(job())
        with closed_stdout_ok():
            _print_summary(result, quiet=mode.quiet, to_stderr=mode.json)
        if mode.json:
            print_json(result.document)
    raise typer.Exit(result.exit_code)


def _confirm(assume_yes: bool) -> Callable[[ConfirmRequest], bool]:
    """Ask on a terminal; without one, a sweep that would send must have been given --yes."""
    from batch_rotate.cli.console import confirm_prompt

    ask = confirm_prompt(assume_yes)

    def confirm(request: ConfirmRequest) -> bool:
        if not assume_yes and not sys.stdin.isatty():
            raise InputError(
                f"the sweep would rotate {request.count} devices in tenant {request.tenant_id}, "
                "but there is no terminal to confirm on; nothing was sent: a scheduled sweep "
                "runs with --yes (guarded by --max-devices and --max-share)"
            )
        return ask(request)

    return confirm


def _print_summary(result: SweepResult, *, quiet: bool, to_stderr: bool) -> None:
    from batch_rotate.cli.console import err, out
    from batch_rotate.exitcodes import SWEEP_MEANINGS

    doc = result.document
    posture = doc["posture"]
    lines = [f"sweep: {doc['sweep_dir']}"]
    if not quiet:
        before, after = posture["before"], posture["after"]
        lines += [
            f"policy: {doc['policy']['name'] or doc['policy']['id']} "
            f"({doc['policy']['description']})",
            f"targeted: {posture['population']} devices; compliant before "
            f"{before['compliant']} ({before['share']:.1%}), after {after['compliant']} "
            f"({after['share']:.1%}, verified keys only)",
            f"this sweep: {doc['counts']['to_send']} sent, {doc['counts']['held']} held",
        ]
        reasons = ", ".join(f"{k} {v}" for k, v in posture["exceptions_by_reason"].items())
        lines.append(f"not compliant: {reasons or 'none'}")
        lines.append(f"evidence: {', '.join(doc['files'].values())}")
    meaning = SWEEP_MEANINGS.get(result.exit_code, "")
    lines.append(f"exit {result.exit_code}: {meaning}")
    (err if to_stderr else out).print(
        *lines, sep="\n", highlight=False, markup=False, soft_wrap=True
    )
