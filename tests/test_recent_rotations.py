"""Which devices had a BitLocker rotation requested within --recent: judged on the tenant's clock
(each answer's Date), from the latest-started BitLocker result (actions.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from batch_rotate.graph.batch import BatchItem, InnerResponse
from batch_rotate.graph.client import BatchResult, GraphResponse
from batch_rotate.recent_rotations import recent_rotations
from batch_rotate.tenant_clock import iso
from tests.graph.fakeclock import FakeClock
from tests.graph.fakes import session_on

TENANT_NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _rotation(ago: timedelta, state: str = "pending") -> dict[str, str]:
    started = iso(TENANT_NOW - ago)
    return {
        "actionName": "rotateBitLockerKeys",
        "actionState": state,
        "startDateTime": started,
        "lastUpdatedDateTime": started,
    }


@dataclass
class _Intune:
    """Device reads through `$batch`, answered with the tenant's Date."""

    results: dict[str, list[dict[str, str]] | None]

    async def batch(self, items: Sequence[BatchItem], *, version: str = "beta") -> BatchResult:
        answers = {}
        for item in items:
            device = item.url.split("/")[3].split("?")[0]
            listed = self.results[device]
            answers[item.key] = (
                InnerResponse(404)
                if listed is None
                else InnerResponse(200, {}, {"id": device, "deviceActionResults": listed})
            )
        date = format_datetime(TENANT_NOW, usegmt=True)
        return BatchResult(GraphResponse(200, {"date": date}, None, "rid", "crid"), answers)

    async def request(self, method: str, path: str, **_: Any) -> GraphResponse:
        raise AssertionError("reads go through $batch")


def test_recent_rotations_are_judged_on_the_tenant_clock() -> None:
    recent = {
        _id("portal"): [_rotation(timedelta(minutes=30))],
        _id("old-failed"): [_rotation(timedelta(days=90), "failed")],
        _id("old-then-new"): [
            _rotation(timedelta(days=90), "failed"),
            {**_rotation(timedelta(minutes=5)), "actionName": "RotateBitLockerKeys"},
        ],
        _id("wiped"): [{**_rotation(timedelta(minutes=1)), "actionName": "wipe"}],
        _id("none"): [],
        _id("gone"): None,
    }
    # The local clock runs three hours ahead of the tenant's: judged locally, the rotation half
    # an hour old on the tenant's clock would look older than the one-hour window.
    clock = FakeClock(start_epoch=(TENANT_NOW + timedelta(hours=3)).timestamp())
    session = session_on(_Intune(recent), clock)
    found, unread = asyncio.run(recent_rotations(session, list(recent), recent_s=3600))
    assert set(found) == {_id("portal"), _id("old-then-new")}
    assert found[_id("portal")] == TENANT_NOW - timedelta(minutes=30)
    assert set(unread) == {_id("gone")}
