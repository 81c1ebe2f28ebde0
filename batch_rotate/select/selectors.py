"""The selectors: each turns one question about the tenant into devices and a reason per device.

Audit records are parsed defensively (GRAPH_NOTES.md "Targeting"): no Microsoft page shows the
"Read BitLocker key" JSON, so the key id and device id are looked for in every place public
queries read them, and a key id alone is resolved through the key's own metadata.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batch_rotate.errors import InputError
from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.errors import SignInError
from batch_rotate.graph.lane import Lane
from batch_rotate.graph.paths import is_guid, recovery_key_path
from batch_rotate.graph.runner import ItemResult
from batch_rotate.graph.session import GraphSession
from batch_rotate.models import Device
from batch_rotate.present import plural
from batch_rotate.select.lookup import devices_where, windows
from batch_rotate.tenant_clock import parse_graph_time
from batch_rotate.verify import KeysFound, recovery_keys

READ_KEY = "Read BitLocker key"
AUDIT_PERMISSION = "AuditLog.Read.All"
GROUP_PERMISSION = "GroupMember.Read.All"
DEVICE_PERMISSION = "Device.Read.All"
KEY_PERMISSION = "BitlockerKey.ReadBasic.All"
ADVANCED_QUERY = {"ConsistencyLevel": "eventual"}
MEMBER_PAGE = 999  # the most a directory member list pages (default 100)
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_KEY_IN_TEXT = re.compile(r"key ID:\s*'?(" + _GUID.pattern + ")", re.IGNORECASE)
_DEVICE_IN_TEXT = re.compile(r"from device:\s*'?(" + _GUID.pattern + ")", re.IGNORECASE)
_ZERO = "00000000-0000-0000-0000-000000000000"
PER_DEVICE_KEYS_MAX = 1000  # above this many devices, one tenant-wide key listing is cheaper

Picked = dict[str, tuple[Device, str]]  # Intune id -> (device, why it was selected)


@dataclass
class Read:
    """One key read found in the audit log."""

    when: datetime
    actor: str
    key_id: str
    entra_device_id: str


@dataclass
class AuditFindings:
    reads: list[Read] = field(default_factory=list)
    records: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why records were not counted

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def _actor(record: dict[str, Any]) -> str:
    by = record.get("initiatedBy") if isinstance(record.get("initiatedBy"), dict) else {}
    assert isinstance(by, dict)
    user = by.get("user") if isinstance(by.get("user"), dict) else None
    app = by.get("app") if isinstance(by.get("app"), dict) else None
    if user and user.get("userPrincipalName"):
        return str(user["userPrincipalName"])
    if app and (app.get("appId") or app.get("displayName")):
        return f"app {app.get('displayName') or ''} {app.get('appId') or ''}".strip()
    return "unknown actor"


def _ids(record: dict[str, Any]) -> tuple[str, str]:
    """(key id, Entra device id) from AdditionalInfo text, else targetResources; '' if absent."""
    key = device = ""
    for detail in record.get("additionalDetails") or []:
        value = str(detail.get("value", "")) if isinstance(detail, dict) else ""
        if m := _KEY_IN_TEXT.search(value):
            key = key or m.group(1)
        if m := _DEVICE_IN_TEXT.search(value):
            device = device or m.group(1)
    for target in record.get("targetResources") or []:
        if not isinstance(target, dict) or key:
            continue
        name = str(target.get("displayName") or "")
        if _GUID.fullmatch(name.strip()):
            key = name.strip()
    return key.lower(), device.lower()


def parse_audit(
    records: Sequence[Any], since: datetime, read_by: str | None, found: AuditFindings
) -> None:
    """Keep successful key reads since `since` (by `read_by`), re-checked on the client."""
    for record in records:
        found.records += 1
        if not isinstance(record, dict):
            found.skip("not a record")
            continue
        if str(record.get("activityDisplayName", "")).strip().lower() != READ_KEY.lower():
            found.skip("another activity")
            continue
        if str(record.get("result", "success")).lower() not in ("success", ""):
            found.skip("failed read (nothing exposed)")
            continue
        when = parse_graph_time(str(record.get("activityDateTime", "")))
        if when is None or when < since:
            found.skip("before the window")
            continue
        actor = _actor(record)
        if read_by and read_by.lower() not in actor.lower().split():
            found.skip("another actor")
            continue
        key, device = _ids(record)
        if not key and not device:
            found.skip("no key or device id in the record")
            continue
        found.reads.append(Read(when, actor, key, device))


async def exposed(
    session: GraphSession, audit: Lane, since: datetime, read_by: str | None
) -> tuple[Picked, AuditFindings]:
    """Windows devices whose recovery key a "Read BitLocker key" event shows read since `since`."""
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    flt = f"activityDisplayName eq '{READ_KEY}' and activityDateTime ge {stamp}"
    if read_by and "@" in read_by:
        literal = read_by.replace("'", "''")
        flt += f" and initiatedBy/user/userPrincipalName eq '{literal}'"
    found = AuditFindings()
    listing = session.pages(
        "auditLogs/directoryAudits",
        lane=audit,
        params={"$filter": flt},
        version="v1.0",
        passed=(),
        permission=f"{AUDIT_PERMISSION} (delegated: also Reports Reader or Security Reader)",
    )
    async for page in listing:
        body = page.body if isinstance(page.body, dict) else {}
        parse_audit(body.get("value") or [], since, read_by, found)
    unique = {(r.key_id, r.entra_device_id, r.actor, r.when): r for r in found.reads}
    found.reads = sorted(unique.values(), key=lambda r: r.when)  # duplicates are a known issue
    missing = {r.key_id for r in found.reads if not r.entra_device_id and r.key_id}
    owners = await _key_devices(session, sorted(missing))
    by_device: dict[str, list[Read]] = {}
    for r in found.reads:
        entra = r.entra_device_id or owners.get(r.key_id, "")
        if entra:
            by_device.setdefault(entra, []).append(r)
        else:
            found.skip("key no longer in Entra (device deleted?)")
    managed = await devices_where(session, "azureADDeviceId", by_device)
    picked: Picked = {}
    for entra, devices in managed.items():
        events = by_device[entra]
        actors = sorted({r.actor for r in events})
        last = max(r.when for r in events).strftime("%Y-%m-%d %H:%M UTC")
        why = f"key read {len(events)}x by {', '.join(actors)}; last {last}"
        for device in windows(devices):
            picked[device.id] = (device, why)
    return picked, found


async def _key_devices(session: GraphSession, key_ids: list[str]) -> dict[str, str]:
    """Key id -> Entra device id, from each key's metadata (never `key` itself)."""
    owners: dict[str, str] = {}
    if not key_ids:
        return owners
    items = [
        BatchItem(n, "GET", recovery_key_path(k), str(uuid.uuid4())) for n, k in enumerate(key_ids)
    ]

    def on_answer(results: Sequence[ItemResult]) -> None:
        for r in results:
            if r.final and r.status == 200 and isinstance(r.body, dict):
                owner = str(r.body.get("deviceId") or "").lower()
                owners[key_ids[r.item.key]] = owner if is_guid(owner) else ""  # never a filter
            elif r.final and r.status == 403:
                raise SignInError(
                    f"reading recovery key metadata was refused (403); grant {KEY_PERMISSION}"
                )

    await session.runner(version="v1.0").run(items, on_send=lambda _: None, on_answer=on_answer)
    return owners


