"""How stored states are shown: the report's statuses, default reasons and counts (pure).

The journal keeps its own states (`pending`, `in_flight`, `resolving`); people see `not_sent`,
`would_rotate` and `uncertain`, with a reason that says what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from batch_rotate.models import ReportRow, Status

_DEFAULT_REASONS = {
    Status.WOULD_ROTATE: "eligible; a rotate request would be sent",
    Status.NOT_SENT: "run stopped before this device was sent; resume the run",
    Status.UNCERTAIN: "sent, but its answer was lost or the run stopped before it was "
    "recorded; resume: the device is checked, and sent again only if Intune has no rotation",
}


def plural(count: int, noun: str, many: str = "", *, sep: str = "") -> str:
    """The count with its noun in agreement: `1 device`, `2 devices`, `0 batches`.

    `many` names an irregular plural; `sep=","` groups thousands (`1,808 rows`)."""
    return f"{count:{sep}} {plural_noun(count, noun, many)}"


def plural_noun(count: int, noun: str, many: str = "") -> str:
    """The noun alone, in agreement with `count` (for text that shows the count elsewhere)."""
    if count == 1:
        return noun
    if many:
        return many
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u", ""):
        return noun[:-1] + "ies"
    return noun + "s"


def shown_status(stored: str, *, dry_run: bool) -> Status:
    """The status a report shows for a journal state."""
    status = Status(stored)
    if status == Status.RESOLVING:
        return Status.NOT_SENT
    if status == Status.PENDING:
        return Status.WOULD_ROTATE if dry_run else Status.NOT_SENT
    if status == Status.IN_FLIGHT:
        return Status.UNCERTAIN
    return status


def shown_counts(stored: Mapping[str, int], *, dry_run: bool) -> dict[str, int]:
    """Counts by shown status."""
    counts: dict[str, int] = {}
    for status, n in stored.items():
        shown = shown_status(status, dry_run=dry_run).value
        counts[shown] = counts.get(shown, 0) + n
    return counts


# Rows of a device the run plans or sent to keep its flag; a duplicate row or a skip does not.
_FLAG_KEPT = frozenset(
    {Status.WOULD_ROTATE, Status.QUEUED, Status.FAILED, Status.NOT_SENT, Status.PENDING}
)


def shown_rows(rows: Iterable[ReportRow], *, dry_run: bool) -> Iterator[ReportRow]:
    """Rows as the report shows them: shown status, a reason for every row, resends flagged."""
    # Per stored status, once: (shown status, its default reason, whether a flag is kept).
    # Enum lookups and hashes run in Python: per row they were a tenth of a report (issue 23).
    looks: dict[str, tuple[str, str, bool]] = {}
    for row in rows:
        look = looks.get(row.status)
        if look is None:
            status = shown_status(row.status, dry_run=dry_run)
            look = looks[row.status] = (
                status.value,
                _DEFAULT_REASONS.get(status, ""),
                status in _FLAG_KEPT,
            )
        shown, default, flag_kept = look
        reason = row.reason or default
        if row.flag and flag_kept and row.flag not in reason:
            reason = f"{reason}; {row.flag}" if reason else row.flag  # the answer took its place
        if row.confirmed_after_lost_answer:
            reason = f"confirmed_after_lost_answer: {reason}"
        if row.resent_after_interrupt:
            if shown == Status.NOT_SENT.value and not row.reason:
                reason = "sent before an interrupt without a recorded answer; resume sends it again"
            reason = f"resent_after_interrupt: {reason}"
        if shown == row.status and reason == row.reason:
            yield row  # most rows of a finished run: no copy
        else:
            yield _shown_as(row, shown, reason)


_STATUS, _REASON = ReportRow._fields.index("status"), ReportRow._fields.index("reason")


def _shown_as(row: ReportRow, status: str, reason: str) -> ReportRow:
    """`row` with another status and reason (`_replace` builds a dict per call: a million-row
    plan's report changes nearly every row, issue 23)."""
    values = list(row)
    values[_STATUS], values[_REASON] = status, reason
    return ReportRow._make(values)
