"""Which Graph permissions grant what batch-rotate needs, as Entra spells them (pure).

A token carries Entra's spelling (`BitlockerKey.ReadBasic.All`, lower-case "l") while prose pages
write "BitLocker": names compare case-insensitively, and a broader documented permission counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Needed permission (least privileged, Entra's spelling) -> the documented permissions that grant
# it, least privileged first. Sources: each API's generated permission table in
# microsoft-graph-docs-contrib (api-reference/v1.0/includes/permissions/*-permissions.md) and the
# "(from least to most privileged)" tables of the Intune pages; GRAPH_NOTES.md "Second pass".
INCLUDED_IN: dict[str, tuple[str, ...]] = {
    # intune-devices-manageddevice-list / -get: Read.All, ReadWrite.All
    "DeviceManagementManagedDevices.Read.All": (
        "DeviceManagementManagedDevices.Read.All",
        "DeviceManagementManagedDevices.ReadWrite.All",
    ),
    # beta intune-devices-manageddevice-rotatebitlockerkeys: ReadWrite.All only
    "DeviceManagementManagedDevices.ReadWrite.All": (
        "DeviceManagementManagedDevices.ReadWrite.All",
    ),
    # bitlocker-list-recoverykeys, bitlockerrecoverykey-get: ReadBasic.All, then Read.All
    # (microsoft-graph-docs issue 12324 for the spelling)
    "BitlockerKey.ReadBasic.All": ("BitlockerKey.ReadBasic.All", "BitlockerKey.Read.All"),
    # group-list-transitivemembers: GroupMember.Read.All; higher Directory.Read.All,
    # Group.Read.All, Group.ReadWrite.All, GroupMember.ReadWrite.All (Directory.ReadWrite.All
    # includes Directory.Read.All)
    "GroupMember.Read.All": (
        "GroupMember.Read.All",
        "Group.Read.All",
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ),
    # device-list / device-get: Device.Read.All; higher Device.ReadWrite.All, Directory.Read.All,
    # Directory.ReadWrite.All
    "Device.Read.All": (
        "Device.Read.All",
        "Device.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ),
    # directoryaudit-list: "AuditLog.Read.All and Directory.Read.All", higher: not available
    "AuditLog.Read.All": ("AuditLog.Read.All",),
    "Directory.Read.All": ("Directory.Read.All", "Directory.ReadWrite.All"),
}
# The directory-audit table lists Directory.Read.All beside AuditLog.Read.All; whether Graph
# refuses the audit read without it is unclear (apps read it with AuditLog.Read.All alone), so
# the pre-flight warns about it rather than stopping.
AUDIT_ALSO = "Directory.Read.All"


def granted(token_claims: Mapping[str, Any]) -> frozenset[str]:
    """The token's application (`roles`) and delegated (`scp`) permissions, lower-cased."""
    roles = token_claims.get("roles") or []
    names = [str(r) for r in roles] if isinstance(roles, list) else []
    names += str(token_claims.get("scp") or "").split()
    return frozenset(name.strip().lower() for name in names if name.strip())


def granting(permission: str) -> tuple[str, ...]:
    """The permission (in Entra's spelling when the table knows it) and those that include it."""
    for needed, including in INCLUDED_IN.items():
        if needed.lower() == permission.strip().lower():
            return including
    return (permission.strip(),)


def holds(held: Iterable[str], permission: str) -> bool:
    """True when `held` (any case) has `permission` or a documented one that includes it."""
    have = {name.lower() for name in held}
    return any(name.lower() in have for name in granting(permission))
