"""The selected list as a CSV in the Intune "All devices" export's shape, plus why each device is on
it; `plan` and `rotate` read it unchanged (by the `Device ID` column).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from batch_rotate.models import Device

COLUMNS = (
    "Device ID",
    "Device name",
    "Serial number",
    "Microsoft Entra Device ID",
    "OS",
    "OS version",
    "JoinType",
    "Primary user UPN",
    "Last check-in",
    "Managed by",
    "Selected because",
)
_JOIN = {
    "azureadjoined": "Microsoft Entra joined",
    "hybridazureadjoined": "Microsoft Entra hybrid joined",
    "azureadregistered": "Microsoft Entra registered",
}


def _safe(value: str) -> str:
    """A spreadsheet must not run a tenant-controlled value as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def write_csv(path: Path, devices: Sequence[tuple[Device, str]]) -> Path:
    """Write atomically (a reviewer may open the file while a later run replaces it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for device, why in devices:
            row = (
                device.id,
                device.name,
                device.serial_number,
                device.entra_device_id,
                device.os,
                device.os_version,
                _JOIN.get(device.join_type.lower(), device.join_type),
                device.user_principal_name,
                device.last_sync,
                device.management_agent,
                why,
            )
            writer.writerow([_safe(v) for v in row])
    os.replace(partial, path)
    return path
