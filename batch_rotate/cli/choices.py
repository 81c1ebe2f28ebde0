"""The operator's choices: the guards (Safety), how to read the input, and the selectors that build
a device list from the tenant. Shared by the commands that take them (`cli/groups.py`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from batch_rotate.cli.options import SAFETY, duration_option, typed
from batch_rotate.models import IdKind
from batch_rotate.settings import parse_duration

INPUT, SELECTION = "Input", "Selection"

MaxDevOpt = Annotated[
    int,
    typer.Option(
        "--max-devices", rich_help_panel=SAFETY, help="Refuse to rotate more devices than this."
    ),
]
CheckKeysOpt = Annotated[
    bool,
    typer.Option(
        "--check-keys",
        rich_help_panel=SAFETY,
        help="Count each device's escrowed keys; hold back those near Entra's 200-key limit "
        "(BitlockerKey.ReadBasic.All; one read per device).",
    ),
]
AllowCeilingOpt = Annotated[
    bool,
    typer.Option(
        "--allow-key-ceiling",
        rich_help_panel=SAFETY,
        help="With --check-keys: rotate devices at or near the ceiling anyway.",
    ),
]
RecentOpt = Annotated[
    float,
    duration_option(
        "--recent", "Hold back devices any run of yours queued this recently (0: off).", SAFETY
    ),
]
CheckRecentRotationsOpt = Annotated[
    bool,
    typer.Option(
        "--check-recent-rotations",
        rich_help_panel=SAFETY,
        help="Also hold back devices with a BitLocker rotation requested within --recent by "
        "anyone (the portal, another tool): reads each device's action results (one read per "
        "device, on the read budget).",
    ),
]
ForceRecentOpt = Annotated[
    bool,
    typer.Option(
        "--force-recent", rich_help_panel=SAFETY, help="Rotate such devices again anyway."
    ),
]
UncertainGraceOpt = Annotated[
    float,
    duration_option(
        "--uncertain-grace",
        "A rotation whose answer was lost is not sent again until this long after it left: "
        "Intune may show an accepted rotation only later.",
        SAFETY,
    ),
]

IdColOpt = Annotated[
    str | None,
    typer.Option(
        "--id-column", metavar="NAME", rich_help_panel=INPUT, help="Column of the identifier."
    ),
]
IdKindOpt = Annotated[
    IdKind | None,
    typer.Option(
        "--id-kind",
        metavar="KIND",
        rich_help_panel=INPUT,
        help="What that column holds: intune_id, entra_device_id, device_name, serial_number.",
    ),
]
SheetOpt = Annotated[
    str | None,
    typer.Option(
        "--sheet", metavar="NAME", rich_help_panel=INPUT, help="XLSX sheet (default: the first)."
    ),
]


def parse_since(text: str | datetime | float) -> datetime | float:
    """A date or time (UTC unless it says otherwise), or a duration back from the tenant's now."""
    if isinstance(text, datetime | float | int):
        return text
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return parse_duration(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a date (2026-11-20, 2026-11-20T08:00Z) nor a duration "
                "(7d, 36h)"
            ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


ExposedOpt = Annotated[
    Any,
    typer.Option(
        "--exposed-since",
        parser=typed(parse_since),
        metavar="WHEN",
        rich_help_panel=SELECTION,
        help="Devices whose key was read since then: a date or a duration back ('Read "
        "BitLocker key' audit events; AuditLog.Read.All; 30 days kept, 7 on Entra ID Free).",
    ),
]
ReadByOpt = Annotated[
    str | None,
    typer.Option(
        "--read-by",
        metavar="UPN",
        rich_help_panel=SELECTION,
        help="With --exposed-since: reads by this actor.",
    ),
]
KeysOlderOpt = Annotated[
    float | None,
    typer.Option(
        "--keys-older-than",
        parser=typed(parse_duration),
        metavar="DURATION",
        rich_help_panel=SELECTION,
        help="Devices whose newest escrowed key is older (or that have none), e.g. 90d "
        "(BitlockerKey.ReadBasic.All; metadata only).",
    ),
]
GroupOpt = Annotated[
    str | None,
    typer.Option(
        "--group",
        metavar="NAME|ID",
        rich_help_panel=SELECTION,
        help="Entra group, transitive: its devices and its users' Windows devices "
        "(GroupMember.Read.All, Device.Read.All).",
    ),
]
AllWindowsOpt = Annotated[
    bool,
    typer.Option("--all-windows", rich_help_panel=SELECTION, help="Every eligible Windows device."),
]
ExcludeOpt = Annotated[
    Path | None,
    typer.Option(
        "--exclude",
        metavar="FILE",
        rich_help_panel=SELECTION,
        help="Device list (CSV/XLSX) to leave out.",
    ),
]


# Campaigns (issue 21): many tenants in one command.
CAMPAIGN = "Campaign (many tenants)"
TenantsOpt = Annotated[
    Path | None,
    typer.Option(
        "--tenants",
        metavar="FILE",
        rich_help_panel=CAMPAIGN,
        help="A campaign: one run per tenant of FILE (CSV or TOML: tenant, name, input, "
        "*_env credential variable names); INPUT, if given, spans them by its Tenant ID column.",
    ),
]
TenantsAtOnceOpt = Annotated[
    int,
    typer.Option(
        "--tenants-at-once",
        min=1,
        max=200,
        rich_help_panel=CAMPAIGN,
        help="Tenants working at the same time (each at its own budget).",
    ),
]
AllOrNothingOpt = Annotated[
    bool,
    typer.Option(
        "--all-or-nothing",
        rich_help_panel=CAMPAIGN,
        help="Send nothing anywhere when any tenant fails pre-flight (default: the others go on).",
    ),
]
