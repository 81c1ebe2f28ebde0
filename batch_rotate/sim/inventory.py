"""A seeded, generated fleet shaped like beta `managedDevice`, with realistic trouble in it.

Duplicate names, a serial shared by a re-imaged device, Macs, phones, registered-only and old
Windows devices, devices without an Entra id. `python -m batch_rotate.sim.inventory --sample F`
writes the demo's Intune-export-shaped sample list.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
UNKNOWN_SAMPLE_ID = "6f1c0b4e-9a51-4c3e-8f7d-2b5e0d9c4a11"  # well formed, not in any fleet
EXPORT_HEADERS = (
    "Device ID",
    "Device name",
    "Managed by",
    "Ownership",
    "Compliance",
    "OS",
    "OS version",
    "Last check-in",
    "Primary user UPN",
    "Serial number",
    "Microsoft Entra Device ID",
    "JoinType",
    "Encrypted",
)
_WINDOWS_BUILDS = ("10.0.22631.4460", "10.0.26100.2314", "10.0.19045.5131", "10.0.22621.4317")
_OLD_BUILDS = ("10.0.17763.6414", "10.0.17134.1304")
_BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _serial(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(10))


def generate(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """`count` devices, deterministic for a seed."""
    rng = random.Random(seed)
    devices: list[dict[str, Any]] = []
    for n in range(count):
        roll = rng.random()
        os_name = (
            "Windows"
            if roll < 0.85
            else "macOS"
            if roll < 0.91
            else "iOS"
            if roll < 0.96
            else "Android"
        )
        prefix = {
            "Windows": rng.choice(("DESKTOP", "LT", "WS")),
            "macOS": "MAC",
            "iOS": "IPHONE",
            "Android": "AND",
        }[os_name]
        device: dict[str, Any] = {
            "id": _guid(rng),
            "deviceName": f"{prefix}-{n:05d}{rng.choice('ABCDEFGH')}",
            "serialNumber": _serial(rng),
            "azureADDeviceId": _guid(rng),
            "operatingSystem": os_name,
            "osVersion": {"macOS": "14.6.1", "iOS": "18.1", "Android": "15"}.get(
                os_name, rng.choice(_WINDOWS_BUILDS)
            ),
            "joinType": "azureADJoined" if rng.random() < 0.72 else "hybridAzureADJoined",
            "userPrincipalName": f"user{n:05d}@contoso.example",
            "lastSyncDateTime": (_BASE_TIME - timedelta(minutes=rng.randrange(0, 60 * 24 * 20)))
            .isoformat()
            .replace("+00:00", "Z"),
            "managementAgent": "configurationManagerClientMdm" if rng.random() < 0.1 else "mdm",
            "deviceActionResults": [],
        }
        if os_name != "Windows":
            device["joinType"] = "azureADRegistered" if os_name != "macOS" else "azureADJoined"
        elif n > 0:
            trouble = rng.random()
            if trouble < 0.03:
                device["joinType"] = "azureADRegistered"
            elif trouble < 0.05:
                device["azureADDeviceId"] = ZERO_GUID
            elif trouble < 0.08:
                device["osVersion"] = rng.choice(_OLD_BUILDS)
            elif trouble < 0.09:
                device["managementAgent"] = "eas"
            elif trouble < 0.11:
                device["deviceName"] = devices[rng.randrange(len(devices))]["deviceName"]
            elif trouble < 0.12:
                # re-imaged: a second record with the same serial
                device["serialNumber"] = devices[rng.randrange(len(devices))]["serialNumber"]
        devices.append(device)
    return devices


def load(path: Path) -> list[dict[str, Any]]:
    """A fleet from a JSON list of device objects or a CSV with Graph property names as headers."""
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return [dict(d, deviceActionResults=d.get("deviceActionResults", [])) for d in data]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [dict(row, deviceActionResults=[]) for row in csv.DictReader(handle)]


def eligible(device: dict[str, Any]) -> bool:
    return (
        device["operatingSystem"] == "Windows"
        and device["joinType"] in ("azureADJoined", "hybridAzureADJoined")
        and device["azureADDeviceId"] != ZERO_GUID
        and not device["osVersion"].startswith(("10.0.17", "10.0.16", "10.0.15"))
        and device["managementAgent"] != "eas"
    )


def sample_rows(devices: list[dict[str, Any]], count: int = 50) -> list[list[str]]:
    """Intune "All devices" export rows: eligible devices, one Mac, one unknown id, one bad row."""
    names = [d["deviceName"] for d in devices]
    unique = [d for d in devices if eligible(d) and names.count(d["deviceName"]) == 1]
    mac = next(d for d in devices if d["operatingSystem"] == "macOS")
    chosen = unique[: count - 3]
    chosen.insert(len(chosen) // 3, mac)

    def row(d: dict[str, Any]) -> list[str]:
        return [
            d["id"],
            d["deviceName"],
            "Intune" if d["managementAgent"] == "mdm" else "Co-managed",
            "Corporate",
            "Compliant",
            d["operatingSystem"],
            d["osVersion"],
            d["lastSyncDateTime"].replace("T", " ").replace("Z", ""),
            d["userPrincipalName"],
            d["serialNumber"],
            d["azureADDeviceId"],
            {
                "azureADJoined": "Microsoft Entra joined",
                "hybridAzureADJoined": "Microsoft Entra hybrid joined",
            }.get(d["joinType"], "Microsoft Entra registered"),
            "Yes",
        ]

    rows = [row(d) for d in chosen]
    rows.insert(
        2 * len(rows) // 3,
        [
            UNKNOWN_SAMPLE_ID,
            "LT-RETIRED-01",
            "Intune",
            "Corporate",
            "Compliant",
            "Windows",
            "10.0.22631.4460",
            "2026-09-01 08:00:00",
            "gone@contoso.example",
            "RETIRED001",
            "",
            "Microsoft Entra joined",
            "Yes",
        ],
    )
    rows.append(
        [
            "DESKTOP-TYPO",
            "DESKTOP-TYPO",
            "Intune",
            "Corporate",
            "Compliant",
            "Windows",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
    )
    return rows


def write_sample(path: Path, devices: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(EXPORT_HEADERS)
        writer.writerows(sample_rows(devices))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=Path, required=True, help="where to write the sample CSV")
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    write_sample(args.sample, generate(args.devices, args.seed))


if __name__ == "__main__":
    main()
