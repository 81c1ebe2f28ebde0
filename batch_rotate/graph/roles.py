"""Can the signed-in admin rotate? For delegated tokens Graph acts as the user, who also needs an
Entra or Intune role (GRAPH_NOTES.md, "Intune RBAC for delegated rotation"). Two reads, each
optional: a read Graph refuses never blocks the run; the check says what it could not see.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batch_rotate.graph.client import GraphClient, GraphResponse
from batch_rotate.graph.errors import TransportError

ROTATE_PERMISSIONS = frozenset(
    {
        "DeviceManagementManagedDevices.ReadWrite.All",
        "DeviceManagementManagedDevices.PrivilegedOperations.All",
    }
)
ROTATE_ACTION = "Microsoft.Intune_RemoteTasks_RotateBitLockerKeys"
# Entra built-in role template ids (immutable across tenants): both hold every Intune permission.
ADMIN_ROLES = {
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
}
# `me/transitiveMemberOf` works with User.Read, but then directoryRole objects come back with
# only `id` and `@odata.type` ("limited information"): their template id needs this one.
DIRECTORY_READ = "RoleManagement.Read.Directory"
RBAC_READ = "DeviceManagementRBAC.Read.All"
DIRECTORY_ROLES_PATH = "me/transitiveMemberOf/microsoft.graph.directoryRole"
EFFECTIVE_PERMISSIONS_PATH = "deviceManagement/getEffectivePermissions(scope='*')"
_MAX_PAGES = 20
FIX = "assign one in Intune > Tenant administration > Roles"


@dataclass(frozen=True, slots=True)
class RoleCheck:
    """What the reads showed: the role that grants rotation, or why a source could not tell."""

    user: str
    granted_by: str = ""
    unchecked: tuple[str, ...] = ()

    @property
    def denied(self) -> bool:
        """Every source answered, and none grants rotation."""
        return not self.granted_by and not self.unchecked

    def denial(self, tenant_id: str) -> str:
        return (
            f"the signed-in admin {self.user} has neither the Intune Administrator role nor an "
            f"Intune role with 'Rotate BitLocker keys' ({ROTATE_ACTION}) in tenant {tenant_id}; "
            f"{FIX} (or activate an eligible Intune Administrator role in PIM), then run again; "
            "no rotation was sent"
        )

    def warning(self) -> str:
        return (
            f"could not check that the signed-in admin {self.user} holds a role that may rotate "
            f"BitLocker keys ({'; '.join(self.unchecked)}); going on: Graph decides per device, "
            "and a device answered 403 means the role is missing"
        )


def is_delegated(token_claims: dict[str, Any]) -> bool:
    """A user's token: `scp` and no `roles`."""
    return bool(token_claims.get("scp")) and not token_claims.get("roles")


def user_of(token_claims: dict[str, Any]) -> str:
    return str(
        token_claims.get("upn") or token_claims.get("preferred_username") or "the signed-in user"
    )


async def check_rotate_role(graph: GraphClient, user: str) -> RoleCheck:
    """Directory roles first (one page for most admins), then Intune's effective permissions."""
    unchecked: list[str] = []
    granted, why = await _directory_admin(graph)
    if granted:
        return RoleCheck(user, granted_by=f"the Entra role {granted}")
    if why:
        unchecked.append(why)
    granted, why = await _intune_permission(graph)
    if granted:
        return RoleCheck(user, granted_by=granted)
    if why:
        unchecked.append(why)
    return RoleCheck(user, unchecked=tuple(unchecked))


async def _directory_admin(graph: GraphClient) -> tuple[str, str]:
    """(the admin role held, "") or ("", why the roles could not be read); ("", "") for none."""
    path = f"{DIRECTORY_ROLES_PATH}?$select=id,displayName,roleTemplateId"
    for _ in range(_MAX_PAGES):
        response = await _get(graph, path, "v1.0")
        if (
            isinstance(response, str)
            or response.status != 200
            or not isinstance(response.body, dict)
        ):
            return "", _refused(f"GET /v1.0/{DIRECTORY_ROLES_PATH}", response, DIRECTORY_READ)
        roles = [r for r in response.body.get("value") or [] if isinstance(r, dict)]
        for role in roles:
            name = ADMIN_ROLES.get(str(role.get("roleTemplateId") or "").lower())
            if name:
                return name, ""
        if any(not role.get("roleTemplateId") for role in roles):
            return "", (
                f"the directory roles came back without their template ids (Graph gives only "
                f"limited information without the delegated permission {DIRECTORY_READ}; grant "
                "it to let the check see them)"
            )
        path = str(response.body.get("@odata.nextLink") or "")
        if not path:
            return "", ""
    return "", "the directory role listing did not end; it was not read to the end"


async def _intune_permission(graph: GraphClient) -> tuple[str, str]:
    """("an Intune role ...", "") when the effective permissions allow the rotate action."""
    response = await _get(graph, EFFECTIVE_PERMISSIONS_PATH, "beta")
    where = "GET /beta/deviceManagement/getEffectivePermissions"
    if isinstance(response, str) or response.status != 200:
        return "", _refused(where, response, RBAC_READ)
    body = response.body if isinstance(response.body, dict) else {}
    allowed: list[str] = []
    refused: list[str] = []
    for permission in body.get("value") or []:
        if not isinstance(permission, dict):
            continue
        allowed += _strings(permission.get("actions"))
        for action in permission.get("resourceActions") or []:
            if isinstance(action, dict):
                allowed += _strings(action.get("allowedResourceActions"))
                refused += _strings(action.get("notAllowedResourceActions"))
    if _matches(allowed) and not _matches(refused):
        return f"an Intune role allowing {ROTATE_ACTION}", ""
    return "", ""


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _matches(patterns: Iterable[str]) -> bool:
    """Intune answers "*" (administrators) or action names, possibly with wildcards."""
    return any(fnmatch.fnmatchcase(ROTATE_ACTION.lower(), p.lower()) for p in patterns)


async def _get(graph: GraphClient, path: str, version: str) -> GraphResponse | str:
    try:
        return await graph.request("GET", path, version=version)
    except TransportError as exc:  # a check that cannot be made is not a reason to stop
        return str(exc)


def _refused(where: str, response: GraphResponse | str, permission: str) -> str:
    if isinstance(response, str):
        return f"{where}: {response}"
    error = response.body.get("error") if isinstance(response.body, dict) else None
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    shown = f"{response.status} {code}".strip()
    if response.status == 403:
        return (
            f"{where} was refused ({shown}): the app lacks the delegated permission "
            f"{permission}; grant it and consent to let batch-rotate check the role"
        )
    return f"{where} answered {shown}"
