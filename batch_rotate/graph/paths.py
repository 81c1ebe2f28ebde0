"""Graph URLs built from ids: the one place an id goes into a path or a filter, checked first.

Ids come from Graph's answers (and journals written from them). Resolution rejects a non-GUID
where the answer enters the product; these builders refuse one that got past it anyway.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from batch_rotate.graph.errors import InvalidIdError

# Exactly 8-4-4-4-12 hex, ASCII only: no braces, spaces, `/`, `..`, `?`, `'` or Unicode digits.
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_guid(value: str) -> bool:
    """Whether `value` is exactly a GUID (fullmatch: a trailing newline does not pass)."""
    return GUID.fullmatch(value) is not None


def checked_guid(value: str, what: str) -> str:
    """`value` itself if it is a GUID; else InvalidIdError naming `what` it was meant to be."""
    if not is_guid(value):
        raise InvalidIdError(value, what)
    return value


def device_path(device_id: str, tail: str = "") -> str:
    """`/deviceManagement/managedDevices/{id}` and `tail` (a constant of the caller's)."""
    return f"/deviceManagement/managedDevices/{checked_guid(device_id, 'a device id')}{tail}"


def recovery_key_path(key_id: str) -> str:
    """One recovery key's metadata (never `key` itself: no `$select=key`)."""
    return f"/informationProtection/bitlocker/recoveryKeys/{checked_guid(key_id, 'a key id')}"


def recovery_keys_of(entra_device_id: str) -> str:
    """The recovery keys of one Entra device: `$filter=deviceId eq '{id}'`."""
    entra = checked_guid(entra_device_id, "an Entra device id")
    return "/informationProtection/bitlocker/recoveryKeys?$filter=" + quote(
        f"deviceId eq '{entra}'", safe="'"
    )
