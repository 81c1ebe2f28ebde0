"""A seeded fleet shaped like beta `managedDevice`, with realistic trouble in it, stored compactly.

One str per device (dicts are built on access) and one id index: a million devices fit in
about 400 MB. `python -m batch_rotate.sim.inventory --sample F` writes the demo's sample list.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, overload

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
# Intune export headers (new and old names) -> Graph properties, for loading an export as a fleet.
_EXPORT_TO_GRAPH = {
    "device id": "id",
    "device name": "deviceName",
    "os": "operatingSystem",
    "os version": "osVersion",
    "last check-in": "lastSyncDateTime",
    "primary user upn": "userPrincipalName",
    "serial number": "serialNumber",
    "microsoft entra device id": "azureADDeviceId",
    "azure ad device id": "azureADDeviceId",
    "jointype": "joinType",
    "managed by": "managementAgent",
}
_JOIN_FROM_EXPORT = {
    "microsoft entra joined": "azureADJoined",
    "azure ad joined": "azureADJoined",
    "microsoft entra hybrid joined": "hybridAzureADJoined",
    "hybrid azure ad joined": "hybridAzureADJoined",
    "microsoft entra registered": "azureADRegistered",
    "azure ad registered": "azureADRegistered",
}
_WINDOWS_BUILDS = ("10.0.22631.4460", "10.0.26100.2314", "10.0.19045.5131", "10.0.22621.4317")
_OLD_BUILDS = ("10.0.17763.6414", "10.0.17134.1304")
_SERIAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)
FIELDS = (
    "id",
    "deviceName",
    "serialNumber",
    "azureADDeviceId",
    "operatingSystem",
    "osVersion",
    "joinType",
    "userPrincipalName",
    "lastSyncDateTime",
    "managementAgent",
)
# Hardware and edition fields of the beta managedDevice, derived (not drawn: the seeded stream
# above is the format); Cloud PCs and Home editions are set by the tenant (sim/devices.py).
CLOUD_PC: dict[str, Any] = {
    "deviceType": "cloudPC",
    "model": "Cloud PC Enterprise 2vCPU/8GB/128GB",
    "manufacturer": "Microsoft Corporation",
}
HOME_EDITION: dict[str, Any] = {"skuFamily": "Core", "skuNumber": 101}  # PRODUCT_CORE
_HARDWARE: dict[str, dict[str, Any]] = {
    "Windows": {
        "deviceType": "desktop",
        "model": "Latitude 7440",
        "manufacturer": "Dell Inc.",
        "skuFamily": "Enterprise",
        "skuNumber": 4,  # PRODUCT_ENTERPRISE
    },
    "macOS": {"deviceType": "macMDM", "model": "MacBook Air", "manufacturer": "Apple"},
    "iOS": {"deviceType": "iPhone", "model": "iPhone 15", "manufacturer": "Apple"},
    "Android": {"deviceType": "androidEnterprise", "model": "Pixel 8", "manufacturer": "Google"},
}
_SEP = "\x1f"  # packs one generated device into one str: a million dicts would not fit in 1 GB
_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_V4_SET = (0x8000 << 48) | (4 << 76)


def _guid(rng: random.Random) -> str:
    """Same value as str(uuid.UUID(int=rng.getrandbits(128), version=4)), five times faster."""
    h = "%032x" % (rng.getrandbits(128) & _V4_CLEAR | _V4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@cache
def _sync_time(base: datetime, minutes: int) -> str:
    return (base - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def _rows(count: int, seed: int, now: datetime = _BASE_TIME) -> Iterator[tuple[str, ...]]:
    """Device field tuples (FIELDS order), one seeded stream: the order of draws is the format.

    Every device last synced within the 20 days before `now` (a fixed date unless given, so the
    committed sample never changes)."""
    base = now.replace(second=0, microsecond=0)
    rng = random.Random(seed)
    choice, rand = rng.choice, rng.random
    names: list[str] = []
    serials: list[str] = []
    for n in range(count):
        roll = rand()
        os_name = (
            "Windows"
            if roll < 0.85
            else "macOS"
            if roll < 0.91
            else "iOS"
            if roll < 0.96
            else "Android"
        )
        windows_prefix = choice(("DESKTOP", "LT", "WS"))  # drawn for every device
        prefix = {"macOS": "MAC", "iOS": "IPHONE", "Android": "AND"}.get(os_name, windows_prefix)
        device_id = _guid(rng)
        name = f"{prefix}-{n:05d}{choice('ABCDEFGH')}"
        serial = "".join([choice(_SERIAL_ALPHABET) for _ in range(10)])
        entra_id = _guid(rng)
        build = choice(_WINDOWS_BUILDS)
        os_version = {"macOS": "14.6.1", "iOS": "18.1", "Android": "15"}.get(os_name, build)
        join = "azureADJoined" if rand() < 0.72 else "hybridAzureADJoined"
        synced = _sync_time(base, rng.randrange(0, 60 * 24 * 20))
        agent = "configurationManagerClientMdm" if rand() < 0.1 else "mdm"
        if os_name != "Windows":
            join = "azureADRegistered" if os_name != "macOS" else "azureADJoined"
        elif n > 0:
            trouble = rand()
            if trouble < 0.03:
                join = "azureADRegistered"
            elif trouble < 0.05:
                entra_id = ZERO_GUID
            elif trouble < 0.08:
                os_version = choice(_OLD_BUILDS)
            elif trouble < 0.09:
                agent = "eas"
            elif trouble < 0.11:
                name = names[rng.randrange(n)]  # a duplicate device name
            elif trouble < 0.12:
                serial = serials[rng.randrange(n)]  # re-imaged: a second record, same serial
        names.append(name)
        serials.append(serial)
        yield (
            device_id,
            name,
            serial,
            entra_id,
            os_name,
            os_version,
            join,
            f"user{n:05d}@contoso.example",
            synced,
            agent,
        )


class Fleet(Sequence[dict[str, Any]]):
    """The tenant's devices: generated on demand (or loaded), plus the actions sent to them."""

    def __init__(
        self,
        *,
        count: int = 0,
        seed: int = 1,
        records: list[dict[str, Any]] | None = None,
        now: datetime = _BASE_TIME,
    ) -> None:
        self._records = records
        self._packed: list[str] = []
        if records is None:
            self._packed = [_SEP.join(row) for row in _rows(count, seed, now)]
        self._count = len(records) if records is not None else count
        self._actions: dict[str, list[dict[str, Any]]] = {}
        self._changed: dict[str, dict[str, Any]] = {}  # properties devices changed since
        self._indexes: dict[str, dict[str, list[int]]] = {}
        # The one eager structure: every request names a device by id.
        self._by_id: dict[str, int] = {self.id_at(i).lower(): i for i in range(self._count)}

    @classmethod
    def generated(cls, count: int, seed: int = 1, now: datetime = _BASE_TIME) -> Fleet:
        """`count` seeded devices, each last synced within the 20 days before `now`."""
        return cls(count=count, seed=seed, now=now)

    @classmethod
    def load(cls, path: Path) -> Fleet:
        return cls(records=load(path))

    def id_at(self, index: int) -> str:
        """The device id at `index`, without building the device."""
        if self._records is not None:
            return str(self._records[index]["id"])
        return self._packed[index][:36]

    def _raw(self, index: int) -> dict[str, Any]:
        if self._records is not None:
            return dict(self._records[index])
        return dict(zip(FIELDS, self._packed[index].split(_SEP), strict=True))

    def _prop(self, index: int, prop: str) -> str:
        if self._records is not None:
            return str(self._records[index].get(prop) or "")
        return self._packed[index].split(_SEP)[FIELDS.index(prop)] if prop in FIELDS else ""

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        device = _with_hardware(self._raw(index))
        device.update(self._changed.get(device["id"].lower(), {}))
        device["deviceActionResults"] = [
            dict(a) for a in self._actions.get(device["id"].lower(), [])
        ]
        return device

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(self._count))

    def index_of(self, device_id: str) -> int | None:
        return self._by_id.get(device_id.lower())

    def get(self, device_id: str) -> dict[str, Any] | None:
        index = self.index_of(device_id)
        return None if index is None else self[index]

    def find(self, prop: str, value: str) -> list[int]:
        """Indexes whose `prop` equals `value` (any case); the index is built on first use."""
        if prop not in self._indexes:
            index: dict[str, list[int]] = {}
            for i in range(self._count):
                index.setdefault(self._prop(i, prop).lower(), []).append(i)
            self._indexes[prop] = index
        return self._indexes[prop].get(value.lower(), [])

    def set_property(self, device_id: str, prop: str, value: Any) -> None:
        """A property the device changed (e.g. lastSyncDateTime at a check-in)."""
        self._changed.setdefault(device_id.lower(), {})[prop] = value

    def record_action(self, device_id: str, action: dict[str, Any]) -> None:
        """Replace the device's entry for this action (Intune keeps the latest per action)."""
        key = device_id.lower()
        kept = [a for a in self._actions.get(key, []) if a["actionName"] != action["actionName"]]
        self._actions[key] = [*kept, action]


