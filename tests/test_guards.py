"""Plan-time guards read what they need from the journal: the 30-day warning from stored syncs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from batch_rotate.guards import STALE_AFTER, stale_warnings
from batch_rotate.journal import Journal
from batch_rotate.journal_plan import MatchTexts
from batch_rotate.models import Device, DeviceRef, IdKind

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _device(n: int, synced: str) -> Device:
    return Device(
        id=f"00000000-0000-4000-8000-{n:012d}",
        name=f"LT-{n:03d}",
        entra_device_id=f"10000000-0000-4000-8000-{n:012d}",
        os="Windows",
        os_version="10.0.22631.4460",
        join_type="azureADJoined",
        management_agent="mdm",
        last_sync=synced,
    )


def _stamp(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def test_the_stale_warning_is_computed_from_the_journal_alone(tmp_path: Path) -> None:
    # Resolution stores each device's last sync; the warning is read back from a reopened journal,
    # so no per-device bookkeeping of the run has to survive until the plan is made.
    syncs = [
        _stamp(1),
        _stamp(45),
        "",  # never reported: not warned about
        _stamp(90).replace("Z", ".1234567Z"),  # Graph's seven-digit fractions
        "not a date",
        _stamp(31),
        _stamp(29),
        _stamp(400),
        # The journal leaves out times whose date is past the cutoff's day after: an offset of
        # up to 24 h keeps one a day later in (the cutoff is 2026-10-28T12:00Z) ...
        "2026-10-29T08:00:00+21:00",  # 2026-10-28T11:00Z: before the cutoff
        " 2026-09-01T00:00:00Z",  # a space before the date: parsed, so not left out
        "2026-10-30T00:30:00+23:30",  # ... two days later never is: 2026-10-29T01:00Z
    ]
    devices = [_device(n, synced) for n, synced in enumerate(syncs)]
    run_dir = tmp_path / "run"
    journal = Journal.create(run_dir, {})
    refs = [DeviceRef(n + 2, d.id, IdKind.INTUNE_ID, d.id) for n, d in enumerate(devices)]
    journal.add_refs([*refs, DeviceRef(20, devices[1].id, IdKind.INTUNE_ID, devices[1].id)])
    journal.add_inventory((d, "", "") for d in devices)
    journal.resolve_rows(
        {IdKind.INTUNE_ID: MatchTexts("not_found", ("ambiguous: ", " devices (", ")"))},
        duplicate=("duplicate: same device as row ", ""),
    )
    journal.skip({9: "ineligible/recent_run: held back"})  # no longer planned: not counted
    journal.close()
    journal = Journal.open(run_dir)
    try:
        (warning,) = stale_warnings(journal, NOW - STALE_AFTER)
    finally:
        journal.close()
    assert warning == (
        "5 devices have not synced with Intune for more than 30 days and will likely stay "
        "pending: row 3 LT-001 (last sync 2026-10-13), row 5 LT-003 (last sync 2026-08-29), "
        "row 7 LT-005 (last sync 2026-10-27) …"
    )


def test_no_warning_when_every_planned_device_synced_lately(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "run", {})
    device = _device(1, _stamp(2))
    journal.add_refs([DeviceRef(2, device.id, IdKind.INTUNE_ID, device.id)])
    journal.add_inventory([(device, "", "")])
    journal.resolve_rows(
        {IdKind.INTUNE_ID: MatchTexts("not_found", ("ambiguous: ", " devices (", ")"))},
        duplicate=("duplicate: same device as row ", ""),
    )
    assert stale_warnings(journal, NOW - STALE_AFTER) == []
    journal.close()
