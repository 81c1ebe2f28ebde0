"""The engine on a fake clock: lost answers checked before any resend, retries on virtual time.

The session carries the clock, so the in-flight check measures the tenant's offset against it and
every wait (Retry-After, backoff) passes on virtual time: nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from batch_rotate.engine import rotate_pending
from batch_rotate.graph.batch import BatchItem, InnerResponse
from batch_rotate.graph.client import BatchResult, GraphResponse
from batch_rotate.graph.errors import TransportError
from batch_rotate.journal import Journal
from batch_rotate.journal_plan import MatchTexts
from batch_rotate.models import Device, DeviceRef, IdKind, Status
from batch_rotate.tenant_clock import iso
from tests.graph.fakeclock import FakeClock
from tests.graph.fakes import session_on


# Readable names in the tests, GUIDs on the wire: ids from Graph must be GUIDs to reach a URL.
def guid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


_NAMES: dict[str, str] = {}


def named(device_id: str) -> str:
    return _NAMES.get(device_id, device_id)


# (device name, how many times it was written before, the tenant's now) -> the write's answer
WriteScript = Callable[[str, int, datetime], InnerResponse]


@dataclass
class _Intune:
    """Rotate writes and device reads through `$batch`, on a tenant clock `offset_s` ahead of
    the fake local clock; `actions` are the devices' BitLocker action results, keyed by id."""

    clock: FakeClock
    offset_s: float = 0.0
    write: WriteScript = lambda _device, _before, _now: InnerResponse(204)
    read_throttles: Counter[str] = field(default_factory=Counter)  # 429s owed per device read
    retry_after_s: int = 300
    actions: dict[str, dict[str, str]] = field(default_factory=dict)
    older: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # listed before `actions`
    writes: Counter[str] = field(default_factory=Counter)
    write_times: dict[str, list[float]] = field(default_factory=dict)
    rtt_s: float = 0.5
    refused: int = 0  # this many first `$batch` calls find no connection (surely not sent)
    read_status: int = 200  # what every device read answers (500: Graph cannot say)
    calls: list[float] = field(default_factory=list)  # when each `$batch` call was made

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.epoch() + self.offset_s, UTC)

    async def batch(self, items: Sequence[BatchItem], *, version: str = "beta") -> BatchResult:
        received = self.now()
        self.calls.append(self.clock.now())
        if len(self.calls) <= self.refused:
            raise TransportError("connection refused", maybe_sent=False)
        await self.clock.sleep(self.rtt_s)
        answers = {}
        for item in items:
            device = named(item.url.split("/")[3].split("?")[0])
            if item.method == "POST":
                self.write_times.setdefault(device, []).append(self.clock.now())
                answers[item.key] = self.write(device, self.writes[device], received)
                self.writes[device] += 1
            elif self.read_status != 200:
                answers[item.key] = InnerResponse(self.read_status)
            elif self.read_throttles[device]:
                self.read_throttles[device] -= 1
                answers[item.key] = InnerResponse(429, {"retry-after": str(self.retry_after_s)})
            else:
                action = {"actionName": "rotateBitLockerKeys", **self.actions.get(device, {})}
                listed = [*self.older.get(device, []), action]
                body = {"id": guid(device), "deviceActionResults": listed}
                answers[item.key] = InnerResponse(200, {}, body)
        date = format_datetime(self.now().replace(microsecond=0), usegmt=True)
        return BatchResult(GraphResponse(200, {"date": date}, None, "rid", "crid"), answers)

    async def request(self, method: str, path: str, **_: Any) -> GraphResponse:
        raise AssertionError("the engine sends and checks through $batch only")


def _journal(tmp_path: Path, devices: Sequence[str]) -> Journal:
    journal = Journal.create(tmp_path / "run", {})
    _NAMES.update({guid(d): d for d in devices})
    rows = {row: guid(device) for row, device in enumerate(devices, start=2)}
    journal.add_refs(DeviceRef(row, d, IdKind.INTUNE_ID, d) for row, d in rows.items())
    journal.add_inventory(
        (
            Device(
                id=d,
                entra_device_id=guid(f"e-{d}"),
                os="Windows",
                os_version="10.0.22631.1",
                join_type="azureADJoined",
                management_agent="mdm",
            ),
            "",
            "",
        )
        for d in rows.values()
    )
    journal.resolve_rows(
        {IdKind.INTUNE_ID: MatchTexts("not_found", ("ambiguous: ", " devices (", ")"))},
        duplicate=("dup ", ""),
    )
    return journal


def _rows(journal: Journal) -> dict[str, Any]:
    return {named(r.intune_device_id): r for r in journal.report_rows()}


