"""Entra groups with device and user members, nested three deep, drawn from the fleet (seeded).

Users own devices through the managed device's `userPrincipalName` (the fleet gives each device
its own user). Serves `groups?$filter=displayName eq`, `groups/{id}` and
`groups/{id}/transitiveMembers/microsoft.graph.{device,user}` with Graph's permission checks.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from batch_rotate.sim.clock import Answer
from batch_rotate.sim.inventory import ZERO_GUID

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant

# As group-list-transitivemembers and device-list document them (least privileged first).
GROUP_ROLES = frozenset(
    {
        "GroupMember.Read.All",
        "Group.Read.All",
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
DEVICE_ROLES = frozenset(
    {"Device.Read.All", "Device.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
_NAME = re.compile(r"\s*displayName\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)
PAGE = 100  # a member list's default page; `$top` asks for up to MAX_PAGE
MAX_PAGE = 999


@dataclass
class Group:
    id: str
    name: str
    devices: list[int] = field(default_factory=list)  # fleet indexes (Entra device objects)
    users: list[str] = field(default_factory=list)  # UPNs
    groups: list[str] = field(default_factory=list)  # nested group ids


def device_object_id(entra_device_id: str) -> str:
    """The Entra device object's `id` (not its `deviceId`): stable per device."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, entra_device_id.lower()))


