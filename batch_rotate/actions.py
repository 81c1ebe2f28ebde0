"""Which of a device's `deviceActionResults` is "this rotation's action result": one rule, read
by the in-flight check (engine.py), verify (verify.py) and the recent-rotation plan check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from batch_rotate.tenant_clock import parse_graph_time

_EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RotationAction:
    """One BitLocker action result as Graph gave it; times are on the tenant's clock."""

    state: str = ""  # actionState as given (none, pending, active, done, failed, ...)
    started_at: str = ""  # startDateTime
    updated_at: str = ""  # lastUpdatedDateTime
    error_code: int | None = None  # a signed Int32 HRESULT, when the entry carries one

    @property
    def started(self) -> datetime | None:
        return parse_graph_time(self.started_at)

    @property
    def updated(self) -> datetime | None:
        return parse_graph_time(self.updated_at)


def rotation_action(device: dict[str, Any]) -> RotationAction | None:
    """The latest-started BitLocker entry of a device's `deviceActionResults`, or None.

    The exact `actionName` is undocumented, so any name holding "bitlocker" counts. Nothing
    documents that a new request replaces an older entry, and an entry that started before a
    request is not its outcome (GRAPH_NOTES.md "Action results"): the latest start is the only
    candidate. Entries without a readable start rank last; on a tie the first listed wins.
    """
    found = [
        action
        for action in device.get("deviceActionResults") or []
        if isinstance(action, dict) and "bitlocker" in str(action.get("actionName", "")).lower()
    ]
    if not found:
        return None
    latest = max(found, key=_start)
    return RotationAction(
        state=str(latest.get("actionState") or ""),
        started_at=str(latest.get("startDateTime") or ""),
        updated_at=str(latest.get("lastUpdatedDateTime") or ""),
        error_code=_error_code(latest.get("errorCode")),
    )


def _start(action: dict[str, Any]) -> datetime:
    return parse_graph_time(str(action.get("startDateTime") or "")) or _EARLIEST


def _error_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
