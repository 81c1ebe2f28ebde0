"""What resolution says about a row it could not settle (the journal only stores the words):
not found, ambiguous, a look-alike, an id that must never be addressed."""

from __future__ import annotations

from batch_rotate.graph.paths import is_guid
from batch_rotate.journal_plan import MatchTexts
from batch_rotate.models import Device, IdKind
from batch_rotate.textsafe import safe_text


def invalid_id(device: Device) -> str | None:
    """Why a device from Graph must never be addressed: an id that is not a GUID; else None.

    Checked where Graph's answer enters the product, before an id can reach any URL (issue 19):
    such a device's rows fail with this reason and nothing is ever sent for it.
    """
    for what, value in (("an id", device.id), ("an azureADDeviceId", device.entra_device_id)):
        if is_guid(value) or (not value and what != "an id"):  # no Entra id: eligibility's
            continue
        shown = safe_text(value[:80]).replace("'", "\\'")
        return f"invalid_id: Graph returned {what} that is not a GUID ('{shown}'); nothing was sent"
    return None


def _label(kind: IdKind) -> str:
    return {
        IdKind.INTUNE_ID: "Intune device ID",
        IdKind.ENTRA_DEVICE_ID: "Entra device ID",
        IdKind.DEVICE_NAME: "device name",
        IdKind.SERIAL_NUMBER: "serial number",
    }[kind]


def match_texts(kind: IdKind, basis: str = "") -> MatchTexts:
    return MatchTexts(
        not_found=not_found_reason(kind, basis),
        ambiguous=(
            "ambiguous: ",
            f" managed devices have this {_label(kind)} (",
            "); list the device by its Intune device ID instead",
        ),
        lookalike=(
            f"ambiguous: no managed device has exactly this {_label(kind)}; one has a "
            "look-alike that matches only after Unicode folding (",
            " vs ",
            "); check which device is meant and list it by its Intune device ID",
        ),
    )


def not_found_reason(kind: IdKind, basis: str = "") -> str:
    """The `not_found` reason; `basis` is how the column's kind was settled (`probe.py`): a
    kind decided by sampling says so, a kind only assumed is never asserted."""
    if basis == "assumed":
        return (
            f"not_found: not found as {_article(kind)} {_label(kind)}, not by a direct query "
            "either (the column's kind was assumed, not known; give --id-kind)"
        )
    hint = {
        IdKind.INTUNE_ID: "check it is the Intune 'Device ID', not the Entra device ID",
        IdKind.ENTRA_DEVICE_ID: "the device may not be enrolled in Intune",
        IdKind.DEVICE_NAME: "check the spelling; the device may have been renamed or retired",
        IdKind.SERIAL_NUMBER: "check the serial; Excel may have changed it",
    }[kind]
    how = ""
    if basis == "sampled":
        how = (
            f"; the column was read as {_label(kind)} by sampling: see 'ID kind evidence' on "
            "the Summary sheet"
        )
    return (
        f"not_found: no Intune managed device has this {_label(kind)} (not found by a direct "
        f"query either{how}); {hint}"
    )


def _article(kind: IdKind) -> str:
    return "an" if _label(kind)[0] in "aeiouAEIOU" else "a"
