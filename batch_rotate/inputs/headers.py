"""The one table of identifier headers seen in real device lists; how a column's kind is decided.

Headers compare case-insensitively after stripping the ends; inner spaces are significant ("Device
ID" in the Intune export is the Intune id, "deviceId" is decided by the columns beside it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batch_rotate.models import IdKind


@dataclass(frozen=True, slots=True)
class KnownHeader:
    """A header as some export writes it, what it holds, and which export writes it."""

    text: str
    kind: IdKind | None  # None: what it holds depends on the columns beside it (see `interpret`)
    source: str


_INTUNE_UI = "Intune admin center, Devices > All devices export"
_GRAPH = "Microsoft Graph managedDevice property (Graph Explorer, scripts)"
_MG_PS = "Graph PowerShell Get-MgDeviceManagementManagedDevice | Export-Csv"
_LOG_ANALYTICS = "Log Analytics IntuneDevices table"
_ENTRA_UI = "Entra admin center, Devices > Download devices"

KNOWN_HEADERS: tuple[KnownHeader, ...] = (
    KnownHeader("Device ID", IdKind.INTUNE_ID, _INTUNE_UI),
    KnownHeader("id", IdKind.INTUNE_ID, f"{_GRAPH}; {_MG_PS} (Id); not in an Entra list"),
    KnownHeader("managedDeviceId", IdKind.INTUNE_ID, "Graph Autopilot and report exports"),
    KnownHeader("intuneDeviceId", IdKind.INTUNE_ID, "inventory sheets"),
    KnownHeader("Intune Device ID", IdKind.INTUNE_ID, "inventory sheets"),
    KnownHeader("Managed Device ID", IdKind.INTUNE_ID, "inventory sheets"),
    KnownHeader("Microsoft Entra Device ID", IdKind.ENTRA_DEVICE_ID, _INTUNE_UI),
    KnownHeader("Azure AD Device ID", IdKind.ENTRA_DEVICE_ID, f"{_INTUNE_UI} (before 2023)"),
    KnownHeader("azureADDeviceId", IdKind.ENTRA_DEVICE_ID, f"{_GRAPH}; {_MG_PS} (AzureAdDeviceId)"),
    KnownHeader("entraDeviceId", IdKind.ENTRA_DEVICE_ID, "inventory sheets"),
    KnownHeader("Entra Device ID", IdKind.ENTRA_DEVICE_ID, "inventory sheets"),
    KnownHeader("ReferenceId", IdKind.ENTRA_DEVICE_ID, _LOG_ANALYTICS),
    KnownHeader("deviceId", None, f"{_ENTRA_UI} and Get-MgDevice (Entra id); {_LOG_ANALYTICS}"),
    KnownHeader("Serial number", IdKind.SERIAL_NUMBER, _INTUNE_UI),
    KnownHeader("serialNumber", IdKind.SERIAL_NUMBER, f"{_GRAPH}; {_MG_PS}; {_LOG_ANALYTICS}"),
    KnownHeader("serial", IdKind.SERIAL_NUMBER, "inventory sheets"),
    KnownHeader("Device Serial Number", IdKind.SERIAL_NUMBER, "Intune Autopilot devices export"),
    KnownHeader("serial_number", IdKind.SERIAL_NUMBER, "ServiceNow CMDB computer export"),
    KnownHeader("Device name", IdKind.DEVICE_NAME, _INTUNE_UI),
    KnownHeader("deviceName", IdKind.DEVICE_NAME, f"{_GRAPH}; {_MG_PS}; {_LOG_ANALYTICS}"),
    KnownHeader("displayName", IdKind.DEVICE_NAME, f"{_ENTRA_UI}; Get-MgDevice"),
    KnownHeader("name", IdKind.DEVICE_NAME, "inventory sheets"),
    KnownHeader("hostname", IdKind.DEVICE_NAME, "inventory sheets"),
    KnownHeader("computer name", IdKind.DEVICE_NAME, "inventory sheets"),
    KnownHeader("computerName", IdKind.DEVICE_NAME, "inventory sheets"),
    KnownHeader("CN", IdKind.DEVICE_NAME, "Active Directory Get-ADComputer | Export-Csv"),
)
_BY_NAME = {header.text.casefold(): header for header in KNOWN_HEADERS}
# Headers for each kind, for messages and callers that list what is accepted.
HEADERS: dict[IdKind, tuple[str, ...]] = {
    kind: tuple(h.text for h in KNOWN_HEADERS if h.kind == kind) for kind in IdKind
}
PREFERENCE = (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID, IdKind.SERIAL_NUMBER, IdKind.DEVICE_NAME)
GUID_CANDIDATES = (IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID)
_ENTRA = IdKind.ENTRA_DEVICE_ID
KIND_WORDS = {
    IdKind.INTUNE_ID: "Intune device IDs",
    IdKind.ENTRA_DEVICE_ID: "Microsoft Entra device IDs",
    IdKind.SERIAL_NUMBER: "serial numbers",
    IdKind.DEVICE_NAME: "device names",
}
# Columns only Entra device lists carry, and columns only Intune (managed device) lists carry.
_ENTRA_ONLY = frozenset(
    {"objectid", "trusttype", "jointype (trusttype)", "accountenabled", "profiletype"}
    | {"approximatelastsignindatetime", "registrationtime", "ismanaged", "isrooted"}
)
_INTUNE_ONLY = frozenset(
    {"lastsyncdatetime", "lastcontact", "managementagent", "managedby", "compliancestate"}
    | {"compliantstate", "enrolleddatetime", "enrollmentdate", "managedeviceownertype"}
)


@dataclass(frozen=True, slots=True)
class Meaning:
    """What a column holds: one kind when sure, several candidates when only Graph can tell."""

    candidates: tuple[IdKind, ...]
    evidence: str

    @property
    def kind(self) -> IdKind:
        return self.candidates[0]


def interpret(header: str, headers: Sequence[str]) -> Meaning | None:
    """What the column `header` holds, given all the file's headers; None if not an id column."""
    name = header.strip().casefold()
    known = _BY_NAME.get(name)
    if known is None:
        return None
    others = {h.strip().casefold(): h.strip() for h in headers if h.strip().casefold() != name}
    shown = header.strip()
    if name == "id":
        # In an Entra devices list "id" is the Entra *object* id, a GUID that is neither the
        # Intune id nor the Entra device id: never use it.
        if "deviceid" in others or "objectid" in others:
            return None
        return Meaning((IdKind.INTUNE_ID,), f"{shown!r} is the Intune device ID ({known.source})")
    if known.kind is not None:
        words = KIND_WORDS[known.kind]
        return Meaning((known.kind,), f"{shown!r} holds {words} ({known.source})")
    # A lone "deviceId": Entra lists use it for the Entra device id, Log Analytics and many Graph
    # PowerShell scripts for the Intune id. Decide from the columns beside it: an Entra-id column
    # or an Entra object id column says it most clearly, Intune-only or Entra-only columns next.
    entra_id = [others[n] for n in others if (k := _BY_NAME.get(n)) and k.kind == _ENTRA]
    object_id = [others[n] for n in others if n == "objectid"]
    intune_only = [others[n] for n in others if n in _INTUNE_ONLY]
    entra_only = [others[n] for n in others if n in _ENTRA_ONLY or n == "id"]
    for intune, entra in ((entra_id, object_id), (intune_only, entra_only)):
        if intune and not entra:
            what = "holds the Microsoft Entra device ID" if intune is entra_id else "is an Intune"
            what += "" if intune is entra_id else " managed-device column"
            return Meaning(
                (IdKind.INTUNE_ID,),
                f"{shown!r} is the Intune device ID: {intune[0]!r} beside it {what} (as in the "
                f"{_LOG_ANALYTICS} and Graph PowerShell managed-device exports)",
            )
        if entra and not intune:
            return Meaning(
                (IdKind.ENTRA_DEVICE_ID,),
                f"{shown!r} is the Microsoft Entra device ID: {entra[0]!r} beside it is an Entra "
                f"devices column (as in the {_ENTRA_UI} and Get-MgDevice exports)",
            )
        if intune and entra:
            break
    mixed = entra_id or object_id or intune_only or entra_only
    why = "the columns beside it point both ways" if mixed else "no column beside it says which"
    return Meaning(
        GUID_CANDIDATES[::-1],
        f"{shown!r} may hold Microsoft Entra device IDs (Entra exports) or Intune device IDs "
        f"(Log Analytics, Graph PowerShell scripts) and {why}",
    )


def kind_of_header(header: str, headers: Sequence[str] = ()) -> IdKind | None:
    """The identifier kind a header names when it is sure, given the other headers."""
    meaning = interpret(header, headers)
    return meaning.kind if meaning is not None and len(meaning.candidates) == 1 else None


def accepted() -> str:
    """The accepted headers per kind, for messages."""
    ambiguous = ", ".join(h.text for h in KNOWN_HEADERS if h.kind is None)
    listed = "; ".join(f"{', '.join(HEADERS[kind])} ({KIND_WORDS[kind]})" for kind in PREFERENCE)
    return f"{listed}; {ambiguous} (Intune or Entra device IDs, decided by the other columns)"
