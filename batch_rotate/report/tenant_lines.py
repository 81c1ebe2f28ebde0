"""A campaign's lines: one per tenant and the totals, counted from each tenant's journal.

The roll-up's Summary sheet, rollup-summary.csv, the campaign's --json document and its console
all show these lines. Rows are counted as they stream past; nothing holds a tenant's rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_rotate.campaign_model import TenantOutcome
from batch_rotate.errors import BatchRotateError
from batch_rotate.journal import Journal, journal_errors
from batch_rotate.models import ReportRow, Status, Verification
from batch_rotate.report.failures import STAGE_REQUEST, FailureGroups
from batch_rotate.runs import report_rows

# The statuses of rows never sent because of the row itself: the report's grey tone.
NOT_ELIGIBLE: tuple[Status, ...] = (
    Status.INELIGIBLE,
    Status.NOT_FOUND,
    Status.AMBIGUOUS,
    Status.DUPLICATE,
    Status.INVALID_INPUT,
)


@dataclass(frozen=True)
class TenantLine:
    """One tenant's line of the roll-up (or, with `total`, the campaign's totals line)."""

    tenant: str  # the display name (or the tenant as written when it has none)
    tenant_id: str
    sign_in: str
    preflight: str  # "ok" or why the tenant was not run
    fix: str
    rows: int  # rows read from the tenant's device list
    not_eligible: dict[str, int]  # by NOT_ELIGIBLE status, every one present
    queued: int
    failed: int
    uncertain: int  # sent, the answer never recorded (resume checks them)
    not_sent: int  # planned (a plan) or stopped before they were sent
    failed_by_error: tuple[tuple[str, int], ...]  # rotate requests: (Graph error code, devices)
    verified: int
    pending_verification: int  # queued, not yet verified (or not yet checked)
    not_verified: int  # queued, `verify` found no new key (failed, no new key, unsupported, ...)
    device_errors: tuple[tuple[str, int], ...]  # verify: (device error code, devices)
    budget_use: float | None  # share of the write budget used while sending
    duration_s: float | None
    exit_code: int | None
    run_dir: str
    note: str = ""  # a journal that could not be read, and why
    total: bool = False

    @property
    def sent(self) -> int:
        return self.queued + self.failed + self.uncertain

    @property
    def ineligible(self) -> int:
        return sum(self.not_eligible.values())

    def record(self) -> dict[str, Any]:
        """This line as a JSON object (rollup.schema.json); the tenant named on every record."""
        return {
            "tenant": self.tenant,
            "tenant_id": self.tenant_id,
            "sign_in": self.sign_in,
            "preflight": self.preflight,
            "fix": self.fix,
            "rows": self.rows,
            "not_eligible": dict(self.not_eligible),
            "sent": self.sent,
            "queued": self.queued,
            "failed": self.failed,
            "failed_by_error": dict(self.failed_by_error),
            "uncertain": self.uncertain,
            "not_sent": self.not_sent,
            "verified": self.verified,
            "pending_verification": self.pending_verification,
            "not_verified": self.not_verified,
            "device_errors": dict(self.device_errors),
            "budget_use": self.budget_use,
            "duration_s": self.duration_s,
            "exit_code": self.exit_code,
            "run_dir": self.run_dir or None,
            "note": self.note or None,
        }


@dataclass
class Tally:
    """One tenant's rows counted as they stream past (bounded: counters and a few examples)."""

    statuses: Counter[str] = field(default_factory=Counter)
    verification: Counter[str] = field(default_factory=Counter)
    failures: FailureGroups = field(default_factory=FailureGroups)
    note: str = ""

    def add(self, row: ReportRow) -> None:
        self.statuses[row.status] += 1
        if row.status == Status.QUEUED:
            self.verification[row.verification or Verification.PENDING] += 1
        if row.status == Status.FAILED or row.verification == Verification.FAILED:
            self.failures.add(row)


