"""Verification verdicts (pure) and their journal round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_rotate.journal import Journal
from batch_rotate.journal_plan import MatchTexts
from batch_rotate.models import Device, DeviceRef, IdKind, Outcome, Status
from batch_rotate.settings import parse_duration
from batch_rotate.verify import Evidence, explain, keys_strategy, verdict

REQUESTED = "2026-11-27T01:00:00.000Z"  # this rotation's reference, on the tenant's clock
STARTED = "2026-11-27T00:59:59Z"  # its action result's start (Date is whole seconds, later)


@pytest.mark.parametrize(
    ("evidence", "status", "needle"),
    [
        (
            Evidence(
                "done",
                None,
                STARTED,
                key_times=("2026-11-27T01:05:00Z",),
                key_volumes=("operatingSystemVolume",),
            ),
            "verified",
            "operatingSystemVolume",
        ),
        (
            Evidence("pending", None, STARTED, key_times=("2026-11-27T01:05:00Z",)),
            "verified",
            "01:05",
        ),
        (
            Evidence("done", None, STARTED, key_times=("2026-11-26T01:05:00Z",)),
            "done_no_new_key",
            "no key newer",
        ),
        (Evidence("failed", -2144272166, STARTED, key_times=()), "failed", "0x803100DA"),
        (Evidence("notSupported", None, STARTED, key_times=()), "not_supported", "cannot rotate"),
        (
            Evidence("pending", None, STARTED, last_check_in="2026-11-20T00:00:00Z", key_times=()),
            "pending",
            "2026-11-20",
        ),
        (Evidence("", None, key_times=()), "pending", "not listed yet"),
        (
            Evidence("done", None, STARTED, key_times=None, key_error="403"),
            "unknown",
            "BitlockerKey.ReadBasic.All",
        ),
    ],
)
def test_each_verdict_from_its_evidence(evidence: Evidence, status: str, needle: str) -> None:
    result = verdict(2, REQUESTED, evidence)
    assert result.status == status
    assert needle in result.detail


def test_key_ceiling_is_flagged() -> None:
    times = tuple("2026-01-01T00:00:00Z" for _ in range(195))
    result = verdict(2, REQUESTED, Evidence("done", None, STARTED, key_times=times))
    assert "key_ceiling: 195 keys" in result.detail and result.key_count == 195


def test_error_codes_are_explained_in_hex_with_a_fix() -> None:
    assert explain(-2144272166).startswith("0x803100DA: recovery information backup")
    assert "Required" in explain(-2144272166)
    assert explain(-2144272159).startswith("0x803100E1")
    assert explain(12345).startswith("0x00003039: an error code this tool does not know")
    assert "BitLocker-API event log" in explain(12345)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1.5h", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration() -> None:
    with pytest.raises(ValueError, match="90s, 10m"):
        parse_duration("soon")


def test_journal_keeps_verdicts_and_targets_only_unfinished(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "run", {})
    journal.add_refs(DeviceRef(r, f"d{r}", IdKind.INTUNE_ID, f"d{r}") for r in (2, 3))
    journal.add_inventory(
        (
            Device(
                id=f"d{r}",
                entra_device_id=f"e{r}",
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
            Outcome(row=2, status=Status.QUEUED, http_status=204),
            Outcome(row=3, status=Status.QUEUED, http_status=204),
        ]
    )
    assert [t.row for t in journal.verification_targets()] == [2, 3]
    journal.record_verification(
        [
            verdict(2, REQUESTED, Evidence("done", None, key_times=("2026-11-27T02:00:00Z",))),
            verdict(3, REQUESTED, Evidence("pending", None, key_times=())),
        ]
    )
    assert [t.row for t in journal.verification_targets()] == [3]
    assert journal.verification_counts() == {"verified": 1, "pending": 1}
    rows = {r.row: r for r in journal.report_rows()}
    assert rows[2].verification == "verified" and rows[2].new_key_at == "2026-11-27T02:00:00Z"
    assert rows[3].verification == "pending"


@pytest.mark.parametrize(
    ("created", "newer"),
    [
        ("2026-11-27T01:00:00.5Z", True),
        ("2026-11-27T00:59:55Z", True),  # exactly the reference less the 5 s margin
        ("2026-11-27T00:59:55.0000001Z", True),
        ("2026-11-27T00:59:54.9999999Z", False),
        ("2026-11-27T02:00:00+01:00", True),
        ("2026-11-27T01:59:54+01:00", False),
        ("2026-11-26T01:00:01Z", False),
        ("not a time", False),
    ],
)
def test_a_key_is_new_from_the_reference_less_the_margin(created: str, newer: bool) -> None:
    result = verdict(2, REQUESTED, Evidence("done", None, STARTED, key_times=(created,)))
    assert (result.status == "verified") is newer


@pytest.mark.parametrize(
    ("wanted", "inventory", "choice", "expected"),
    [
        (50, None, "auto", "per-device"),  # tenant size unknown (looked up by id)
        (50, 100_000, "auto", "per-device"),  # 50 reads beat ~1,000 pages
        (50_000, 100_000, "auto", "listing"),  # ~1,000 pages beat 50,000 reads
        (50_000, 100_000, "per-device", "per-device"),
        (5, 100, "listing", "listing"),
    ],
)
def test_key_read_strategy_by_cost(
    wanted: int, inventory: int | None, choice: str, expected: str
) -> None:
    assert keys_strategy(wanted, inventory, choice) == expected
