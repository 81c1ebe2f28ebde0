"""Error codes a rotation can end with, and what an administrator should do about each (pure).

Two families: HRESULTs a device reports in its BitLocker action result (GRAPH_NOTES.md
"Observing the outcome later", "Where a real tenant differs"), and Graph error codes of a refused
rotate request. One table each, so the report, `verify` and the console can say the same thing.
"""

from __future__ import annotations

import re

NO_ERROR_CODE = "the device reported failure without an error code"

# HRESULT -> (symbolic name, cause, fix). The 0x803100DA..0x803100E1 rows are the BitLocker
# key-rotation family; their symbolic names are those of winerror.h (Windows SDK, FACILITY_FVE),
# the causes follow their MessageText and GRAPH_NOTES.md "Second pass".
HRESULTS: dict[int, tuple[str, str, str]] = {
    0x803100DA: (
        "FVE_E_AD_BACKUP_REQUIRED_POLICY_NOT_SET_OS_DRIVE",
        "recovery information backup to Entra ID is not Required (OS drive)",
        "set 'Save BitLocker recovery information to Entra ID' and 'Do not enable BitLocker "
        "until recovery information is stored' to Required for OS drives",
    ),
    0x803100DB: (
        "FVE_E_AD_BACKUP_REQUIRED_POLICY_NOT_SET_FIXED_DRIVE",
        "recovery information backup to Entra ID is not Required (fixed drives)",
        "set the same backup policy to Required for fixed data drives",
    ),
    0x803100DC: (
        "FVE_E_AD_BACKUP_REQUIRED_POLICY_NOT_SET_REMOVABLE_DRIVE",
        "recovery information backup to Entra ID is not Required (removable drives)",
        "set the same backup policy to Required for removable data drives, or decrypt the "
        "removable drive",
    ),
    0x803100DD: (
        "FVE_E_KEY_ROTATION_NOT_SUPPORTED",
        "the device's Windows does not support recovery password rotation",
        "update the device to Windows 10 1909 or later (Pro, Enterprise or Education)",
    ),
    0x803100DE: (
        "FVE_E_EXECUTE_REQUEST_SENT_TOO_SOON",
        "the device refused a rotation requested too soon after the previous one",
        "wait for the previous rotation to finish, then rotate again later",
    ),
    0x803100DF: (
        "FVE_E_KEY_ROTATION_NOT_ENABLED",
        "client-driven recovery password rotation is not enabled on the device",
        "enable 'Client-driven recovery password rotation' in the BitLocker policy (Entra "
        "joined and hybrid joined devices), let the device sync, then rotate again",
    ),
    0x803100E0: (
        "FVE_E_DEVICE_NOT_JOINED",
        "the device is not Entra joined or hybrid joined, so it cannot escrow a new key",
        "join the device to Entra ID (or hybrid join it); registered devices cannot rotate",
    ),
    0x803100E1: (
        "FVE_E_AAD_ENDPOINT_BUSY",
        "the Entra ID backup endpoint was busy",
        "rotate again later",
    ),
    0x80310059: (
        "FVE_E_VOLUME_HANDLE_OPEN",
        "another BitLocker operation was in progress",
        "rotate again later",
    ),
    0x80310008: ("FVE_E_NOT_ACTIVATED", "BitLocker is not enabled on the drive", "enable it"),
    0x80310000: ("FVE_E_LOCKED_VOLUME", "the drive is locked", "unlock it, then rotate again"),
    0x8031004A: (
        "FVE_E_NOT_ON_STACK",
        "BitLocker's system components are missing or damaged on the device",
        "repair Windows (Startup Repair, or sfc /scannow and DISM /RestoreHealth), restart, "
        "then rotate again",
    ),
    0x8000FFFF: (
        "E_UNEXPECTED",
        "the device hit an unexpected failure while rotating",
        "restart the device, check the BitLocker-API event log, then rotate again",
    ),
    0x80310012: (
        "FVE_E_SYSTEM_VOLUME",
        "the rotation targeted the system (boot) partition, which BitLocker does not protect",
        "check that the OS drive itself is encrypted and has a recovery password protector",
    ),
    0x8031002D: (
        "FVE_E_CANNOT_SET_FVEK_ENCRYPTED",
        "the encryption method in policy differs from the one the drive was encrypted with",
        "align the Intune encryption method (XTS-AES 128/256) with the drive, or decrypt and "
        "re-encrypt the drive",
    ),
    0x80070490: (
        "ERROR_NOT_FOUND",
        "element not found (no recovery password protector)",
        "add a recovery password protector",
    ),
    0x80070057: (
        "E_INVALIDARG",
        "the device rejected a parameter of the rotation",
        "check the BitLocker policy on the device (recovery password allowed, drive encrypted)",
    ),
    0x80004005: ("E_FAIL", "unspecified failure", "check the device's BitLocker event log"),
    0x80090029: (
        "NTE_NOT_SUPPORTED",
        "operation not supported",
        "the device cannot rotate (edition or TPM)",
    ),
}