def test_the_in_flight_check_confirms_or_resends_each_lost_answer_on_the_tenant_clock(
    tmp_path: Path,
) -> None:
    """Every first write's answer is lost (503); then what Intune shows decides, per device:

    started after our request (read only after a 300 s Retry-After, the tenant 120 s ahead: the
    offset is measured on the session's clock, not the wall clock) -> confirmed; an earlier
    rotation still waiting on the device -> confirmed, not queued twice; an earlier rotation
    last updated after our request -> confirmed; an earlier, finished one -> sent again, once.
    """
    clock = FakeClock(start_epoch=time.time())  # the journal stamps sends on the wall clock

    def write(device: str, before: int, now: datetime) -> InnerResponse:
        if before:
            return InnerResponse(204)
        if device == "started":  # Intune took it before the answer was lost
            intune.actions[device] = {"actionState": "done", "startDateTime": iso(now)}
        elif device == "updated":  # merged into an earlier request's action, which then ran
            intune.actions[device]["lastUpdatedDateTime"] = iso(now)
        return InnerResponse(503)

    intune = _Intune(clock, offset_s=120.0, write=write, read_throttles=Counter(started=1))
    earlier = iso(intune.now() - timedelta(hours=1))
    for device, state in (("waiting", "pending"), ("updated", "done"), ("finished", "done")):
        intune.actions[device] = {
            "actionState": state,
            "startDateTime": earlier,
            "lastUpdatedDateTime": earlier,
        }
    journal = _journal(tmp_path, ["started", "waiting", "updated", "finished"])
    try:  # no grace: this tenant shows every accepted action at once
        asyncio.run(
            rotate_pending(
                journal, session_on(intune, clock), stop=asyncio.Event(), uncertain_grace_s=0
            )
        )
        rows = _rows(journal)
    finally:
        journal.close()
    assert {d: r.status for d, r in rows.items()} == dict.fromkeys(rows, Status.QUEUED.value)
    assert intune.writes == {"started": 1, "waiting": 1, "updated": 1, "finished": 2}
    confirmed = {d for d, r in rows.items() if r.confirmed_after_lost_answer}
    assert confirmed == {"started", "waiting", "updated"}
    assert "Intune shows the rotation started" in rows["started"].reason
    assert "still pending on the device" in rows["waiting"].reason
    assert "last updated after this request" in rows["updated"].reason
    assert rows["finished"].resent_after_interrupt
    assert clock.now() >= 300  # the throttled read really waited, on virtual time


def test_the_in_flight_check_reads_the_latest_started_result_not_the_first_listed(
    tmp_path: Path,
) -> None:
    """Intune lists a month-old failed rotation before this request's pending one: the check
    takes the latest-started BitLocker result (actions.py, the rule verify uses) and confirms."""
    clock = FakeClock(start_epoch=time.time())

    def write(device: str, before: int, now: datetime) -> InnerResponse:
        if before:
            return InnerResponse(204)
        intune.actions[device] = {"actionState": "pending", "startDateTime": iso(now)}
        return InnerResponse(503)

    intune = _Intune(clock, write=write)
    old = iso(intune.now() - timedelta(days=30))
    intune.older["listed-second"] = [
        {
            "actionName": "rotateBitLockerKeys",
            "actionState": "failed",
            "startDateTime": old,
            "lastUpdatedDateTime": old,
        }
    ]
    journal = _journal(tmp_path, ["listed-second"])
    try:
        asyncio.run(rotate_pending(journal, session_on(intune, clock), stop=asyncio.Event()))
        row = _rows(journal)["listed-second"]
    finally:
        journal.close()
    assert intune.writes == {"listed-second": 1}
    assert row.confirmed_after_lost_answer
    assert "Intune shows the rotation started" in row.reason


def test_a_throttled_write_goes_again_after_its_retry_after_on_virtual_time(
    tmp_path: Path,
) -> None:
    """A 429 on a write is no lost answer: it is re-sent (never checked) once Retry-After has
    passed on the session's clock, while the other device's 204 stands."""
    clock = FakeClock()

    def write(device: str, before: int, now: datetime) -> InnerResponse:
        if device == "busy" and before < 2:
            return InnerResponse(429, {"retry-after": "7"})
        return InnerResponse(204)

    intune = _Intune(clock, write=write)
    journal = _journal(tmp_path, ["busy", "calm"])
    try:
        stats = asyncio.run(
            rotate_pending(journal, session_on(intune, clock), stop=asyncio.Event())
        )
        rows = _rows(journal)
    finally:
        journal.close()
    assert {d: r.status for d, r in rows.items()} == {"busy": "queued", "calm": "queued"}
    assert intune.writes == {"busy": 3, "calm": 1}
    sends = intune.write_times["busy"]
    assert [round(b - a, 3) >= 7 for a, b in itertools.pairwise(sends)] == [True, True]
    assert stats.throttled == 2 and stats.lost == 0
    assert not any(r.confirmed_after_lost_answer for r in rows.values())


