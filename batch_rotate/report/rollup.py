"""The campaign roll-up: every tenant's run in one workbook and CSV files (issue 21).

Each tenant's journal is read once, streamed: its rows go to the Devices sheet and rollup.csv
while a tally counts them; the Summary sheet (the first tab) and rollup-summary.csv are written
from the tallies after. The same lines feed the campaign's --json document and its console.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from batch_rotate.campaign_model import TenantOutcome
from batch_rotate.errors import BatchRotateError
from batch_rotate.journal import Journal, disk_full, is_disk_full, journal_errors
from batch_rotate.models import ReportRow, Status, Verification
from batch_rotate.report.cells import BARS, neutralise, shown_row, text_cell
from batch_rotate.report.devices import COLUMNS, EXCEL_MAX_ROWS, DeviceSheets
from batch_rotate.report.failures import STAGE_REQUEST, FailureGroups
from batch_rotate.report.files import open_book, replacing
from batch_rotate.report.xlsx import Book, Series, StackedChart, column_letter
from batch_rotate.runs import report_rows

ROLLUP_XLSX = "rollup.xlsx"
ROLLUP_CSV = "rollup.csv"
ROLLUP_SUMMARY_CSV = "rollup-summary.csv"
ROLLUP_SCHEMA_VERSION = 1
# The statuses of rows never sent because of the row itself: the report's grey tone.
NOT_ELIGIBLE: tuple[Status, ...] = (
    Status.INELIGIBLE,
    Status.NOT_FOUND,
    Status.AMBIGUOUS,
    Status.DUPLICATE,
    Status.INVALID_INPUT,
)
_TENANT_COLUMNS = (("Tenant", 30.0), ("Tenant ID", 38.0))  # in front of the report's columns
_FIELDS = attrgetter(*(name for name, _ in COLUMNS))


@dataclass(frozen=True)
class RollupPaths:
    """Where the roll-up files were written."""

    xlsx: Path
    csv: Path  # every device, with its tenant
    summary_csv: Path  # the Summary sheet's lines, for scripts


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
class _Tally:
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


def _line(outcome: TenantOutcome, tally: _Tally, campaign_dir: Path | None) -> TenantLine:
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


def _totals(lines: Sequence[TenantLine]) -> TenantLine:
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


def _tenant_rows(outcome: TenantOutcome, tally: _Tally) -> Iterator[ReportRow]:
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
        tally = _Tally()
        for _ in _tenant_rows(outcome, tally):
            pass
        lines.append(_line(outcome, tally, campaign_dir))
    return [*lines, _totals(lines)]


def rollup_document(
    outcomes: Sequence[TenantOutcome],
    *,
    campaign_dir: Path | None = None,
    paths: RollupPaths | None = None,
    lines: Sequence[TenantLine] | None = None,
) -> dict[str, Any]:
    """The --json document of a campaign (schemas/rollup.schema.json).

    `lines`: the summary already read (by `write_rollup`), else the journals are read here.
    """
    if lines is None:
        lines = rollup_summary(outcomes, campaign_dir=campaign_dir)
    files: dict[str, str | None] = {"xlsx": None, "csv": None, "summary_csv": None}
    if paths is not None:
        files = {
            "xlsx": str(paths.xlsx),
            "csv": str(paths.csv),
            "summary_csv": str(paths.summary_csv),
        }
    return {
        "schema_version": ROLLUP_SCHEMA_VERSION,
        "campaign_dir": str(campaign_dir) if campaign_dir is not None else None,
        "tenants": [line.record() for line in lines if not line.total],
        "totals": next(line.record() for line in lines if line.total),
        "reports": files,
    }


# --- the files --------------------------------------------------------------------------------
# (header, width) of the Summary sheet and rollup-summary.csv, in order
SUMMARY_COLUMNS: tuple[tuple[str, float], ...] = (
    ("Tenant", 30),
    ("Tenant ID", 38),
    ("Sign-in", 16),
    ("Pre-flight", 30),
    ("Fix", 50),
    ("Rows read", 11),
    *((status.value.replace("_", " ").capitalize(), 13) for status in NOT_ELIGIBLE),
    ("Sent", 8),
    ("Queued", 10),
    ("Failed", 9),
    ("Failed by error", 36),
    ("Uncertain", 12),
    ("Not sent", 11),
    ("Verified", 11),
    ("Pending verification", 14),
    ("Not verified", 13),
    ("Device errors (verify)", 30),
    ("Budget use (%)", 11),
    ("Duration (s)", 12),
    ("Exit code", 10),
    ("Run folder", 40),
    ("Notes", 50),
)


def _codes(groups: tuple[tuple[str, int], ...]) -> str:
    return "; ".join(f"{code} {count}" for code, count in groups)


def _cells(line: TenantLine) -> list[int | float | str]:
    """The line's values in SUMMARY_COLUMNS order: numbers, and inert text."""
    budget = "" if line.budget_use is None else round(line.budget_use * 100, 1)
    duration = "" if line.duration_s is None else round(line.duration_s, 1)
    texts = (line.tenant, line.tenant_id, line.sign_in, line.preflight, line.fix)
    return [
        *(neutralise(text) for text in texts),
        line.rows,
        *(line.not_eligible[s.value] for s in NOT_ELIGIBLE),
        line.sent,
        line.queued,
        line.failed,
        neutralise(_codes(line.failed_by_error)),
        line.uncertain,
        line.not_sent,
        line.verified,
        line.pending_verification,
        line.not_verified,
        neutralise(_codes(line.device_errors)),
        budget,
        duration,
        "" if line.exit_code is None else line.exit_code,
        neutralise(line.run_dir),
        neutralise(line.note),
    ]