async def group_members(session: GraphSession, group: str) -> tuple[Picked, str]:
    """Windows devices in the group (transitively): device members, and user members' devices."""
    found = await _find_group(session, group)
    gid, name = str(found["id"]), str(found.get("displayName") or found["id"])
    base = f"groups/{gid}/transitiveMembers"
    entra: set[str] = set()
    users: set[str] = set()
    for kind, select in (("device", "id,deviceId,displayName"), ("user", "id,userPrincipalName")):
        # A type-cast member list is an advanced query: ConsistencyLevel: eventual and
        # $count=true (GRAPH_NOTES.md "Second pass"); pages of up to 999 members.
        listing = session.pages(
            f"{base}/microsoft.graph.{kind}",
            params={"$select": select, "$count": "true", "$top": str(MEMBER_PAGE)},
            version="v1.0",
            passed=(),
            permission=GROUP_PERMISSION,
            headers=ADVANCED_QUERY,
        )
        async for page in listing:
            body = page.body if isinstance(page.body, dict) else {}
            for member in body.get("value") or []:
                if not isinstance(member, dict):
                    continue
                if kind == "user" and member.get("userPrincipalName"):
                    users.add(str(member["userPrincipalName"]))
                elif kind == "device" and "deviceId" not in member:
                    raise SignInError(
                        f"group {name}: device members came back without deviceId; grant "
                        f"{DEVICE_PERMISSION} (Graph hides device properties without it)"
                    )
                elif kind == "device" and str(member["deviceId"]).lower() not in ("", _ZERO):
                    entra.add(str(member["deviceId"]).lower())
    by_entra = await devices_where(session, "azureADDeviceId", entra)
    by_user = await devices_where(session, "userPrincipalName", users)
    picked: Picked = {}
    for upn, devices in by_user.items():
        for device in windows(devices):
            picked[device.id] = (device, f"primary user {upn} is in group {name}")
    for devices in by_entra.values():
        for device in windows(devices):
            picked[device.id] = (device, f"device is in group {name}")
    return picked, name


