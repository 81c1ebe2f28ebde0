"""Verification on the tenant's clock: reference times, old action results, the measured offset."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from batch_rotate.graph.batch import BatchItem, InnerResponse
from batch_rotate.graph.client import BatchResult, GraphResponse
from batch_rotate.hresults import NO_ERROR_CODE
from batch_rotate.journal import Journal
from batch_rotate.journal_plan import MatchTexts
from batch_rotate.models import Device, DeviceRef, IdKind, Outcome, Status
from batch_rotate.tenant_clock import (
    CLOCK_MARGIN_S,
    RESEND_WINDOW_S,
    iso,
    measured_offset_s,
    offset_notice,
    offset_sample_s,
    reference_time,
    run_offset_s,
)
from batch_rotate.verify import Evidence, explain, verdict, verify_journal
from tests.graph.fakeclock import FakeClock
from tests.graph.fakes import session_on

REF = "2026-11-27T01:00:00.000Z"  # the rotation's reference on the tenant's clock
STALE = "2026-06-01T08:00:00Z"  # months before: another request's result
NOT_ON_STACK = 0x8031004A - 2**32  # as Graph sends it: a signed Int32


def _at(base: str, seconds: float) -> str:
    when = datetime.fromisoformat(base.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return iso(when)


# --- the reference time -------------------------------------------------------------------


def test_the_reference_is_the_tenants_204_time_not_the_local_send() -> None:
    # The laptop is 2 minutes ahead of the tenant: it sent at 01:02 local, the tenant said 01:00.
    local_send = _at(REF, 120)
    assert reference_time(local_send, REF) == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    own_gap = run_offset_s([(local_send, REF)])
    assert reference_time(local_send, REF, run_offset=own_gap) == datetime(
        2026, 11, 27, 1, 0, tzinfo=UTC
    )


def test_a_resent_rotation_reaches_back_to_its_first_send_on_the_tenant_clock() -> None:
    # First send at local 01:02:00 (tenant 01:00:00); its answer was lost; the re-send's 204
    # came 40 s later. The run's smallest gap says local is 120 s ahead.
    reference = reference_time(_at(REF, 120), _at(REF, 40), run_offset=-120.0)
    assert reference == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    # ... but never further back than the re-send window (a send that never arrived, long ago)
    reference = reference_time(_at(REF, -86_400), REF, run_offset=0.0)
    assert reference == datetime(2026, 11, 27, 1, 0, tzinfo=UTC) - timedelta(
        seconds=RESEND_WINDOW_S
    )


def test_runs_without_a_tenant_time_shift_the_local_send_by_the_offset_measured_now() -> None:
    assert reference_time(REF, "", now_offset=-120.0) == datetime(2026, 11, 27, 0, 58, tzinfo=UTC)
    assert reference_time(REF, "") == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    assert reference_time("", "") is None


def test_the_runs_offset_is_its_smallest_gap_between_send_and_204() -> None:
    stamps = [(_at(REF, 120), _at(REF, 1.2)), (_at(REF, 130), _at(REF, 12.3)), ("", REF)]
    assert run_offset_s(stamps) == pytest.approx(-118.8)
    assert run_offset_s([("", REF)]) is None


# --- verdicts on fixed times -----------------------------------------------------------------


@pytest.mark.parametrize("tenant_offset_s", [-120.0, 120.0])
def test_a_key_made_after_the_204_is_new_whatever_the_local_clock(tenant_offset_s: float) -> None:
    local_send = _at(REF, -tenant_offset_s)
    reference = reference_time(local_send, REF, run_offset=tenant_offset_s)
    assert reference is not None
    key = _at(REF, 30)
    result = verdict(2, iso(reference), Evidence("done", 0, REF, key_times=(key,)))
    assert result.status == "verified" and result.new_key_at == key


def test_tenant_ahead_a_key_after_the_local_send_but_before_the_request_is_old() -> None:
    # Local 01:00 = tenant 01:02: a key the tenant made at 01:01 predates this request.
    reference = reference_time(REF, _at(REF, 120), run_offset=120.0)
    assert reference is not None
    result = verdict(
        2, iso(reference), Evidence("done", 0, _at(REF, 60), key_times=(_at(REF, 60),))
    )
    assert result.status == "pending" and result.new_key_at == ""
    assert "earlier request's (done" in result.detail


@pytest.mark.parametrize(
    ("state", "code"),
    [("failed", NOT_ON_STACK), ("failed", 0), ("done", 0), ("notSupported", None)],
)
def test_an_old_result_is_history_and_the_device_stays_pending(
    state: str, code: int | None
) -> None:
    ev = Evidence(state, code, STALE, _at(STALE, 600), "2026-06-01T08:10:00Z", key_times=())
    result = verdict(2, REF, ev)
    assert result.status == "pending" and not result.status.final
    assert result.action_state == "" and result.error_code == ""
    assert f"earlier request's ({state}" in result.detail and STALE in result.detail
    assert REF in result.detail and "last check-in 2026-06-01T08:10:00Z" in result.detail
    if code:
        assert "0x8031004A" in result.detail


def test_an_old_result_does_not_hide_a_new_key() -> None:
    ev = Evidence("failed", NOT_ON_STACK, STALE, key_times=(_at(REF, 300),))
    assert verdict(2, REF, ev).status == "verified"


def test_a_result_without_a_start_time_cannot_be_this_rotations() -> None:
    result = verdict(2, REF, Evidence("failed", NOT_ON_STACK, "", key_times=()))
    assert result.status == "pending" and "started an unknown time" in result.detail


@pytest.mark.parametrize(
    ("started_after_s", "status"),
    [
        (-CLOCK_MARGIN_S - 0.001, "pending"),
        (-CLOCK_MARGIN_S, "failed"),
        (-1, "failed"),  # Date is whole seconds: the start may read just before it
        (3600, "failed"),
    ],
)
def test_a_result_counts_from_the_reference_less_the_margin(
    started_after_s: float, status: str
) -> None:
    ev = Evidence("failed", NOT_ON_STACK, _at(REF, started_after_s), key_times=())
    result = verdict(2, REF, ev)
    assert result.status == status
    if status == "failed":
        assert result.error_code == "0x8031004A" and result.action_state == "failed"
        assert result.detail.startswith("0x8031004A: BitLocker's system components")


def test_a_current_result_shows_an_error_code_only_when_there_is_one() -> None:
    done = verdict(2, REF, Evidence("done", 0, REF, key_times=(_at(REF, 60),)))
    assert done.status == "verified" and done.action_state == "done" and done.error_code == ""
    failed = verdict(2, REF, Evidence("failed", 0, REF, key_times=()))
    assert failed.error_code == "0x00000000"


@pytest.mark.parametrize("code", [0, None])
def test_a_failure_without_an_error_code_says_so(code: int | None) -> None:
    result = verdict(2, REF, Evidence("failed", code, REF, key_times=()))
    assert result.status == "failed"
    assert result.detail.startswith(NO_ERROR_CODE)
    assert "event log" in result.detail


@pytest.mark.parametrize(
    ("code", "name", "fix"),
    [
        (0x8031004A, "FVE_E_NOT_ON_STACK", "Startup Repair"),
        (0x8000FFFF, "E_UNEXPECTED", "restart the device"),
        (0x80310012, "FVE_E_SYSTEM_VOLUME", "OS drive"),
        (0x8031002D, "FVE_E_CANNOT_SET_FVEK_ENCRYPTED", "encryption method"),
    ],
)
def test_field_error_codes_have_cause_and_fix(code: int, name: str, fix: str) -> None:
    for as_graph_sends_it in (code - 2**32, code):
        text = explain(as_graph_sends_it)
        assert text.startswith(f"0x{code:08X}: ") and name in text and fix in text


# --- the offset, measured and told -----------------------------------------------------------


def test_offset_samples_and_notice() -> None:
    local = datetime(2026, 11, 27, 1, 2, 0, 300_000, tzinfo=UTC).timestamp()
    assert offset_sample_s("2026-11-27T01:00:00Z", local) == pytest.approx(-119.8)
    assert offset_sample_s("", local) is None
    assert measured_offset_s([-119.8, -119.6, -200.0]) == pytest.approx(-119.8)
    assert measured_offset_s([]) is None
    assert offset_notice(-119.8) == (
        "the tenant's clock is 120 s behind this machine; verification uses the tenant's clock"
    )
    assert "120 s ahead of this machine" in offset_notice(120.2)
    assert offset_notice(4.9) == offset_notice(-4.9) == ""


class _Tenant:
    """A `$batch` transport whose tenant clock is `offset_s` off the fake local clock."""

    def __init__(self, clock: FakeClock, offset_s: float, devices: dict[str, Any]) -> None:
        self.clock, self.offset_s, self.devices = clock, offset_s, devices

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.epoch() + self.offset_s, UTC)

    async def batch(self, items: Sequence[BatchItem], *, version: str = "beta") -> BatchResult:
        answers = {}
        for item in items:
            if item.url.startswith("/deviceManagement/"):
                device = self.devices[item.url.split("/")[3].split("?")[0]]
                answers[item.key] = InnerResponse(200, {}, device["device"])
            else:
                entra = item.url.split("'")[1]
                keys = next(d["keys"] for d in self.devices.values() if d["entra"] == entra)
                answers[item.key] = InnerResponse(200, {}, {"value": keys})
        date = format_datetime(self.now().replace(microsecond=0), usegmt=True)
        return BatchResult(GraphResponse(200, {"date": date}, None, "rid", "crid"), answers)

    async def request(self, method: str, path: str, **_: Any) -> GraphResponse:
        raise AssertionError("per-device reads go through $batch")


def _id(row: int) -> str:
    return f"00000000-0000-4000-8000-{row:012d}"  # ids go into URLs: GUIDs (graph/paths.py)


def _entra(row: int) -> str:
    return f"10000000-0000-4000-8000-{row:012d}"


def _journal(tmp_path: Path, accepted_at: str) -> Journal:
    journal = Journal.create(tmp_path / "run", {})
    journal.add_refs(DeviceRef(r, _id(r), IdKind.INTUNE_ID, _id(r)) for r in (2, 3))
    journal.add_inventory(
        (
            Device(
                id=_id(r),
                entra_device_id=_entra(r),
                os="Windows",
                os_version="10.0.22631.1",
                join_type="azureADJoined",
                management_agent="mdm",
            ),
            "",
            "",
        )
        for r in (2, 3)
    )
    journal.resolve_rows(
        {IdKind.INTUNE_ID: MatchTexts("not_found", ("ambiguous: ", " devices (", ")"))},
        duplicate=("dup ", ""),
    )
    journal.mark_in_flight([(2, "c2"), (3, "c3")])
    journal.record(
        [
            Outcome(row=r, status=Status.QUEUED, http_status=204, answered_at=accepted_at)
            for r in (2, 3)
        ]
    )
    return journal


@pytest.mark.parametrize("offset_s", [-120.0, 120.0])
def test_verify_measures_the_offset_tells_it_once_and_judges_on_the_tenant_clock(
    tmp_path: Path, offset_s: float
) -> None:
    clock = FakeClock(start_epoch=time.time())
    tenant_now = datetime.fromtimestamp(clock.epoch() + offset_s, UTC)
    accepted_at = iso(tenant_now.replace(microsecond=0))
    journal = _journal(tmp_path, accepted_at)
    rotated = {
        "id": _id(2),
        "deviceActionResults": [  # both listed: the latest-started one is judged
            {
                "actionName": "rotateBitLockerKeys",
                "actionState": "done",
                "startDateTime": accepted_at,
            },
            {"actionName": "BitLocker rotation", "actionState": "failed", "startDateTime": STALE},
        ],
        "lastSyncDateTime": iso(tenant_now),
    }
    offline = {
        "id": _id(3),
        "deviceActionResults": [
            {
                "actionName": "rotateBitLockerKeys",
                "actionState": "failed",
                "startDateTime": STALE,
                "errorCode": NOT_ON_STACK,
            }
        ],
        "lastSyncDateTime": STALE,
    }
    new_key = {"createdDateTime": iso(tenant_now + timedelta(seconds=20)), "volumeType": "1"}
    tenant = _Tenant(
        clock,
        offset_s,
        {
            _id(2): {"device": rotated, "entra": _entra(2), "keys": [new_key]},
            _id(3): {"device": offline, "entra": _entra(3), "keys": []},
        },
    )
    told: list[str] = []
    session = session_on(tenant, clock)

    async def go() -> dict[str, int]:
        return await verify_journal(journal, session, wait_s=0.3, every_s=0.05, notify=told.append)

    try:
        counts = asyncio.run(go())
        meta = journal.meta()
        rows = {r.row: r for r in journal.report_rows()}
    finally:
        journal.close()
    assert counts == {"verified": 1, "pending": 1}
    assert rows[2].action_state == "done" and rows[2].action_error_code == ""
    assert "earlier request" not in rows[2].verification_detail
    assert rows[3].verification_detail.count("earlier request's (failed 0x8031004A") == 1
    way = "behind" if offset_s < 0 else "ahead of"
    notices = [m for m in told if m.startswith("the tenant's clock is")]
    assert notices == [
        f"the tenant's clock is 120 s {way} this machine; verification uses the tenant's clock"
    ]
    assert sum(m.startswith("verification (") for m in told) >= 2  # polled again, told once
    assert abs(float(meta["tenant_clock_offset_s"]) - offset_s) <= 1.0
    with sqlite3.connect(journal.path) as db:
        events = db.execute(
            "SELECT detail FROM events WHERE kind = 'tenant_clock_offset'"
        ).fetchall()
    assert [e[0] for e in events] == notices
