"""One rule for "this rotation's action result": the latest-started BitLocker entry."""

from __future__ import annotations

from typing import Any

import pytest

from batch_rotate.actions import RotationAction, rotation_action


def _entry(name: str, state: str, started: str, code: Any = 0) -> dict[str, Any]:
    return {
        "actionName": name,
        "actionState": state,
        "startDateTime": started,
        "lastUpdatedDateTime": started,
        "errorCode": code,
    }


OLD = _entry("rotateBitLockerKeys", "failed", "2026-08-01T10:00:00Z", -2144272166)
NEW = _entry("rotateBitLockerKeys", "pending", "2026-12-02T10:00:00.1234567Z")
WIPE = _entry("wipe", "done", "2026-12-02T11:00:00Z")


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        pytest.param([], None, id="none listed"),
        pytest.param([WIPE], None, id="no BitLocker entry"),
        pytest.param([OLD, NEW], NEW, id="older listed first"),
        pytest.param([NEW, OLD], NEW, id="newer listed first"),
        pytest.param([NEW, WIPE, OLD], NEW, id="a later non-BitLocker action is not it"),
        pytest.param(
            [OLD, _entry("RotateBitLockerKeys", "done", "2026-12-02T12:00:00+01:00")],
            _entry("RotateBitLockerKeys", "done", "2026-12-02T12:00:00+01:00"),
            id="any case, any zone",
        ),
        pytest.param(
            [_entry("rotateBitLockerKeys", "none", ""), OLD], OLD, id="no start ranks last"
        ),
        pytest.param(
            [_entry("rotateBitLockerKeys", "none", "garbage"), "not an object", None],
            _entry("rotateBitLockerKeys", "none", "garbage"),
            id="unreadable start still found",
        ),
        pytest.param(
            [_entry("rotateBitLockerKeys", "active", NEW["startDateTime"]), NEW],
            _entry("rotateBitLockerKeys", "active", NEW["startDateTime"]),
            id="a tie keeps the first listed",
        ),
    ],
)
def test_the_latest_started_bitlocker_entry_is_this_rotations(
    results: list[Any], expected: dict[str, Any] | None
) -> None:
    found = rotation_action({"id": "x", "deviceActionResults": results})
    if expected is None:
        assert found is None
        return
    assert found == RotationAction(
        state=expected["actionState"],
        started_at=expected["startDateTime"],
        updated_at=expected["lastUpdatedDateTime"],
        error_code=expected["errorCode"],
    )


def test_times_are_parsed_on_the_tenant_clock_and_codes_kept_signed() -> None:
    found = rotation_action({"deviceActionResults": [OLD]})
    assert found is not None
    assert found.started is not None and found.started.isoformat() == "2026-08-01T10:00:00+00:00"
    assert found.error_code == -2144272166


@pytest.mark.parametrize("code", [None, "", "n/a", True])
def test_an_unreadable_error_code_is_none(code: Any) -> None:
    found = rotation_action({"deviceActionResults": [_entry("rotateBitLockerKeys", "x", "", code)]})
    assert found is not None and found.error_code is None


def test_a_device_without_the_property_has_no_result() -> None:
    assert rotation_action({"id": "x"}) is None
    assert rotation_action({"deviceActionResults": None}) is None
