"""The sweep's pure parts: the policy id, the re-send rule, each device's reason, the exit code,
and the auditor's page keeping text from the tenant inert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from batch_rotate.models import Device
from batch_rotate.report.sweep_book import summary_markdown
from batch_rotate.select import Criteria
from batch_rotate.sweep import Policy, _resend
from batch_rotate.sweep_posture import (
    Attempt,
    KeyState,
    Member,
    Why,
    age_bucket,
    posture,
    sweep_exit_code,
    why_not,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TENANT = "00000000-0000-4000-8000-00000000a11c"
DAY = 86400.0


def _device(name: str = "PC-1", **fields: str) -> Device:
    base = {"os": "Windows", "last_sync": "2026-11-30T00:00:00Z", "entra_device_id": "e" * 8}
    return Device(id=f"id-{name}", name=name, **{**base, **fields})


def _attempt(status: str = "queued", verification: str = "pending", days: float = 1.0, **kw):  # type: ignore[no-untyped-def]
    when = NOW - timedelta(days=days)
    fields = {"reason": "", "http_status": None, "detail": "", "key_count": None, **kw}
    return Attempt("S1", "R1", status, fields["reason"], fields["http_status"], verification,
                   fields["detail"], when, fields["key_count"])  # fmt: skip


def test_the_policy_id_is_the_selectors_the_limit_and_the_tenant() -> None:
    a = Policy(Criteria(keys_older_than_s=90 * DAY, group="Finance"), TENANT)
    assert a.id == Policy(Criteria(keys_older_than_s=90 * DAY, group="Finance"), TENANT, "q").id
    assert a.id != Policy(Criteria(keys_older_than_s=91 * DAY, group="Finance"), TENANT).id
    assert a.id != Policy(Criteria(keys_older_than_s=90 * DAY), TENANT).id
    assert a.id != Policy(Criteria(keys_older_than_s=90 * DAY, group="Finance"), "other").id
    named = Policy(Criteria(keys_older_than_s=DAY), TENANT, "../q1 audit")
    assert named.folder(Path("reports")) == Path("reports/sweeps/-q1-audit")  # never outside


def test_resend_waits_for_an_earlier_rotation_but_not_for_a_transient_failure() -> None:
    week = 7 * DAY
    assert _resend(None, NOW, week)
    assert not _resend(_attempt(days=1), NOW, week)  # queued yesterday: verify, do not re-send
    assert _resend(_attempt(days=8), NOW, week)  # pending too long: it never arrived
    assert not _resend(_attempt(verification="failed", days=2), NOW, week)
    failed = _attempt(status="failed", verification="", http_status=503, reason="503 gave up")
    assert _resend(failed, NOW, week)  # transient: at once
    refused = _attempt(status="failed", verification="", http_status=404, reason="404")
    assert not _resend(refused, NOW, week)


def test_reasons_from_the_most_fundamental() -> None:
    keys = KeyState(NOW - timedelta(days=200), 2)
    cloud = _device(model="Cloud PC Enterprise 2vCPU/8GB/128GB")
    assert why_not(cloud, "cloud_pc: ...", keys, None, NOW)[0] is Why.CLOUD_PC
    assert why_not(_device(), None, KeyState(None, 195), _attempt(), NOW)[0] is Why.KEY_CEILING
    gone = _device(last_sync="2026-09-01T00:00:00Z")
    why, detail = why_not(gone, None, keys, _attempt(), NOW)
    assert why is Why.OFFLINE and "since 2026-09-01" in detail
    assert why_not(_device(), None, keys, _attempt(), NOW)[0] is Why.PENDING
    done = _attempt(verification="done_no_new_key")
    assert why_not(_device(), None, KeyState(None, 0), done, NOW)[0] is Why.NO_KEY_ESCROWED
    assert why_not(_device(), None, keys, done, NOW)[0] is Why.NO_NEW_KEY
    failed = _attempt(status="queued", verification="failed", detail="0x80310000: x")
    assert why_not(_device(), None, keys, failed, NOW)[0] is Why.DEVICE_FAILED


def test_exit_codes_and_posture_counts() -> None:
    old = KeyState(NOW - timedelta(days=200), 2)
    members = [
        Member(_device("A"), None, KeyState(NOW - timedelta(days=3), 2), True),
        Member(_device("B"), None, old, False),
        Member(_device("C"), None, old, False),
        Member(_device("D", model="Cloud PC"), "cloud_pc: x", KeyState(None, 0), False),
    ]
    rotated = {"id-B": _attempt(verification="verified"), "id-C": _attempt()}
    p = posture(members, rotated, {"id-B": NOW}, {}, NOW)
    assert (p.population, p.compliant_before, p.compliant_after) == (4, 1, 2)
    assert p.by_why() == {"cloud_pc": 1, "pending": 1}
    assert p.ages_before["180-365d"] == 2 and p.ages_after["0-30d"] == 2
    assert sweep_exit_code(p, run_failed=False) == 75
    done = posture(members[:2] + members[3:], rotated, {"id-B": NOW}, {}, NOW)
    assert sweep_exit_code(done, run_failed=False) == 0  # only a device that cannot comply left
    failed = {"id-C": _attempt(status="failed", verification="", http_status=400, reason="400")}
    assert sweep_exit_code(posture(members, failed, {}, {}, NOW), run_failed=False) == 1
    assert (
        age_bucket(None, NOW) == "no key" and age_bucket(NOW - timedelta(days=400), NOW) == ">365d"
    )


def test_the_summary_keeps_device_names_inert() -> None:
    hostile = _device("=cmd|' /C calc'!A0 <img src=x> [a](http://x) \x1b[31m")
    members = [Member(hostile, None, KeyState(NOW - timedelta(days=200), 2), False)]
    p = posture(members, {}, {}, {}, NOW)
    doc = {
        "sweep_id": "S2",
        "policy": {"id": "abc", "name": None, "tenant_id": TENANT, "keys_older_than_days": 90,
                   "description": "--keys-older-than 90d"},
        "started_at": "2026-12-01T00:00:00Z", "ended_at": "2026-12-01T01:00:00Z",
        "tenant_time": "2026-12-01T00:00:00Z", "machine_user": "ops@host", "credential": "msi",
        "client_id": "", "tool_version": "1", "command_line": "batch-rotate sweep",
        "runs": {"rotation": [], "verified": []}, "exit_code": 1, "trend": [],
    }  # fmt: skip
    page = summary_markdown(doc, p)
    assert "<img" not in page and "](http" not in page and "\x1b" not in page
    assert "&lt;img src=x&gt;" in page and "\\[a\\]\\(http://x\\)" in page