def _counted(groups: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """Largest first, then by code: `TooManyRequests 2; Forbidden 1`."""
    return tuple(sorted(groups, key=lambda kv: (-kv[1], kv[0])))


def tenant_line(outcome: TenantOutcome, tally: Tally, campaign_dir: Path | None) -> TenantLine:
    counts, checks = tally.statuses, tally.verification
    queued = counts[Status.QUEUED]
    verified, pending = checks[Verification.VERIFIED], checks[Verification.PENDING]
    groups = tally.failures.sorted()
    run_dir = "" if outcome.run_dir is None else _folder(outcome.run_dir, campaign_dir)
    return TenantLine(
        tenant=outcome.entry.label,
        tenant_id=outcome.tenant_id or outcome.entry.tenant,
        sign_in=outcome.sign_in,
        preflight=outcome.preflight,
        fix=outcome.fix,
        rows=sum(counts.values()),
        not_eligible={s.value: counts[s] for s in NOT_ELIGIBLE},
        queued=queued,
        failed=counts[Status.FAILED],
        uncertain=counts[Status.UNCERTAIN],
        not_sent=counts[Status.NOT_SENT] + counts[Status.WOULD_ROTATE],
        failed_by_error=tuple(
            (code, g.count) for stage, code, g in groups if stage == STAGE_REQUEST
        ),
        verified=verified,
        pending_verification=pending,
        not_verified=queued - verified - pending,
        device_errors=tuple((c, g.count) for stage, c, g in groups if stage != STAGE_REQUEST),
        budget_use=outcome.budget_use,
        duration_s=outcome.duration_s if outcome.run_dir is not None else None,
        exit_code=outcome.exit_code,
        run_dir=run_dir,
        note=tally.note,
    )


def _folder(run_dir: Path, campaign_dir: Path | None) -> str:
    """The run folder as found inside the campaign folder, else as given."""
    if campaign_dir is not None:
        try:
            return str(run_dir.resolve().relative_to(campaign_dir.resolve()))
        except (ValueError, OSError):
            pass
    return str(run_dir)


def totals_line(lines: Sequence[TenantLine]) -> TenantLine:
    def merged(pick: str) -> tuple[tuple[str, int], ...]:
        counter: Counter[str] = Counter()
        for line in lines:
            counter.update(dict(getattr(line, pick)))
        return _counted(counter.items())

    ok = sum(line.preflight == "ok" for line in lines)
    tenants = f"{len(lines)} tenant" + ("" if len(lines) == 1 else "s")
    return TenantLine(
        tenant=f"Total ({tenants})",
        tenant_id="",
        sign_in="",
        preflight=f"{ok} ok, {len(lines) - ok} failed",
        fix="",
        rows=sum(line.rows for line in lines),
        not_eligible={
            s.value: sum(line.not_eligible[s.value] for line in lines) for s in NOT_ELIGIBLE
        },
        queued=sum(line.queued for line in lines),
        failed=sum(line.failed for line in lines),
        uncertain=sum(line.uncertain for line in lines),
        not_sent=sum(line.not_sent for line in lines),
        failed_by_error=merged("failed_by_error"),
        verified=sum(line.verified for line in lines),
        pending_verification=sum(line.pending_verification for line in lines),
        not_verified=sum(line.not_verified for line in lines),
        device_errors=merged("device_errors"),
        budget_use=None,  # tenants have budgets of their own: no campaign-wide share
        duration_s=None,  # tenants may run side by side: their durations do not add up
        exit_code=max((line.exit_code or 0 for line in lines), default=0),
        run_dir="",
        total=True,
    )


def tenant_rows(outcome: TenantOutcome, tally: Tally) -> Iterator[ReportRow]:
    """The tenant's rows as its report shows them, counted; an unreadable journal is a note."""
    if outcome.run_dir is None:
        return
    try:
        with (
            journal_errors(outcome.run_dir),
            closing(Journal.open(outcome.run_dir, write=False)) as journal,
        ):
            for row in report_rows(journal):
                tally.add(row)
                yield row
    except BatchRotateError as exc:  # one damaged journal must not hide the other tenants
        tally.note = f"journal unreadable, {sum(tally.statuses.values())} rows read: {exc}"


def rollup_summary(
    outcomes: Sequence[TenantOutcome], *, campaign_dir: Path | None = None
) -> list[TenantLine]:
    """One line per tenant, in the given order, then the totals line (reads every journal)."""
    lines = []
    for outcome in outcomes:
        tally = Tally()
        for _ in tenant_rows(outcome, tally):
            pass
        lines.append(tenant_line(outcome, tally, campaign_dir))
    return [*lines, totals_line(lines)]