def test_a_refused_connection_is_retried_after_backoff_from_the_session(tmp_path: Path) -> None:
    """No connection means the write surely never left: it is retried after the session's
    backoff (base --retry-delay 10 s: at least 1 s, at most 10 s, then 20 s, on virtual time),
    never treated as a lost answer."""
    clock = FakeClock()
    intune = _Intune(clock, refused=2)
    journal = _journal(tmp_path, ["far"])
    session = session_on(intune, clock, retry_delay_s=10.0)
    try:
        stats = asyncio.run(rotate_pending(journal, session, stop=asyncio.Event()))
        rows = _rows(journal)
    finally:
        journal.close()
    assert rows["far"].status == Status.QUEUED.value and not rows["far"].resent_after_interrupt
    assert intune.writes == {"far": 1} and len(intune.calls) == 3
    first, second = (b - a for a, b in itertools.pairwise(intune.calls))
    assert 1.0 <= first <= 10.0 and 1.0 <= second <= 20.0
    assert (stats.transient, stats.lost) == (2, 0)


def test_a_lost_answer_graph_cannot_confirm_is_never_sent_again(tmp_path: Path) -> None:
    """The write's answer is lost and the check read fails (500) `max_attempts` times, as the
    session says: the row stays in flight (uncertain at the report), sent once, not twice."""
    clock = FakeClock(start_epoch=time.time())
    intune = _Intune(clock, write=lambda *_: InnerResponse(503), read_status=500)
    journal = _journal(tmp_path, ["mute"])
    session = session_on(intune, clock, max_attempts=3)
    try:
        asyncio.run(rotate_pending(journal, session, stop=asyncio.Event()))
        rows = _rows(journal)
    finally:
        journal.close()
    assert rows["mute"].status == Status.IN_FLIGHT.value
    assert intune.writes == {"mute": 1}
    assert len(intune.calls) - 1 == 3  # the check's read, given up after max_attempts


def test_a_lost_answer_is_not_sent_again_within_the_grace_period_then_checked_once(
    tmp_path: Path,
) -> None:
    """Intune accepted the write, lost its answer (503) and shows the action only later: the
    check within the grace period sees nothing and sends nothing (the row stays in flight, its
    reason says until when); a resume within the grace sends nothing either; after the grace
    the check sees the rotation and confirms it: sent once in all."""
    clock = FakeClock(start_epoch=time.time())
    accepted: dict[str, datetime] = {}

    def write(device: str, before: int, now: datetime) -> InnerResponse:
        accepted.setdefault(device, now)
        return InnerResponse(503)  # processed, answer lost

    intune = _Intune(clock, write=write)
    journal = _journal(tmp_path, ["late"])
    session = session_on(intune, clock)
    try:
        asyncio.run(rotate_pending(journal, session, stop=asyncio.Event(), uncertain_grace_s=600))
        row = _rows(journal)["late"]
        assert row.status == Status.IN_FLIGHT.value and intune.writes == {"late": 1}
        assert "not sent again before" in row.reason and "--uncertain-grace 600s" in row.reason
        clock.advance(120)  # an immediate resume: still nothing to see, nothing sent
        asyncio.run(rotate_pending(journal, session, stop=asyncio.Event(), uncertain_grace_s=600))
        assert _rows(journal)["late"].status == Status.IN_FLIGHT.value
        assert intune.writes == {"late": 1}
        # Intune now shows the rotation it accepted; a resume after the grace checks it
        intune.actions["late"] = {"actionState": "pending", "startDateTime": iso(accepted["late"])}
        clock.advance(600)
        asyncio.run(rotate_pending(journal, session, stop=asyncio.Event(), uncertain_grace_s=600))
        row = _rows(journal)["late"]
    finally:
        journal.close()
    assert row.status == Status.QUEUED.value and row.confirmed_after_lost_answer
    assert intune.writes == {"late": 1}


def test_a_lost_answer_still_unseen_after_the_grace_is_sent_again_once(tmp_path: Path) -> None:
    """The request never reached Intune (nothing ever shows): after the grace it goes again,
    once, flagged."""
    clock = FakeClock(start_epoch=time.time())
    intune = _Intune(clock, write=lambda _d, before, _n: InnerResponse(204 if before else 503))
    journal = _journal(tmp_path, ["dropped"])
    session = session_on(intune, clock)
    try:
        asyncio.run(rotate_pending(journal, session, stop=asyncio.Event(), uncertain_grace_s=600))
        assert _rows(journal)["dropped"].status == Status.IN_FLIGHT.value
        clock.advance(601)
        asyncio.run(rotate_pending(journal, session, stop=asyncio.Event(), uncertain_grace_s=600))
        row = _rows(journal)["dropped"]
    finally:
        journal.close()
    assert row.status == Status.QUEUED.value and row.resent_after_interrupt
    assert intune.writes == {"dropped": 2}
