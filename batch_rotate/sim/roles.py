"""The signed-in admins' roles: Entra directory roles (`me/transitiveMemberOf`) and Intune RBAC
(`deviceManagement/getEffectivePermissions`), and the rotate action's role check for delegated
tokens. `SimConfig.user_roles` (or `SimTenant.set_user_roles`) gives each user role names.
"""

from __future__ import annotations

import fnmatch
import uuid
from typing import TYPE_CHECKING, Any

from batch_rotate.sim.clock import Answer

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant

ROTATE_ACTION = "Microsoft.Intune_RemoteTasks_RotateBitLockerKeys"
# Entra built-in roles by display name -> template id (the ids are the same in every tenant).
DIRECTORY_ROLES = {
    "Intune Administrator": "3a2c62db-5318-420d-8d74-23affee5d9d5",
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
}
_ALL_INTUNE = ("Intune Administrator", "Global Administrator")
# Intune built-in roles (and one custom role) -> allowed resource actions, abridged.
INTUNE_ROLES = {
    "Help Desk Operator": [
        "Microsoft.Intune_ManagedDevices_Read",
        "Microsoft.Intune_RemoteTasks_*",
    ],
    "Endpoint Security Manager": [
        "Microsoft.Intune_ManagedDevices_Read",
        ROTATE_ACTION,
    ],
    "Read Only Operator": ["Microsoft.Intune_ManagedDevices_Read"],
    "BitLocker Rotators": ["Microsoft.Intune_ManagedDevices_Read", ROTATE_ACTION],  # custom
}
# `me/transitiveMemberOf` (least User.Read); a directoryRole's properties need a role read.
MEMBER_OF_SCOPES = frozenset(
    {
        "User.Read",
        "User.Read.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Group.Read.All",
        "GroupMember.Read.All",
    }
)
ROLE_READ_SCOPES = frozenset(
    {
        "RoleManagement.Read.Directory",
        "RoleManagement.ReadWrite.Directory",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
RBAC_SCOPES = frozenset({"DeviceManagementRBAC.Read.All", "DeviceManagementRBAC.ReadWrite.All"})


class AdminRoles:
    """Role names per user (lower-cased UPN); None: every user is an Intune Administrator."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant
        configured = tenant.config.user_roles
        self.by_user: dict[str, list[str]] | None = (
            None if configured is None else {u.lower(): list(r) for u, r in configured.items()}
        )

    def set(self, upn: str, roles: list[str]) -> None:
        if self.by_user is None:
            self.by_user = {}
        self.by_user[upn.lower()] = list(roles)

    def of(self, upn: str) -> list[str]:
        if self.by_user is None:
            return ["Intune Administrator"]
        return self.by_user.get(upn.lower(), [])

    def allowed_actions(self, upn: str) -> list[str]:
        roles = self.of(upn)
        if any(r in _ALL_INTUNE for r in roles):
            return ["*"]
        return [a for r in roles for a in INTUNE_ROLES.get(r, [])]

    def may_rotate(self, upn: str) -> bool:
        return any(fnmatch.fnmatchcase(ROTATE_ACTION, a) for a in self.allowed_actions(upn))

    def _denied(self, crid: str, scopes: str) -> Answer:
        return self.t.error(
            403,
            "Authorization_RequestDenied",
            "Application is not authorized to perform this operation. Application must have one "
            f"of the following scopes: {scopes}",
            crid,
        )

    def member_of(self, version: str, claims: dict[str, Any], crid: str) -> Answer:
        """`me/{transitiveMemberOf,memberOf}[/microsoft.graph.directoryRole]`: roles only here."""
        self.t.metrics.counts["role_reads"] += 1
        upn = str(claims.get("upn") or "")
        if not upn:
            message = "/me request is only valid with delegated authentication flow."
            return self.t.error(400, "BadRequest", message, crid)
        scopes = set(str(claims.get("scp") or "").split())
        if not scopes & MEMBER_OF_SCOPES:
            return self.t.error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
                crid,
            )
        full = bool(scopes & ROLE_READ_SCOPES)
        value = []
        for name in self.of(upn):
            template = DIRECTORY_ROLES.get(name)
            if template is None:
                continue
            role: dict[str, Any] = {
                "@odata.type": "#microsoft.graph.directoryRole",
                "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{self.t.config.tenant_id}:{template}")),
                "displayName": None,
                "description": None,
                "roleTemplateId": None,
            }
            if full:  # else "limited information": type and id only
                role.update(displayName=name, description=f"{name} (sim)", roleTemplateId=template)
            value.append(role)
        context = f"{self.t.base_url}/{version}/$metadata#directoryObjects"
        return 200, {}, {"@odata.context": context, "value": value}

    def effective_permissions(self, claims: dict[str, Any], crid: str) -> Answer:
        """`deviceManagement/getEffectivePermissions(scope='…')`: delegated only."""
        self.t.metrics.counts["role_reads"] += 1
        upn = str(claims.get("upn") or "")
        scopes = set(str(claims.get("scp") or "").split())
        if not upn or not scopes & RBAC_SCOPES:
            return self._denied(crid, ", ".join(sorted(RBAC_SCOPES)))
        actions = self.allowed_actions(upn)
        value = []
        if actions:
            value.append(
                {
                    "actions": actions,
                    "resourceActions": [
                        {"allowedResourceActions": actions, "notAllowedResourceActions": []}
                    ],
                }
            )
        return 200, {}, {"value": value}

    def rotate_refused(self, claims: dict[str, Any], crid: str) -> Answer | None:
        """For a user's token without an Intune role that allows rotation: Intune's 403.

        The exact body Intune sends is undocumented; the sim's guess is code `Forbidden`.
        """
        upn = str(claims.get("upn") or "")
        if not upn or claims.get("roles") or self.may_rotate(upn):
            return None
        self.t.metrics.counts["rotate_refused_rbac"] += 1
        return self.t.error(
            403,
            "Forbidden",
            f"The user {upn} is not authorized to perform {ROTATE_ACTION}: no Intune role "
            "assignment grants it.",
            crid,
        )