def write_rollup(
    campaign_dir: Path,
    outcomes: Sequence[TenantOutcome],
    *,
    max_sheet_rows: int = EXCEL_MAX_ROWS,
) -> RollupPaths:
    """Write rollup.xlsx, rollup.csv and rollup-summary.csv in one pass over the journals.

    Each file is swapped in atomically once all are complete. `max_sheet_rows` (header
    included) is Excel's limit; tests lower it to see the Devices sheets split.
    """
    paths = RollupPaths(
        campaign_dir / ROLLUP_XLSX, campaign_dir / ROLLUP_CSV, campaign_dir / ROLLUP_SUMMARY_CSV
    )
    headers = [h for h, _ in _TENANT_COLUMNS] + [header for _, header in COLUMNS]
    try:
        campaign_dir.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            devices_csv = stack.enter_context(
                stack.enter_context(replacing(paths.csv)).open(
                    "w", encoding="utf-8-sig", newline=""
                )
            )
            writer = csv.writer(devices_csv)  # excel dialect, as report.csv
            writer.writerow(headers)
            book = stack.enter_context(open_book(stack.enter_context(replacing(paths.xlsx))))
            sheets = DeviceSheets(book, max_sheet_rows, lead=_TENANT_COLUMNS)
            lines = []
            for outcome in outcomes:
                tally = _Tally()
                lead = [
                    neutralise(outcome.entry.label),
                    neutralise(outcome.tenant_id or outcome.entry.tenant),
                ]
                for row in _tenant_rows(outcome, tally):
                    values = lead + shown_row(_FIELDS(row))
                    writer.writerow(values)
                    sheets.append(values)
                lines.append(_line(outcome, tally, campaign_dir))
            lines.append(_totals(lines))
            sheets.finish()
            _summary_sheet(book, lines)
            book.close()
            summary_csv = stack.enter_context(
                stack.enter_context(replacing(paths.summary_csv)).open(
                    "w", encoding="utf-8-sig", newline=""
                )
            )
            summary_writer = csv.writer(summary_csv)
            summary_writer.writerow([header for header, _ in SUMMARY_COLUMNS])
            summary_writer.writerows(_cells(line) for line in lines)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(campaign_dir, exc, "the roll-up") from None
        raise BatchRotateError(
            f"cannot write the roll-up in {campaign_dir}: {exc}. Close {ROLLUP_XLSX} if it is "
            "open (Excel locks it on Windows), check free space and permissions, then write it "
            "again; every tenant's journal is intact."
        ) from exc
    return paths


# Chart segments: (header, colour, the line's count); together they add up to its rows.
_SEGMENTS: tuple[tuple[str, str, Callable[[TenantLine], int]], ...] = (
    ("Verified", BARS["green"], lambda line: line.verified),
    ("Queued, not verified", "A9D18E", lambda line: line.queued - line.verified),
    ("Failed or uncertain", BARS["red"], lambda line: line.failed + line.uncertain),
    ("Not sent", BARS["amber"], lambda line: line.not_sent),
    ("Not eligible", BARS["grey"], lambda line: line.ineligible),
)


def _summary_sheet(book: Book, lines: Sequence[TenantLine]) -> None:
    """Tenants as a table, the totals line under it, then the chart and the counts it reads."""
    sheet = book.sheet("Summary", widths=[w for _, w in SUMMARY_COLUMNS], freeze=True, first=True)
    headers = tuple(header for header, _ in SUMMARY_COLUMNS)
    sheet.append([text_cell(header, bold=True) for header in headers])
    tenants = [line for line in lines if not line.total]
    for line in tenants:
        sheet.append(_cells(line))
    last = max(len(tenants) + 1, 2)  # a table needs a data row: an empty one, as Excel
    sheet.add_table("Tenants", f"A1:{column_letter(len(headers))}{last}", headers)
    if not tenants:
        sheet.append([])
    sheet.append([text_cell(v, bold=True) if isinstance(v, str) else v for v in _cells(lines[-1])])
    sheet.append([])
    chart_header = sheet.append(
        [text_cell(h, bold=True) for h in ("Devices by outcome", *(s for s, _, _ in _SEGMENTS))]
    )
    for line in tenants:
        sheet.append([neutralise(line.tenant), *(count(line) for _, _, count in _SEGMENTS)])
    series = tuple(
        Series(column_letter(i), name, colour, tuple(float(count(line)) for line in tenants))
        for i, (name, colour, count) in enumerate(_SEGMENTS, start=2)
    )
    height_cm = max(8.0, 2.5 + 0.55 * len(tenants))  # a readable bar per tenant
    sheet.add_chart(
        StackedChart(
            "Devices by tenant",
            (7, chart_header - 1),
            chart_header,
            "A",
            tuple(neutralise(line.tenant) for line in tenants),
            series,
            (18.0, height_cm),
        )
    )


__all__ = [
    "NOT_ELIGIBLE",
    "ROLLUP_CSV",
    "ROLLUP_SUMMARY_CSV",
    "ROLLUP_XLSX",
    "SUMMARY_COLUMNS",
    "RollupPaths",
    "TenantLine",
    "rollup_document",
    "rollup_summary",
    "write_rollup",
]
