"""Data for the `select` stage: seeded key ages, key-read audit events, and their ground truth.

Switched on by `SimConfig.targeting`; off, the tenant behaves exactly as before. Every time is
a whole number of days plus 1 to 23 hours before the tenant's start, so a cutoff of N whole days
(however many minutes the test takes) never falls within an hour of an event or a key.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from batch_rotate.sim.clock import iso
from batch_rotate.sim.inventory import ZERO_GUID, eligible

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant

READ_KEY = "Read BitLocker key"
SIBLINGS = ("Add BitLocker key", "Delete BitLocker key")
AUDIT_SERVICE = "Device Registration Service"


@dataclass
class TargetingConfig:
    """What the tenant holds for targeting; the defaults give every case a few devices."""

    no_key_share: float = 0.06  # Windows devices with an Entra id that escrowed no key
    newest_key_max_days: int = 400  # newest key ages spread over 0..this many days
    audit_reads: int = 40  # "Read BitLocker key" events (before duplicates)
    audit_days: int = 45  # events spread over this many days back (some beyond retention)
    retention_days: int = 30  # Entra ID P1/P2; 7 for Free
    duplicate_share: float = 0.15  # the known duplicate-event issue (GRAPH_NOTES.md)
    failure_share: float = 0.08  # failed reads: nothing was exposed
    no_details_share: float = 0.2  # records without `additionalDetails`: key id only
    app_share: float = 0.1  # reads by an app (initiatedBy.app), not a user
    actors: tuple[str, ...] = (
        "helpdesk1@contoso.example",
        "helpdesk2@contoso.example",
        "mallory@contoso.example",
    )
    audit_page_size: int = 25
    audit_limit: int = 5  # requests per 10 s per app (Entra logs and reports)
    groups: bool = True


@dataclass
class AuditEvent:
    """One directory audit record, plus what the sim knows about it."""

    record: dict[str, Any]
    when: datetime
    actor: str  # user UPN, or "app:<appId>"
    key_id: str
    entra_device_id: str
    succeeded: bool
    read: bool  # activity is "Read BitLocker key"


@dataclass
class Targeting:
    """Key ages (through the escrow hook), audit events and ground-truth accessors."""

    tenant: Tenant
    config: TargetingConfig
    anchor: datetime = field(init=False)
    events: list[AuditEvent] = field(default_factory=list)
    key_device: dict[str, str] = field(default_factory=dict)  # key id -> Entra device id

    def __post_init__(self) -> None:
        self.anchor = self.tenant.clock.now()
        self.tenant.escrow.initial_keys = self.initial_keys
        self._make_events()

    def _ago(self, rng: random.Random, days: int) -> datetime:
        return self.anchor - timedelta(
            days=days, hours=rng.randint(1, 23), minutes=rng.randint(0, 59)
        )

    def initial_keys(self, device: dict[str, Any]) -> list[dict[str, Any]]:
        """Seeded keys: none for a share of devices, else newest at a spread age, older weekly."""
        entra = str(device.get("azureADDeviceId") or "").lower()
        if entra in ("", ZERO_GUID):
            return []
        rng = random.Random(f"{self.tenant.config.seed}:keys:{device['id'].lower()}")
        if rng.random() < self.config.no_key_share:
            return []
        count = self.tenant.escrow.behaviour(device["id"]).initial_keys
        newest = self._ago(rng, rng.randint(0, self.config.newest_key_max_days))
        keys = []
        for i in range(count):
            key_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            volume = "operatingSystemVolume" if i % 2 == 0 else "fixedDataVolume"
            created = iso(newest - timedelta(days=7 * i), ms=True)
            keys.append(
                {"id": key_id, "createdDateTime": created, "deviceId": entra, "volumeType": volume}
            )
            self.key_device[key_id] = entra
        return keys

    def _make_events(self) -> None:
        cfg, fleet = self.config, self.tenant.fleet
        rng = random.Random(f"{self.tenant.config.seed}:audit")
        app_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        made = 0
        for _ in range(cfg.audit_reads * 20):
            if made >= cfg.audit_reads or not len(fleet):
                break
            device = fleet[rng.randrange(len(fleet))]
            if device["operatingSystem"] != "Windows":
                continue
            keys = self.tenant.escrow.device_keys(device)
            if not keys:
                continue
            made += 1
            key = rng.choice(keys)
            roll = rng.random()
            if roll < cfg.app_share:
                actor = f"app:{app_id}"
            elif roll < cfg.app_share + 0.15:
                actor = str(device.get("userPrincipalName") or cfg.actors[0])  # self-service
            else:
                actor = rng.choice(cfg.actors)
            when = self._ago(rng, rng.randint(0, cfg.audit_days))
            activity = READ_KEY if rng.random() < 0.9 else rng.choice(SIBLINGS)
            ok = rng.random() >= cfg.failure_share
            details = rng.random() >= cfg.no_details_share
            copies = 2 if rng.random() < cfg.duplicate_share else 1
            for _copy in range(copies):
                record = _record(rng, activity, when, actor, key, ok, details)
                self.events.append(
                    AuditEvent(
                        record,
                        when,
                        actor,
                        key["id"],
                        key["deviceId"],
                        ok,
                        activity == READ_KEY,
                    )
                )
        self.events.sort(key=lambda e: e.when, reverse=True)

    def retained(self) -> list[AuditEvent]:
        """Events still in the log: older ones are purged (the retention window)."""
        cutoff = self.tenant.clock.now() - timedelta(days=self.config.retention_days)
        return [e for e in self.events if e.when >= cutoff]

    # ---- ground truth for tests ----

    def exposed(self, since: datetime, read_by: str | None = None) -> set[str]:
        """Intune ids of Windows devices whose key a successful, retained read exposed since."""
        entra = {
            e.entra_device_id
            for e in self.retained()
            if e.read and e.succeeded and e.when >= since
            if read_by is None or e.actor.lower() == read_by.lower()
        }
        fleet = self.tenant.fleet
        return {
            fleet.id_at(i)
            for d in entra
            for i in fleet.find("azureADDeviceId", d)
            if fleet[i]["operatingSystem"] == "Windows"
        }

    def keys_older(self, older_than: datetime) -> set[str]:
        """Eligible devices whose newest key was created before `older_than`, or with none."""
        out = set()
        for device in self.tenant.fleet:
            if not eligible(device):
                continue
            keys = self.tenant.escrow.device_keys(device)
            newest = max((k["createdDateTime"] for k in keys), default="")
            if not newest or newest < iso(older_than, ms=True):
                out.add(device["id"])
        return out

    def all_windows(self) -> set[str]:
        return {d["id"] for d in self.tenant.fleet if eligible(d)}


def _record(
    rng: random.Random,
    activity: str,
    when: datetime,
    actor: str,
    key: dict[str, Any],
    ok: bool,
    details: bool,
) -> dict[str, Any]:
    """The record as the sources suggest it (GRAPH_NOTES.md "Targeting"): key id in
    targetResources[0].displayName, device in additionalDetails "AdditionalInfo"."""
    if actor.startswith("app:"):
        initiated: dict[str, Any] = {
            "user": None,
            "app": {"appId": actor[4:], "displayName": "Recovery tool", "servicePrincipalId": ""},
        }
    else:
        initiated = {
            "user": {
                "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, actor)),
                "displayName": actor.split("@")[0],
                "userPrincipalName": actor,
                "ipAddress": f"203.0.113.{rng.randint(1, 254)}",
            },
            "app": None,
        }
    info = (
        f"Successfully retrieved BitLocker recovery key associated with key ID: '{key['id']}'. "
        f"Backed up from device: '{key['deviceId']}'"
    )
    return {
        "id": f"Directory_{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "category": "KeyManagement",
        "correlationId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "result": "success" if ok else "failure",
        "resultReason": "" if ok else "Insufficient privileges",
        "activityDisplayName": activity,
        "activityDateTime": iso(when, ms=True),
        "loggedByService": AUDIT_SERVICE,
        "operationType": "Read" if activity == READ_KEY else "Add",
        "initiatedBy": initiated,
        "targetResources": [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, key["deviceId"])),
                "displayName": key["id"],
                "type": "Device",
                "userPrincipalName": None,
                "modifiedProperties": [],
            }
        ],
        "additionalDetails": [{"key": "AdditionalInfo", "value": info}] if details else [],
    }
