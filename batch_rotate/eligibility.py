"""Pure decision: can a resolved device rotate its BitLocker keys, and if not, why.

Rules come from GRAPH_NOTES.md "Eligibility": Windows 10 1909 (10.0.18363) or later, Entra joined
or hybrid joined with an Entra device id, and managed by Intune MDM. Eligible co-managed devices
(Configuration Manager and Intune) are flagged, not refused: see `comanaged_note` (resolution
stores the flag with the device; the journal writes it to the device's planned row).
"""

from __future__ import annotations

import re

from batch_rotate.models import Device

MIN_WINDOWS_BUILD = (10, 0, 18363)
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"
_VERSION = re.compile(r"^\s*(\d+)\.(\d+)\.(\d+)")


def ineligibility(device: Device) -> str | None:
    """Why this device cannot rotate (a reason code and plain words), or None if it can."""
    os_name = device.os.strip().lower()
    if os_name != "windows":
        return (
            f"not_windows: operating system is {device.os or 'unknown'}; "
            "BitLocker key rotation exists only for Windows"
        )
    if device.join_type.lower() == "azureadregistered":
        return (
            "entra_registered_only: the device is Entra registered, not joined; only Entra joined "
            "or hybrid joined devices can escrow a rotated key"
        )
    if not device.entra_device_id or device.entra_device_id.lower() == _ZERO_GUID:
        return (
            "no_entra_device_id: the device has no Entra device id, so a new key cannot be "
            "escrowed; join it to Entra ID (or complete hybrid join) first"
        )
    match = _VERSION.match(device.os_version)
    if match and tuple(int(part) for part in match.groups()) < MIN_WINDOWS_BUILD:
        return (
            f"os_too_old: Windows {device.os_version} is older than 10.0.18363 (1909); "
            "update the device first"
        )
    agent = device.management_agent.lower()
    if agent and "mdm" not in agent and "intune" not in agent:
        return (
            f"not_intune_managed: management agent is {device.management_agent}; "
            "rotation is an Intune MDM action"
        )
    return None


COMANAGED_NOTE = (
    "comanaged: managed with Configuration Manager and Intune ({agent}); the tool sends the "
    "managedDevices rotate action, which Intune applies when the device's Endpoint Protection "
    "workload is moved to Intune: check the Endpoint Protection workload is moved to Intune"
)


def comanaged_note(device: Device) -> str | None:
    """The plan's flag for an eligible co-managed device, or None (GRAPH_NOTES.md "Co-managed").

    Graph also documents `comanagedDevices/{id}/rotateBitLockerKeys`; which path such devices need
    is undocumented, so the tool keeps the one documented rotate path and tells the admin the
    condition under which Intune (not Configuration Manager) owns BitLocker on the device.
    """
    agent = device.management_agent
    if "configurationmanager" not in agent.lower() or ineligibility(device) is not None:
        return None
    return COMANAGED_NOTE.format(agent=agent)
