"""Intune managed devices: listing (`$filter`, `$select`, paging), get by id, the rotate action.

Where Graph is silent or known to misbehave (incomplete listings, `or` filters), the sim chooses
the reading that is hardest on the client; see README.md.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from batch_rotate.sim.clock import Answer, device_fraction, iso
from batch_rotate.sim.escrow import ROTATE_RESULT_TYPE, has_stale_result, stale_result
from batch_rotate.sim.inventory import CLOUD_PC, HOME_EDITION, eligible

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant

ROTATE_ROLES = frozenset(
    {
        "DeviceManagementManagedDevices.ReadWrite.All",
        "DeviceManagementManagedDevices.PrivilegedOperations.All",
    }
)
READ_ROLES = ROTATE_ROLES | {"DeviceManagementManagedDevices.Read.All"}
# Filters that name one device: always answered completely, even when listings omit devices.
_PRECISE = ("deviceName", "serialNumber", "azureADDeviceId", "userPrincipalName")
_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sim:{offset}".encode()).decode().rstrip("=")


def _offset(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return int(text.removeprefix("sim:")) if text.startswith("sim:") else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _clauses(flt: str) -> list[tuple[str, str]] | None:
    """`prop eq 'value'` clauses joined by `or`, with filterable props; None for anything else."""
    out = []
    for part in re.split(r"\s+or\s+", flt.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.fullmatch(part)
        if match is None:
            return None
        prop = next(
            (p for p in (*_PRECISE, "operatingSystem") if p.lower() == match[1].lower()), ""
        )
        if not prop:
            return None
        out.append((prop, match[2].replace("''", "'")))
    return out


def select(device: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
    fields = query.get("$select", [""])[0]
    if not fields:
        return device
    wanted = {"id", *(s.strip().lower() for s in fields.split(","))}
    return {k: v for k, v in device.items() if k.lower() in wanted}


class Devices:
    """The managedDevices collection and its rotate action, over the tenant's fleet."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant
        config = tenant.config
        self.omitted = frozenset(
            i
            for i in (range(len(tenant.fleet)) if config.listing_omit_share > 0 else ())
            if device_fraction(config.seed, "omit", tenant.fleet.id_at(i))
            < config.listing_omit_share
        )
        self._listed = (
            [i for i in range(len(tenant.fleet)) if i not in self.omitted] if self.omitted else None
        )
        # Accepted rotations not yet shown in deviceActionResults (action_visible_after_s):
        # device id (lower-case) -> (monotonic time it shows, the action result).
        self._late: dict[str, tuple[float, dict[str, Any]]] = {}
        self._seed_stale_results()
        self._seed_unsynced()
        self._seed_editions()

    def _seed_editions(self) -> None:
        """Devices that can never rotate though every other rule passes: Cloud PCs and Home
        editions (seeded shares of the otherwise eligible devices)."""
        cfg, fleet = self.t.config, self.t.fleet
        if cfg.cloud_pc_share <= 0 and cfg.home_edition_share <= 0:
            return
        for i in range(len(fleet)):
            device_id = fleet.id_at(i)
            if not eligible(fleet[i]):
                continue
            if device_fraction(cfg.seed, "cloudpc", device_id) < cfg.cloud_pc_share:
                changes: dict[str, Any] = CLOUD_PC
            elif device_fraction(cfg.seed, "home", device_id) < cfg.home_edition_share:
                changes = HOME_EDITION
            else:
                continue
            for prop, value in changes.items():
                fleet.set_property(device_id, prop, value)

    def _seed_unsynced(self) -> None:
        """Devices Intune has not seen for a month or more, before any request."""
        cfg, fleet = self.t.config, self.t.fleet
        if cfg.unsynced_share <= 0:
            return
        now = self.t.clock.now()
        for i in range(len(fleet)):
            device_id = fleet.id_at(i)
            if device_fraction(cfg.seed, "unsynced", device_id) < cfg.unsynced_share:
                days = 31 + 89 * device_fraction(cfg.seed, "unsynced-days", device_id)
                fleet.set_property(device_id, "lastSyncDateTime", iso(now - timedelta(days=days)))

    def _seed_stale_results(self) -> None:
        """Months-old failed rotate results that exist before any request (issue 10)."""
        cfg, fleet = self.t.config, self.t.fleet
        if cfg.stale_action_results_share <= 0:
            return
        now = self.t.clock.now()
        for i in range(len(fleet)):
            device_id = fleet.id_at(i)
            if has_stale_result(cfg.seed, cfg.stale_action_results_share, device_id):
                fleet.record_action(device_id, stale_result(cfg.seed, device_id, now))

    def not_found(self, device_id: str, crid: str) -> Answer:
        message = (
            '{\r\n  "_version": 3,\r\n  "Message": "Resource not found: '
            f"managedDevices('{device_id}')\"\r\n}}"
        )
        return self.t.error(404, "ResourceNotFound", message, crid)

    def get(self, device_id: str, query: dict[str, list[str]], crid: str) -> Answer:
        fleet = self.t.fleet
        self._show_if_due(device_id)
        device = fleet.get(device_id)
        if device is None:
            return self.not_found(device_id, crid)
        if self.t.escrow.advance(fleet, device):  # it checked in since the request
            device = fleet.get(device_id) or device
        return 200, {"Content-Type": "application/json"}, select(device, query)

    def _matches(self, flt: str) -> range | list[int]:
        """Indexes a `$filter` selects, with the omissions and `or` behaviour configured."""
        fleet, cfg = self.t.fleet, self.t.config
        broad: range | list[int] = self._listed if self._listed is not None else range(len(fleet))
        clauses = _clauses(flt) if flt else None
        if not clauses:
            return broad  # anything else is silently ignored, as Intune does (GRAPH_NOTES.md)
        if len(clauses) == 1:
            prop, value = clauses[0]
            found = fleet.find(prop, value)
            # A broad filter (operatingSystem) is a listing: it omits like one.
            return found if prop in _PRECISE else [i for i in found if i not in self.omitted]
        found = sorted({i for prop, value in clauses for i in fleet.find(prop, value)})
        return found[:1] if cfg.or_filter_first_match_only else found

    def list(self, version: str, query: dict[str, list[str]], crid: str) -> Answer:
        indexes = self._matches(query.get("$filter", [""])[0].strip())
        try:
            top = min(int(query.get("$top", [self.t.config.page_size])[0]), self.t.config.page_size)
        except ValueError:
            return self.t.error(400, "BadRequest", "Invalid $top value.", crid)
        if top < 1:
            return self.t.error(400, "BadRequest", "Invalid $top value.", crid)
        if query.get("$filter", [""])[0].strip() and self.t.config.filtered_page_size:
            top = min(top, self.t.config.filtered_page_size)
        skip = 0
        if "$skiptoken" in query:
            offset = _offset(query["$skiptoken"][0])
            if offset is None:
                return self.t.error(400, "BadRequest", "Invalid skip token.", crid)
            skip = offset
        base = self.t.base_url
        body: dict[str, Any] = {
            "@odata.context": f"{base}/{version}/$metadata#deviceManagement/managedDevices",
            "value": [select(self.t.fleet[i], query) for i in indexes[skip : skip + top]],
        }
        if skip + top < len(indexes):
            params = [f"$top={top}"]
            for name in ("$select", "$filter"):
                if name in query:
                    params.append(f"{name}={quote(query[name][0], safe=',')}")
            params.append(f"$skiptoken={_skiptoken(skip + top)}")
            body["@odata.nextLink"] = (
                f"{base}/{version}/deviceManagement/managedDevices?{'&'.join(params)}"
            )
        return 200, {"Content-Type": "application/json"}, body

    def rotate(
        self,
        version: str,
        device_id: str,
        roles: set[str],
        crid: str,
        window: int,
        *,
        claims: dict[str, Any] | None = None,
    ) -> Answer:
        t = self.t
        t.metrics.counts["rotate_calls"] += 1
        if version != "beta":
            # GRAPH_NOTES.md: the action exists in beta only.
            message = "Resource not found for the segment 'rotateBitLockerKeys'."
            return t.error(400, "BadRequest", message, crid)
        if not roles & ROTATE_ROLES:
            message = (
                "Application is not authorized to perform this operation. Application must have "
                "one of the following scopes: DeviceManagementManagedDevices.PrivilegedOperations"
                ".All, DeviceManagementManagedDevices.ReadWrite.All"
            )
            return t.error(403, "Authorization_RequestDenied", message, crid)
        refused = t.admin_roles.rotate_refused(claims or {}, crid)  # a user without an Intune role
        if refused is not None:
            return refused
        device = t.fleet.get(device_id)
        if device is None:
            return self.not_found(device_id, crid)
        if device["operatingSystem"] != "Windows":
            # The sim's assumption (undocumented in Graph): Intune refuses other platforms with 400.
            message = "Rotate BitLocker keys is not supported on this platform."
            return t.error(400, "BadRequest", message, crid)
        t.metrics.accepted_by_device[device["id"]] += 1
        t.metrics.accepted_windows[window] += 1
        previous = next(
            (a for a in device["deviceActionResults"] if a["actionName"] == "rotateBitLockerKeys"),
            None,
        )
        now = t.clock.iso()
        late = self._late.get(device["id"].lower())
        if late is not None:
            previous = late[1]  # accepted, not shown yet: still pending all the same
        # A rotate still pending keeps its start; any older result (done, failed) is replaced.
        still_pending = previous is not None and previous["actionState"] == "pending"
        action = {
            "@odata.type": ROTATE_RESULT_TYPE,
            "actionName": "rotateBitLockerKeys",
            "actionState": "pending",
            "startDateTime": previous["startDateTime"] if still_pending and previous else now,
            "lastUpdatedDateTime": now,
            "errorCode": 0,
        }
        delay_s = t.config.action_visible_after_s / t.config.time_scale
        if delay_s > 0:
            shows_at = late[0] if late is not None else time.monotonic() + delay_s
            self._late[device["id"].lower()] = (shows_at, action)
        else:
            t.fleet.record_action(device["id"], action)
        t.escrow.requested(device)
        return 204, {}, None

    def _show_if_due(self, device_id: str) -> None:
        """An accepted rotation appears in the device's action results once its delay passed,
        unless the device already acted on it (its check-in recorded the newer result)."""
        late = self._late.get(device_id.lower())
        if late is None or time.monotonic() < late[0]:
            return
        del self._late[device_id.lower()]
        device = self.t.fleet.get(device_id)
        if device is not None and device["id"] in self.t.escrow.pending:
            self.t.fleet.record_action(device["id"], late[1])
