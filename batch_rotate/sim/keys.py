"""BitLocker recovery key metadata (`informationProtection/bitlocker/recoveryKeys`), never keys.

Reading keys lets due device check-ins play out first, so a new key shows once it exists.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from batch_rotate.sim.clock import Answer

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant

KEY_ROLES = frozenset({"BitlockerKey.ReadBasic.All", "BitlockerKey.Read.All"})
_DEVICE_FILTER = re.compile(r"deviceId eq '([0-9a-fA-F-]{36})'")


class RecoveryKeys:
    """Key listings per Entra device id, or for the whole tenant a page per 200 devices."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant

    def get(self, key_id: str, query: dict[str, list[str]], roles: set[str], crid: str) -> Answer:
        """One key's metadata by key id (the id a "Read BitLocker key" audit record names)."""
        t = self.t
        if not roles & KEY_ROLES:
            message = (
                "Insufficient privileges to complete the operation. Application must have one of "
                "the following permissions: BitlockerKey.ReadBasic.All, BitlockerKey.Read.All"
            )
            return t.error(403, "Authorization_RequestDenied", message, crid)
        if "key" in query.get("$select", [""])[0].split(","):
            return t.error(400, "BadRequest", "The simulator does not serve key material.", crid)
        entra = t.targeting.key_device.get(key_id.lower()) if t.targeting else None
        for key in t.escrow.keys.get(entra or "", []):
            if key["id"] == key_id.lower():
                return 200, {"Content-Type": "application/json"}, dict(key)
        message = f"Resource '{key_id}' does not exist."
        return t.error(404, "Request_ResourceNotFound", message, crid)

    def list(self, version: str, query: dict[str, list[str]], roles: set[str], crid: str) -> Answer:
        t = self.t
        if not roles & KEY_ROLES:
            message = (
                "Insufficient privileges to complete the operation. Application must have one of "
                "the following permissions: BitlockerKey.ReadBasic.All, BitlockerKey.Read.All"
            )
            return t.error(403, "Authorization_RequestDenied", message, crid)
        if "key" in query.get("$select", [""])[0].split(","):
            # Never needed by batch-rotate: reading the key itself writes an audit entry.
            message = "The simulator does not serve key material."
            return t.error(400, "BadRequest", message, crid)
        flt = query.get("$filter", [""])[0]
        match = _DEVICE_FILTER.fullmatch(flt)
        root = f"{t.base_url}/{version}/informationProtection/bitlocker/recoveryKeys"
        body: dict[str, Any] = {"@odata.context": f"{t.base_url}/{version}/$metadata#recoveryKeys"}
        start = int(query.get("$skiptoken", ["0"])[0] or 0)
        if match:
            keys: list[dict[str, Any]] = []
            for index in t.fleet.find("azureADDeviceId", match.group(1)):
                device = t.fleet[index]
                t.escrow.advance(t.fleet, device)
                keys = t.escrow.device_keys(device)
            body["value"] = keys[start : start + 100]
            if start + 100 < len(keys):
                body["@odata.nextLink"] = (
                    f"{root}?$filter={quote(flt, safe='')}&$skiptoken={start + 100}"
                )
            return 200, {"Content-Type": "application/json"}, body
        # No filter: every key in the tenant, a page per 200 devices (Graph documents no size).
        page: list[dict[str, Any]] = []
        end = min(start + 200, len(t.fleet))
        for index in range(start, end):
            device = t.fleet[index]
            if device.get("azureADDeviceId", "").strip("0-") == "":
                continue
            t.escrow.advance(t.fleet, device)
            page.extend(t.escrow.device_keys(device))
        body["value"] = page
        if end < len(t.fleet):
            body["@odata.nextLink"] = f"{root}?$skiptoken={end}"
        return 200, {"Content-Type": "application/json"}, body
