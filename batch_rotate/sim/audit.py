"""`GET /v1.0/auditLogs/directoryAudits`: the filters Graph documents, paging, and the
Entra logs throttles (5 requests per 10 s per app and tenant; 122 per 10 s per app across the
cloud's tenants), over the events in sim/targeting.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from batch_rotate.sim.clock import Answer
from batch_rotate.sim.cloudspec import AUDIT_WINDOW_S
from batch_rotate.sim.throttling import SlidingLimit

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant

AUDIT_ROLES = frozenset({"AuditLog.Read.All"})
_CLAUSE = re.compile(
    r"\s*([\w/]+)\s+(eq|ge|le)\s+('(?:[^']|'')*'|\d{4}-\d\d-\d\dT[\d:.]+Z)\s*", re.IGNORECASE
)
_FIELDS = {
    "activitydisplayname": lambda r: r["activityDisplayName"],
    "activitydatetime": lambda r: r["activityDateTime"],
    "initiatedby/user/userprincipalname": lambda r: (r["initiatedBy"]["user"] or {}).get(
        "userPrincipalName", ""
    ),
    "initiatedby/app/appid": lambda r: (r["initiatedBy"]["app"] or {}).get("appId", ""),
}


def _parse(flt: str) -> list[tuple[str, str, str]] | None:
    """`and`-joined clauses on filterable fields; None for anything Graph would refuse."""
    out = []
    for part in re.split(r"\s+and\s+", flt.strip(), flags=re.IGNORECASE) if flt.strip() else []:
        match = _CLAUSE.fullmatch(part)
        if match is None or match[1].lower() not in _FIELDS:
            return None
        value = match[3]
        value = value[1:-1].replace("''", "'") if value.startswith("'") else value
        out.append((match[1].lower(), match[2].lower(), value))
    return out


def _matches(record: dict[str, Any], clauses: list[tuple[str, str, str]]) -> bool:
    for name, op, value in clauses:
        got = str(_FIELDS[name](record) or "")
        if name == "activitydatetime":  # ISO strings compare in time order at equal precision
            got, value = got[:19], value[:19]
        elif op == "eq":
            got, value = got.lower(), value.lower()
        if not {"eq": got == value, "ge": got >= value, "le": got <= value}[op]:
            return False
    return True


class DirectoryAudits:
    """The audit listing; throttled per app like Entra's logs and reports APIs."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant
        cfg = tenant.config
        limit = cfg.targeting.audit_limit if cfg.targeting is not None else 0
        self._limit = SlidingLimit(limit, AUDIT_WINDOW_S / cfg.time_scale)

    def _throttled(self, app: str) -> tuple[float, str] | None:
        """(seconds to wait, counter) when the app used its 5 requests in the last 10 s in this
        tenant, or its 122 across every tenant; a refused request counts in neither."""
        shared = self.t.shared.app_audits
        for limit, counter in ((self._limit, "audit_throttled"), (shared, "app_audit_throttled")):
            wait = limit.wait(app)
            if wait is not None:
                return wait, counter
        self._limit.record(app)
        shared.record(app)
        return None

    def list(
        self, version: str, query: dict[str, list[str]], claims: dict[str, Any], crid: str
    ) -> Answer:
        t = self.t
        granted = set(claims.get("roles") or []) | set(str(claims.get("scp", "")).split())
        if not granted & AUDIT_ROLES:
            message = (
                "Calling principal does not have required MSGraph permissions AuditLog.Read.All"
            )
            return t.error(403, "Authentication_MSGraphPermissionMissing", message, crid)
        targeting = t.targeting
        if targeting is None:
            return 200, {"Content-Type": "application/json"}, {"value": []}
        throttled = self._throttled(str(claims.get("appid")))
        if throttled is not None:
            wait, counter = throttled
            t.metrics.counts[counter] += 1
            status, headers, error = t.error(429, "TooManyRequests", "Too many requests.", crid)
            headers["Retry-After"] = str(max(1, round(wait + 0.5)))
            return status, headers, error
        t.metrics.counts["audit_requests"] += 1
        clauses = _parse(query.get("$filter", [""])[0])
        if clauses is None:
            message = "Invalid filter clause: the property or operator is not supported."
            return t.error(400, "BadRequest", message, crid)
        try:
            top = int(query.get("$top", [str(targeting.config.audit_page_size)])[0])
            skip = int(query.get("$skiptoken", ["0"])[0])
        except ValueError:
            return t.error(400, "BadRequest", "Invalid $top or $skiptoken value.", crid)
        top = max(1, min(top, targeting.config.audit_page_size))
        found = [e.record for e in targeting.retained() if _matches(e.record, clauses)]
        root = f"{t.base_url}/{version}/auditLogs/directoryAudits"
        body: dict[str, Any] = {
            "@odata.context": f"{t.base_url}/{version}/$metadata#auditLogs/directoryAudits",
            "value": found[skip : skip + top],
        }
        if skip + top < len(found):
            flt = query.get("$filter", [""])[0].replace(" ", "%20").replace("'", "%27")
            body["@odata.nextLink"] = f"{root}?$top={top}&$filter={flt}&$skiptoken={skip + top}"
        return 200, {"Content-Type": "application/json"}, body
