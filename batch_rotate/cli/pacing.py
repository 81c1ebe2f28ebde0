"""How fast a command goes (Pacing) and how much it says (Output, global: accepted before or after
the command), and the Environment section of the help."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batch_rotate.cli.options import checked_path, typed
from batch_rotate.settings import Budget, check_reports_dir, parse_budget

PACING, OUTPUT = "Pacing", "Output"

# ---- Pacing: how fast, how many at once, how often to retry ---------------------------------
BatchOpt = Annotated[
    int, typer.Option("--batch-size", rich_help_panel=PACING, help="Requests per $batch (1-20).")
]
ConcOpt = Annotated[
    int, typer.Option("--max-concurrency", rich_help_panel=PACING, help="Batches in flight.")
]
WriteOpt = Annotated[
    Budget,
    typer.Option(
        "--write-budget",
        parser=typed(parse_budget),
        metavar="N/WINDOW",
        rich_help_panel=PACING,
        help="Writes allowed per window for this app, e.g. 200/20s.",
    ),
]
ReadOpt = Annotated[
    Budget,
    typer.Option(
        "--read-budget",
        parser=typed(parse_budget),
        metavar="N/WINDOW",
        rich_help_panel=PACING,
        help="Reads allowed per window, e.g. 2000/20s.",
    ),
]
AttemptsOpt = Annotated[
    int,
    typer.Option("--max-attempts", rich_help_panel=PACING, help="Tries per transient error."),
]
RetryDelayOpt = Annotated[
    float,
    typer.Option(
        "--retry-delay", rich_help_panel=PACING, help="Base seconds of the retry backoff."
    ),
]

# ---- Output: global, before or after the command --------------------------------------------
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        rich_help_panel=OUTPUT,
        help="One JSON document on stdout (human lines go to stderr).",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        rich_help_panel=OUTPUT,
        help="Only warnings, errors, the run and the next command.",
    ),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", rich_help_panel=OUTPUT, help="Also each answer.")
]
DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug", rich_help_panel=OUTPUT, help="Also every HTTP request (tokens never shown)."
    ),
]
ReportsOpt = Annotated[
    Path,
    typer.Option(
        "--reports-dir",
        callback=checked_path(check_reports_dir),
        metavar="DIR",
        rich_help_panel=OUTPUT,
        help="Where run folders are written.",
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        envvar="BATCH_ROTATE_PROFILE",
        show_envvar=False,
        metavar="NAME",
        rich_help_panel=OUTPUT,
        help="Defaults from the profile NAME of batch-rotate.toml; options, a run's record "
        "and the environment win over it.",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="PATH",
        rich_help_panel=OUTPUT,
        help="Profiles file (default: batch-rotate.toml in the working folder).",
    ),
]


ENVIRONMENT_HELP = (
    "[bold]Environment[/] (an option typed wins; on a run, what it recorded wins over these)\n\n"
    "  AZURE_TENANT_ID  AZURE_CLIENT_ID  AZURE_CLIENT_SECRET\n"
    "  AZURE_CLIENT_CERTIFICATE_PATH  AZURE_CLIENT_CERTIFICATE_PASSWORD\n"
    "  AZURE_MANAGED_IDENTITY_CLIENT_ID  AZURE_FEDERATED_TOKEN_FILE\n"
    "  AZURE_AUTHORITY_HOST  BATCH_ROTATE_AUTH  BATCH_ROTATE_TOKEN_CACHE\n"
    "  BATCH_ROTATE_PROFILE  SSL_CERT_FILE (--ca-bundle)\n"
    "  HTTPS_PROXY  HTTP_PROXY  NO_PROXY"
)