async def _find_group(session: GraphSession, group: str) -> dict[str, Any]:
    """The group by object id, or by exact display name (refused when several share it).

    A group that is not there, or a name several groups share, is the operator's input to fix
    (`InputError`, exit 2), not a failure of Graph."""
    if _GUID.fullmatch(group.strip()):
        response = await session.get(
            f"groups/{group.strip()}", version="v1.0", permission=GROUP_PERMISSION
        )
        if response.status == 200 and isinstance(response.body, dict):
            return response.body
        raise InputError(
            f"--group {group.strip()}: no group in the tenant has this object id; copy the "
            "group's Object ID from Entra ID (Groups), or give its display name"
        )
    literal = group.replace("'", "''")
    response = await session.get(
        "groups",
        params={"$filter": f"displayName eq '{literal}'", "$select": "id,displayName"},
        version="v1.0",
        permission=GROUP_PERMISSION,
    )
    body = response.body if isinstance(response.body, dict) else {}
    matches = [g for g in body.get("value") or [] if isinstance(g, dict) and g.get("id")]
    matches = [g for g in matches if str(g.get("displayName", "")).lower() == group.lower()]
    if not matches:
        raise InputError(
            f"--group {group!r}: no group in the tenant has this display name (the whole name, "
            "in any case); check the spelling in Entra ID (Groups), or give the group's object id"
        )
    if len(matches) > 1:
        ids = ", ".join(str(g["id"]) for g in matches)
        raise InputError(
            f"--group {group!r}: {len(matches)} groups have this display name ({ids}); give "
            f"the object id of the one you mean, e.g. --group {matches[0]['id']}"
        )
    return matches[0]


async def old_keys(
    session: GraphSession, devices: Sequence[Device], cutoff: datetime, now: datetime
) -> Picked:
    """Devices whose newest escrowed key (metadata only) was created before `cutoff`, or none."""
    return pick_old(await key_metadata(session, devices), devices, cutoff, now)


async def key_metadata(session: GraphSession, devices: Sequence[Device]) -> KeysFound:
    """Every device's key metadata, by the cheaper read; a refusal stops the selection."""
    strategy = "per-device" if len(devices) <= PER_DEVICE_KEYS_MAX else "listing"
    ids = [d.entra_device_id for d in devices if d.entra_device_id.lower() not in ("", _ZERO)]
    found = await recovery_keys(ids, session, strategy=strategy)
    refused = [v for v in found.values() if isinstance(v, str) and v.startswith("403")]
    if refused:
        raise SignInError(f"reading recovery key metadata was refused: {refused[0]}")
    return found


async def tenant_key_metadata(session: GraphSession) -> KeysFound:
    """Every recovery key's metadata in the tenant (never `key`), one listing by Entra device id:
    a sweep of every Windows device reads it while the inventory is listed."""
    found: KeysFound = {}
    listing = session.pages(
        "informationProtection/bitlocker/recoveryKeys",
        version="v1.0",
        passed=(403,),
        permission=KEY_PERMISSION,
    )
    async for page in listing:
        if page.status == 403:
            raise SignInError(
                f"reading recovery key metadata was refused: 403: the app lacks {KEY_PERMISSION}"
            )
        body = page.body if isinstance(page.body, dict) else {}
        for key in body.get("value", []):
            if isinstance(key, dict):
                keys = found.setdefault(str(key.get("deviceId", "")).lower(), [])
                assert isinstance(keys, list)
                keys.append(key)
    return found


def newest_key(found: KeysFound, device: Device) -> datetime | str | None:
    """The device's newest key's creation time, None when it has none, or why it is unknown."""
    keys = found.get(device.entra_device_id.lower(), [])
    if isinstance(keys, str):
        return keys
    times = [t for k in keys if (t := parse_graph_time(str(k.get("createdDateTime", ""))))]
    return max(times) if times else None


def pick_old(
    found: KeysFound, devices: Sequence[Device], cutoff: datetime, now: datetime
) -> Picked:
    """The `--keys-older-than` rule over each device's newest key (read once per device)."""
    picked: Picked = {}
    for device in devices:
        why = due_because(newest_key(found, device), cutoff, now)
        if why:
            picked[device.id] = (device, why)
    return picked


def due_because(newest: datetime | str | None, cutoff: datetime, now: datetime) -> str:
    """Why a device is due under `--keys-older-than`, or "" (pure; `sweep` shares it)."""
    if isinstance(newest, str):  # could not be read: select it, a sweep fails safe
        return f"key age unknown ({newest})"
    if newest is None:
        return "no recovery key escrowed in Entra ID"
    if newest < cutoff:
        return f"newest key {plural((now - newest).days, 'day')} old ({newest:%Y-%m-%d})"
    return ""
