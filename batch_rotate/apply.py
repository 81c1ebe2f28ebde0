"""Plan, then apply exactly that plan: `rotate --plan RUN` sends to the devices the reviewed plan
marked `would_rotate`, with the plan's recorded choices, and nothing else.

Refused when the plan is older than the limit or its input file changed since (SHA-256). The
devices are resolved and checked again, so drift is shown: a device eligible now but not in the
plan is held back (`not_in_plan`), and planned devices that are no longer eligible are counted in
a warning (each keeps its own reason in the report).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batch_rotate.commandline import command
from batch_rotate.errors import InputError, JournalError
from batch_rotate.journal import Journal, has_journal, journal_errors
from batch_rotate.models import IdKind
from batch_rotate.present import plural
from batch_rotate.tenant_clock import parse_graph_time


@dataclass(frozen=True)
class PlanToApply:
    run_dir: Path
    max_age_s: float = 86400.0


@dataclass(frozen=True)
class ReviewedPlan:
    run_id: str
    input_file: Path
    input_sha256: str
    id_column: str | None
    id_kind: IdKind | None
    device_ids: frozenset[str]  # Intune ids, lower-case, the plan marked would_rotate


def load_plan(plan: PlanToApply, *, now: datetime | None = None) -> ReviewedPlan:
    """The reviewed plan, or an InputError that says why it cannot be applied and what to do."""
    run_dir = plan.run_dir
    if not has_journal(run_dir):
        raise JournalError(f"--plan {run_dir}: no run journal here; give reports/<run-id>")
    with journal_errors(run_dir), closing(Journal.open(run_dir, write=False)) as journal:
        meta = journal.meta()
        again = f"plan it again: {command('plan', Path(meta.get('input_file', 'INPUT')))}"
        if meta.get("dry_run") != "True" or meta.get("state") != "plan":
            raise InputError(
                f"--plan {run_dir}: not a finished plan (state {meta.get('state', '?')}); {again}"
            )
        ended = parse_graph_time(meta.get("ended_at", ""))
        age_s = ((now or datetime.now(UTC)) - ended).total_seconds() if ended else None
        if age_s is None or age_s > plan.max_age_s:
            shown = f"{age_s / 3600:.1f} h old" if age_s is not None else "of unknown age"
            raise InputError(
                f"--plan {run_dir} is {shown}, older than --plan-max-age "
                f"{plan.max_age_s / 3600:g}h: the tenant may have changed since; {again}"
            )
        ids = frozenset(t.device_id.lower() for t in journal.pending_devices())
    path = Path(meta.get("input_file", ""))
    if not path.is_file():
        raise InputError(f"--plan {run_dir}: its input {path} is gone; {again}")
    kind = meta.get("id_kind", "")
    return ReviewedPlan(
        run_dir.name,
        path,
        meta.get("input_sha256", ""),
        meta.get("id_column") or None,
        IdKind(kind) if kind in {k.value for k in IdKind} else None,
        ids,
    )


def check_same_input(plan: ReviewedPlan, sha256: str) -> None:
    if sha256 != plan.input_sha256:
        raise InputError(
            f"{plan.input_file} changed since the plan {plan.run_id} was made (SHA-256 "
            f"{plan.input_sha256[:12]}… then, {sha256[:12]}… now); review a new plan: "
            + command("plan", plan.input_file)
        )


def restrict_to_plan(journal: Journal, plan: ReviewedPlan) -> list[str]:
    """Hold back what the plan did not mark; say what drifted since. Returns the warnings."""
    pending = {t.device_id.lower(): t.row for t in journal.pending_devices()}
    extra = {
        row: f"not_in_plan: the reviewed plan {plan.run_id} did not rotate this device; plan "
        "again to include it"
        for device_id, row in pending.items()
        if device_id not in plan.device_ids
    }
    journal.skip(extra)
    journal.set_meta(plan_run=plan.run_id)
    warnings = []
    if extra:
        warnings.append(
            f"{plural(len(extra), 'device')} eligible now but not in the reviewed plan "
            f"{plan.run_id} are held back (not_in_plan)"
        )
    drifted = len(plan.device_ids - pending.keys())
    if drifted:
        warnings.append(
            f"drift since the plan {plan.run_id}: {plural(drifted, 'device')} it would rotate "
            "are no longer eligible or found and are not sent (each row's reason says why)"
        )
    return warnings