def generate(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """`count` devices as a list, deterministic for a seed (small fleets, tests, the sample)."""
    return [
        _with_hardware(dict(zip(FIELDS, row, strict=True), deviceActionResults=[]))
        for row in _rows(count, seed)
    ]


def _with_hardware(device: dict[str, Any]) -> dict[str, Any]:
    """The device with its platform's hardware and edition fields, where it has none."""
    for prop, value in _HARDWARE.get(str(device.get("operatingSystem")), {}).items():
        device.setdefault(prop, value)
    return device


def _from_export(row: dict[str, str]) -> dict[str, Any]:
    device: dict[str, Any] = {}
    for header, value in row.items():
        prop = _EXPORT_TO_GRAPH.get((header or "").strip().lower(), header)
        device[prop] = value
    join = str(device.get("joinType", ""))
    device["joinType"] = _JOIN_FROM_EXPORT.get(join.lower(), join)
    if device.get("managementAgent") in ("Intune", "Co-managed"):
        device["managementAgent"] = (
            "mdm" if device["managementAgent"] == "Intune" else "configurationManagerClientMdm"
        )
    return device


def load(path: Path) -> list[dict[str, Any]]:
    """Devices from a JSON list, a CSV with Graph property headers, or an Intune export."""
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        rows: list[dict[str, Any]] = list(data)
    else:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = [_from_export(row) for row in csv.DictReader(handle)]
    devices = []
    for row in rows:
        if not row.get("id"):
            continue  # a fleet member needs an id to be addressed at all
        device = dict(row)
        device.setdefault("operatingSystem", "Windows")
        for prop in ("deviceName", "serialNumber", "azureADDeviceId", "osVersion", "joinType"):
            device.setdefault(prop, "")
        device["deviceActionResults"] = list(device.get("deviceActionResults") or [])
        devices.append(device)
    return devices


def eligible(device: dict[str, Any]) -> bool:
    """The product's rotate rules (GRAPH_NOTES.md "Eligibility"), plus no EAS-only devices, no
    Cloud PCs and no Home editions."""
    return (
        device["operatingSystem"] == "Windows"
        and device["joinType"] in ("azureADJoined", "hybridAzureADJoined")
        and device["azureADDeviceId"] not in (ZERO_GUID, "")
        and not device["osVersion"].startswith(("10.0.17", "10.0.16", "10.0.15"))
        and device["managementAgent"] != "eas"
        and device.get("deviceType") != CLOUD_PC["deviceType"]
        and device.get("skuNumber") != HOME_EDITION["skuNumber"]
    )


def sample_rows(devices: Sequence[dict[str, Any]], count: int = 50) -> list[list[str]]:
    """Intune "All devices" export rows: eligible devices, one Mac, one unknown id, one bad row.

    Long because it spells out the export's columns, one per line.
    """
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


def write_sample(path: Path, devices: Sequence[dict[str, Any]]) -> None:
    """The committed sample is exactly this output for the default fleet (a test checks it)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(EXPORT_HEADERS)
        writer.writerows(sample_rows(devices))


def mixed_rows(devices: Sequence[dict[str, Any]]) -> list[list[str]]:
    """A device-name list with one row per resolution outcome, picked from the fleet by role."""
    names = [d["deviceName"] for d in devices]
    unique = [d for d in devices if names.count(d["deviceName"]) == 1]

    def first(test: Any) -> str:
        return str(next(d["deviceName"] for d in unique if test(d)))

    ok = [d["deviceName"] for d in unique if eligible(d)]
    shared = next(n for n in names if names.count(n) > 1)
    windows = [d for d in unique if d["operatingSystem"] == "Windows"]

    def first_windows(test: Any) -> str:
        return str(next(d["deviceName"] for d in windows if test(d)))

    return [
        [ok[0], "eligible"],
        [ok[1].lower(), "eligible, typed in lower case"],
        [shared, "two devices share this name"],
        [ok[0], "same device as row 2"],
        ["LT-NO-SUCH-DEVICE", "not in Intune"],
        [first(lambda d: d["operatingSystem"] == "macOS"), "a Mac"],
        [first(lambda d: d["operatingSystem"] == "Android"), "a phone"],
        [first_windows(lambda d: d["joinType"] == "azureADRegistered"), "registered only"],
        [first_windows(lambda d: d["azureADDeviceId"] == ZERO_GUID), "no Entra id"],
        [first_windows(lambda d: d["osVersion"].startswith("10.0.17")), "old build"],
        [first_windows(lambda d: d["managementAgent"] == "eas"), "Exchange only"],
        ["", "empty cell"],
        [f"  {ok[2]}  ", "eligible, stray spaces"],
        ['=HYPERLINK("http://example.invalid","x")', "formula injection attempt"],
    ]


def write_mixed(path: Path, devices: Sequence[dict[str, Any]]) -> None:
    """inputs/mixed-devices.csv: every resolve/plan outcome by device name (a test checks it)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["Device name", "Note"])
        writer.writerows(mixed_rows(devices))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=Path, required=True, help="where to write the sample CSV")
    parser.add_argument("--mixed", type=Path, help="also write the by-name outcomes list here")
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    fleet = generate(args.devices, args.seed)
    write_sample(args.sample, fleet)
    if args.mixed:
        write_mixed(args.mixed, fleet)


if __name__ == "__main__":
    main()
