"""Pure decision: can a resolved device rotate its BitLocker keys, and if not, why.

Rules come from GRAPH_NOTES.md "Eligibility": Windows 10 1909 (10.0.18363) or later, not a Windows
365 Cloud PC nor a Home edition, Entra joined or hybrid joined with an Entra device id, and managed
by Intune MDM. Eligible co-managed devices
(Configuration Manager and Intune) are flagged, not refused: see `comanaged_note` (resolution
stores the flag with the device; the journal writes it to the device's planned row).
"""

from __future__ import annotations

import functools
import re

from batch_rotate.models import Device

MIN_WINDOWS_BUILD = (10, 0, 18363)
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"
_VERSION = re.compile(r"^\s*(\d+)\.(\d+)\.(\d+)")
# GetProductInfo product types (sysinfoapi.h / winnt.h) of Windows Home: PRODUCT_CORE_N 0x62,
# PRODUCT_CORE_COUNTRYSPECIFIC 0x63, PRODUCT_CORE_SINGLELANGUAGE 0x64, PRODUCT_CORE 0x65.
HOME_SKU_NUMBERS = frozenset({98, 99, 100, 101})
_HOME_FAMILIES = frozenset({"core", "home"})


def cloud_pc(device: Device) -> bool:
    """A Windows 365 Cloud PC, from the fields Intune gives every managed device.

    Assumed (GRAPH_NOTES.md "Second pass"): the beta `deviceType` enum documents `cloudPC`, and
    Intune names a Cloud PC's `model` "Cloud PC <plan> <vCPU>/<RAM>/<disk>" (as the admin center
    shows it). The Windows 365 `cloudPCs` list's `managedDeviceId` would be authoritative, but
    needs CloudPC.Read.All and a read more: a Cloud PC either field misses still fails on the
    device (it has no BitLocker), costing one rotation, never a wrong verdict.
    """
    return (
        device.device_type.strip().lower() == "cloudpc"
        or device.model.strip().lower().startswith("cloud pc")
    )


def home_edition(device: Device) -> bool:
    """Windows Home: `skuNumber` is GetProductInfo's product type (documented on the beta
    managedDevice); `skuFamily` is free text, so only "Core"/"Home" (assumed) count there."""
    number = device.sku_number.strip()
    if number.isdigit() and int(number) in HOME_SKU_NUMBERS:
        return True
    return device.sku_family.strip().lower() in _HOME_FAMILIES


def ineligibility(device: Device) -> str | None:
    """Why this device cannot rotate (a reason code and plain words), or None if it can.

    Decided once per distinct combination of the fields the rules read (a fleet has a few
    hundred): a million listed devices are each checked (issue 23)."""
    entra = device.entra_device_id
    return _decided(
        device.os,
        device.device_type,
        device.model,
        device.sku_family,
        device.sku_number,
        device.join_type,
        "" if not entra or entra.lower() == _ZERO_GUID else "present",
        device.os_version,
        device.management_agent,
    )


@functools.lru_cache(maxsize=4096)
def _decided(
    os: str,
    device_type: str,
    model: str,
    sku_family: str,
    sku_number: str,
    join_type: str,
    entra_device_id: str,
    os_version: str,
    management_agent: str,
) -> str | None:
    """`ineligibility` of a device with these fields (every one it reads)."""
    return _ineligible(
        Device(
            id="",
            os=os,
            device_type=device_type,
            model=model,
            sku_family=sku_family,
            sku_number=sku_number,
            join_type=join_type,
            entra_device_id=entra_device_id,
            os_version=os_version,
            management_agent=management_agent,
        )
    )


def _ineligible(device: Device) -> str | None:
    os_name = device.os.strip().lower()
    if os_name != "windows":
        return (
            f"not_windows: operating system is {device.os or 'unknown'}; "
            "BitLocker key rotation exists only for Windows"
        )
    if cloud_pc(device):
        shown = device.model or "deviceType cloudPC"
        return (
            f"cloud_pc: the device is a Windows 365 Cloud PC ({shown}); Cloud PCs do not support "
            "BitLocker (the service encrypts their disks), so there is no recovery key to rotate"
        )
    if home_edition(device):
        shown = device.sku_family or f"SKU {device.sku_number}"
        return (
            f"windows_home: the device runs a Windows Home edition ({shown}), which Intune cannot "
            "manage BitLocker on; rotation needs Pro, Enterprise or Education: upgrade the edition"
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
