"""Plan check `--check-recent-rotations`: rotations requested by anyone (the portal, another tool,
a colleague's script) show in each device's `deviceActionResults` like this tool's own
(GRAPH_NOTES.md "Second pass"); a device with one started within `--recent` is held back.

One read per planned device on the read budget (`$batch` of 20): opt-in, see `make bench`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from batch_rotate.actions import rotation_action
from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.paths import device_path
from batch_rotate.graph.runner import ItemResult
from batch_rotate.graph.session import GraphSession
from batch_rotate.journal import Journal
from batch_rotate.present import plural
from batch_rotate.settings import Settings
from batch_rotate.tenant_clock import iso, parse_graph_time

ACTIONS_SELECT = "?$select=id,deviceActionResults"


async def recent_rotations(
    session: GraphSession, device_ids: Sequence[str], recent_s: float
) -> tuple[dict[str, datetime], dict[str, str]]:
    """(device id -> start of a BitLocker rotation within `recent_s`, device id -> why its
    action results could not be read); ids lower-case, times on the tenant's clock."""
    items = [
        BatchItem(n, "GET", device_path(d, ACTIONS_SELECT), str(uuid.uuid4()))
        for n, d in enumerate(device_ids)
    ]
    found: dict[str, datetime] = {}
    unread: dict[str, str] = {}

    def on_answer(results: Sequence[ItemResult]) -> None:
        local = datetime.fromtimestamp(session.clock.epoch(), UTC)
        for result in results:
            if not result.final:
                continue
            device = device_ids[result.item.key].lower()
            if result.status != 200 or not isinstance(result.body, dict):
                unread[device] = result.reason or f"HTTP {result.status}"
                continue
            action = rotation_action(result.body)
            started = action.started if action else None
            now = parse_graph_time(result.answered_at) or local  # the tenant's clock if it said
            if started is not None and started >= now - timedelta(seconds=recent_s):
                found[device] = started

    await session.runner().run(items, on_send=lambda _: None, on_answer=on_answer)
    return found, unread


async def guard_recent_rotations(
    journal: Journal, session: GraphSession, settings: Settings
) -> list[str]:
    """Hold back planned devices with a BitLocker rotation requested within --recent by anyone,
    unless --force-recent; devices whose results cannot be read stay planned (said once)."""
    if settings.recent_s <= 0:
        return []
    targets = list(journal.pending_devices())
    found, unread = await recent_rotations(
        session, [t.device_id for t in targets], settings.recent_s
    )
    window = f"{settings.recent_s / 3600:g}h"
    reasons = {
        t.row: (
            f"recent_rotation: requested {iso(found[t.device_id.lower()])} by the service "
            f"(within --recent {window}; the portal, another tool or a run elsewhere); add "
            "--force-recent to rotate it again"
        )
        for t in targets
        if t.device_id.lower() in found
    }
    warnings = []
    if unread:
        first = next(iter(unread.items()))
        warnings.append(
            f"could not read the action results of {plural(len(unread), 'device')} (first: "
            f"{first[0]}: {first[1]}); {'it stays' if len(unread) == 1 else 'they stay'} planned"
        )
    if not reasons:
        return warnings
    shown = ", ".join(f"row {row}" for row in sorted(reasons)[:3]) + (
        " …" if len(reasons) > 3 else ""
    )
    count = plural(len(reasons), "device")
    if settings.force_recent:
        journal.set_reasons(reasons)
        return [
            *warnings,
            f"{count} had a BitLocker rotation requested within {window} by the service and "
            f"WILL be rotated again (--force-recent): {shown}",
        ]
    journal.skip(reasons)
    return [
        *warnings,
        f"{count} had a BitLocker rotation requested within {window} by the service and "
        f"{'is' if len(reasons) == 1 else 'are'} skipped as ineligible/recent_rotation: {shown}; "
        "add --force-recent to rotate them again",
    ]
