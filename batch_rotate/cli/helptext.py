"""Help text conventions: usage lines as the README writes them, no `<bool>` after flags, and an
Examples section (the epilog) for every command."""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup

APP_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "  batch-rotate plan devices.csv                # review: resolve and check, send nothing\n"
    "  batch-rotate rotate devices.csv              # confirm, then rotate\n"
    "  batch-rotate verify reports/<run-id>         # hours later: did the devices rotate?\n"
    "  batch-rotate --profile contoso-prod rotate devices.csv --yes --json"
)

ROTATE_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "  batch-rotate rotate devices.csv\n"
    "  batch-rotate rotate --plan reports/<plan-run-id>   # exactly the reviewed plan\n"
    "  batch-rotate rotate devices.csv --check-keys --yes --quiet\n"
    "  batch-rotate rotate devices.csv --yes --json > result.json\n"
    "  batch-rotate rotate devices.csv --verify-wait 4h --verify-every 10m\n"
    "  batch-rotate rotate --resume reports/<run-id>\n"
    "  batch-rotate --profile contoso-prod rotate devices.xlsx --sheet Laptops"
)
PLAN_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "  batch-rotate plan devices.csv\n"
    "  batch-rotate plan devices.csv --check-keys --recent 48h\n"
    "  batch-rotate plan devices.csv --auth device-code --tenant-id contoso.onmicrosoft.com\n"
    "  batch-rotate plan devices.csv --auth interactive   # browser sign-in, no device code\n"
    "  batch-rotate plan devices.csv --json | jq .counts"
)
VERIFY_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "  batch-rotate verify reports/<run-id>\n"
    "  batch-rotate verify reports/<run-id> --wait 2h --every 10m\n"
    "  batch-rotate verify reports/<run-id> --json | jq .verification"
)
SELECT_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "  batch-rotate select --keys-older-than 90d\n"
    "  batch-rotate select --exposed-since 7d --out exposed.csv\n"
    "  batch-rotate select --group Kiosks --exclude vip.csv --json"
)
REPORT_EXAMPLES = "[bold]Examples[/]\n\n  batch-rotate report reports/<run-id>"


def _no_flag_metavars(params: list[Any]) -> list[Any]:
    """Flags take no value, so help shows none (Typer would print `<bool>`)."""
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    return params


class Command(TyperCommand):
    """Help as the README writes it: `rotate [OPTIONS] [INPUT]`, flags without a placeholder."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _no_flag_metavars(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:
        # imported here: the crash handler needs the console, which needs the run layer
        from batch_rotate.cli.crash import guarded

        return guarded(ctx, lambda: super(Command, self).invoke(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        # Typer writes a required argument as {NAME}; the convention (and the README) is NAME.
        return [
            piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
            for piece in super().collect_usage_pieces(ctx)
        ]


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _no_flag_metavars(super().get_params(ctx))