class Groups:
    """Finance > Finance-Contractors > Finance-Auditors, Kiosks, and an empty group."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant
        fleet = tenant.fleet
        rng = random.Random(f"{tenant.config.seed}:groups")
        with_entra = [
            i for i in range(len(fleet)) if fleet[i]["azureADDeviceId"] not in ("", ZERO_GUID)
        ]
        pool = rng.sample(with_entra, min(len(with_entra), 60))

        def take(n: int) -> list[int]:
            return [pool.pop() for _ in range(min(n, len(pool)))]

        def gid(name: str) -> str:
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant.config.seed}:{name}"))

        auditors = Group(gid("auditors"), "Finance-Auditors", take(2), [])
        auditors.users = [fleet[i]["userPrincipalName"] for i in take(2)]
        contractors = Group(gid("contractors"), "Finance-Contractors", take(3), [])
        contractors.users = [fleet[i]["userPrincipalName"] for i in take(3)]
        contractors.users.append("newhire@contoso.example")  # owns no managed device
        contractors.groups = [auditors.id]
        finance = Group(gid("finance"), "Finance", take(6), [])
        finance.users = [fleet[i]["userPrincipalName"] for i in take(5)]
        finance.groups = [contractors.id, auditors.id]  # auditors reached twice
        kiosks = Group(gid("kiosks"), "Kiosks", take(6), [])
        empty = Group(gid("empty"), "Empty", [], [])
        self.by_id = {g.id: g for g in (finance, contractors, auditors, kiosks, empty)}

    def by_name(self, name: str) -> list[Group]:
        return [g for g in self.by_id.values() if g.name.lower() == name.lower()]

    def transitive(self, group_id: str) -> tuple[set[int], set[str]]:
        """Every device index and user UPN under the group, through nesting (cycles safe)."""
        devices: set[int] = set()
        users: set[str] = set()
        seen: set[str] = set()
        todo = [group_id]
        while todo:
            group = self.by_id.get(todo.pop())
            if group is None or group.id in seen:
                continue
            seen.add(group.id)
            devices.update(group.devices)
            users.update(group.users)
            todo.extend(group.groups)
        return devices, users

    def truth(self, group: str) -> set[str]:
        """Intune ids the `--group` selector must return: Windows devices only."""
        fleet = self.t.fleet
        found = self.by_id.get(group) or next(iter(self.by_name(group)), None)
        assert found is not None, group
        devices, users = self.transitive(found.id)
        entra = {fleet[i]["azureADDeviceId"].lower() for i in devices}
        out = set()
        for device in fleet:
            owned = device["userPrincipalName"].lower() in {u.lower() for u in users}
            member = device["azureADDeviceId"].lower() in entra
            if (owned or member) and device["operatingSystem"] == "Windows":
                out.add(device["id"])
        return out

    def route(
        self,
        segments: list[str],
        query: dict[str, list[str]],
        granted: set[str],
        crid: str,
        *,
        eventual: bool = False,
    ) -> Answer:
        t = self.t
        if not granted & GROUP_ROLES:
            message = "Insufficient privileges to complete the operation."
            return t.error(403, "Authorization_RequestDenied", message, crid)
        ok = {"Content-Type": "application/json"}
        if len(segments) == 1:
            match = _NAME.fullmatch(query.get("$filter", [""])[0])
            if match is None:
                return t.error(400, "BadRequest", "Use $filter=displayName eq '...'.", crid)
            groups = self.by_name(match[1].replace("''", "'"))
            return 200, ok, {"value": [_group(g) for g in groups]}
        group = self.by_id.get(segments[1].lower())
        if group is None:
            message = (
                f"Resource '{segments[1]}' does not exist or one of its queried "
                "reference-property objects are not present."
            )
            return t.error(404, "Request_ResourceNotFound", message, crid)
        if len(segments) == 2:
            return 200, ok, _group(group)
        kind = segments[3] if len(segments) == 4 else ""
        if segments[2] != "transitiveMembers" or kind not in (
            "microsoft.graph.device",
            "microsoft.graph.user",
        ):
            return t.error(400, "BadRequest", f"Unsupported segment '{segments[-1]}'.", crid)
        counted = query.get("$count", [""])[0].lower() == "true"
        if t.config.require_advanced_query and not (eventual and counted):
            # An OData cast on a member list is an advanced query (MGDC
            # concepts/aad-advanced-queries.md); Graph's answer without its parameters, as
            # reported in microsoft-graph-docs issue 12152.
            message = (
                "The specified filter to the reference property query is currently not supported."
            )
            return t.error(400, "Request_UnsupportedQuery", message, crid)
        try:
            top = int(query.get("$top", [str(PAGE)])[0])
        except ValueError:
            return t.error(400, "Request_BadRequest", "Invalid page size specified.", crid)
        if not 1 <= top <= MAX_PAGE:
            return t.error(400, "Request_BadRequest", "Invalid page size specified.", crid)
        top = min(top, t.config.filtered_page_size or top)
        devices, users = self.transitive(group.id)
        if kind == "microsoft.graph.device":
            full = bool(granted & DEVICE_ROLES)  # without it, device members show only `id`
            members = [_device(t.fleet[i], full) for i in sorted(devices)]
        else:
            members = [_user(u) for u in sorted(users)]
        skip = int(query.get("$skiptoken", ["0"])[0] or 0)
        body: dict[str, Any] = {"value": members[skip : skip + top]}
        if counted and eventual:
            body["@odata.count"] = len(members)
        if skip + top < len(members):
            root = f"{t.base_url}/v1.0/groups/{group.id}/transitiveMembers/{kind}"
            kept = [
                f"{k}={quote(query[k][0], safe=',')}" for k in ("$select", "$count") if k in query
            ]
            link = "&".join([*kept, f"$top={top}", f"$skiptoken={skip + top}"])
            body["@odata.nextLink"] = f"{root}?{link}"
        return 200, ok, body


def _group(g: Group) -> dict[str, Any]:
    return {"id": g.id, "displayName": g.name, "securityEnabled": True, "mailEnabled": False}


def _device(d: dict[str, Any], full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.device",
        "id": device_object_id(d["azureADDeviceId"]),
    }
    if full:
        out.update(
            deviceId=d["azureADDeviceId"],
            displayName=d["deviceName"],
            operatingSystem=d["operatingSystem"],
            accountEnabled=True,
        )
    return out


def _user(upn: str) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.user",
        "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, upn.lower())),
        "userPrincipalName": upn,
        "displayName": upn.split("@")[0],
    }