# Graph error code of a refused rotate request -> (cause, fix)
GRAPH_CODES: dict[str, tuple[str, str]] = {
    "toomanyrequests": (
        "Graph throttled the request and the retries ran out",
        "resume the run later, or lower --write-budget",
    ),
    "resourcenotfound": (
        "the device is no longer in Intune (deleted or retired since it was resolved)",
        "check the device in Intune; nothing to rotate if it is gone",
    ),
    "notfound": (
        "the device is no longer in Intune (deleted or retired since it was resolved)",
        "check the device in Intune; nothing to rotate if it is gone",
    ),
    "forbidden": (
        "the app is not allowed to rotate this device",
        "grant DeviceManagementManagedDevices.ReadWrite.All with admin consent, and check "
        "Intune scope tags and RBAC for the app",
    ),
    "authorization_requestdenied": (
        "the app's permissions do not cover the rotate action",
        "grant DeviceManagementManagedDevices.ReadWrite.All with admin consent",
    ),
    "unauthorized": (
        "the access token was refused",
        "check the app's credentials and tenant, then resume the run",
    ),
    "badrequest": (
        "Graph refused the request as malformed or not applicable to this device",
        "check that the device is a Windows device managed by Intune; see the message column",
    ),
    "internalservererror": ("a Graph service error persisted", "resume the run later"),
    "serviceunavailable": ("Graph was unavailable and the retries ran out", "resume later"),
}

_UNKNOWN = ("unknown error", "see the message column and the device's BitLocker event log")
_UNKNOWN_HRESULT = (
    "an error code this tool does not know",
    "look the code up in the device's BitLocker-API event log (Applications and Services Logs > "
    "Microsoft > Windows > BitLocker-API)",
)


def hresult_hex(code: int) -> str:
    """The conventional 0xXXXXXXXX form of a (possibly signed Int32) HRESULT."""
    return f"0x{code & 0xFFFFFFFF:08X}"


def parse_hresult(text: str) -> int | None:
    """An HRESULT from '0x8031004A' or a signed/unsigned decimal string, else None."""
    text = text.strip()
    if re.fullmatch(r"0[xX][0-9a-fA-F]{1,8}", text):
        return int(text, 16)
    if re.fullmatch(r"-?\d{1,10}", text):
        value = int(text)
        if -(2**31) <= value < 2**32:
            return value & 0xFFFFFFFF
    return None


def describe_hresult(code: int) -> tuple[str, str]:
    """(cause, fix) for a device's HRESULT; 0 on a failed action says so plainly."""
    code &= 0xFFFFFFFF
    if code == 0:
        return NO_ERROR_CODE, "check the device's BitLocker-API event log, then rotate again"
    known = HRESULTS.get(code)
    if known is None:
        return _UNKNOWN_HRESULT
    name, cause, fix = known
    return (f"{cause} ({name})" if name else cause), fix


def describe_graph_error(code: str, http_status: int | None = None) -> tuple[str, str]:
    """(cause, fix) for a Graph error code of a refused request, falling back on its status."""
    known = GRAPH_CODES.get(code.strip().lower())
    if known is not None:
        return known
    by_status = {
        400: "badrequest",
        401: "unauthorized",
        403: "forbidden",
        404: "resourcenotfound",
        429: "toomanyrequests",
        500: "internalservererror",
        503: "serviceunavailable",
    }
    if http_status in by_status:
        return GRAPH_CODES[by_status[http_status]]
    return _UNKNOWN
