"""`sweep`: one unattended pass of a key-age policy. It verifies what earlier sweeps of the same
policy left pending, reads the targeted population's keys, sends the due devices as one ordinary
run (every run command works on it), and writes the evidence: sweep.json, sweep.xlsx, summary.md.

It composes runs and reads their journals; it never reaches into a stage (DESIGN.md "sweep").
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import hashlib
import json
import os
import secrets
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from batch_rotate import __version__
from batch_rotate.connect import graph_errors, signed_in
from batch_rotate.eligibility import ineligibility
from batch_rotate.errors import InputError
from batch_rotate.graph.session import GraphSession
from batch_rotate.journal import Journal, has_journal
from batch_rotate.journal_schema import utc_now
from batch_rotate.models import Device, IdKind
from batch_rotate.present import plural
from batch_rotate.run import ConfirmRequest, InputOptions, Progress, RunResult, run_job, verify_run
from batch_rotate.runkit import EXIT_INTERRUPTED
from batch_rotate.runs import new_run_dir, redacted_argv, transient_failure
from batch_rotate.select import AUDIT_BUDGET, Criteria, exclude_listed, needed_permissions
from batch_rotate.select import selectors as sel
from batch_rotate.select.lookup import inventory, tenant_now
from batch_rotate.select.output import write_csv
from batch_rotate.settings import Credentials, Settings
from batch_rotate.sweep_posture import Attempt, KeyState, Member, Posture, posture, sweep_exit_code
from batch_rotate.tenant_clock import parse_graph_time

SWEEP_SCHEMA_VERSION = 1
SWEEPS_DIR = "sweeps"
SWEEP_FILE = "sweep.json"
EVENTS_FILE = "events.jsonl"
SWEEP_META = "sweep_id"  # recorded in the journal of the run a sweep makes (`runs --sweeps`)


@dataclass(frozen=True)
class Policy:
    """What a sweep enforces: the selectors and the key-age limit, in one tenant."""

    criteria: Criteria
    tenant_id: str
    name: str = ""

    def canonical(self) -> dict[str, Any]:
        c = self.criteria
        since = c.exposed_since
        return {
            "tenant_id": self.tenant_id.lower(),
            "keys_older_than_days": (c.keys_older_than_s or 0) / 86400,
            "group": c.group,
            "exposed_since": since.isoformat() if isinstance(since, datetime) else since,
            "read_by": c.read_by,
            "all_windows": c.all_windows,
            "exclude": str(c.exclude.resolve()) if c.exclude else None,
        }

    @property
    def id(self) -> str:
        """Stable for the same selectors, limit and tenant: "same policy" is well defined."""
        text = json.dumps(self.canonical(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        return self.name or self.id

    def folder(self, reports_dir: Path) -> Path:
        slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in self.label)[:60]
        return reports_dir / SWEEPS_DIR / (slug.strip(".") or self.id)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name or None,
            **self.canonical(),
            "description": self.criteria.describe(),
        }


@dataclass(frozen=True)
class SweepOptions:
    max_share: float = 1.0  # of the targeted population, sent at most in one sweep
    resend_after_s: float = 7 * 86400.0  # an earlier sweep's rotation younger than this waits


@dataclass
class SweepResult:
    sweep_dir: Path
    document: dict[str, Any]
    exit_code: int
    run: RunResult | None = None
    messages: list[str] = field(default_factory=list)


def history(policy: Policy, reports_dir: Path) -> list[dict[str, Any]]:
    """This policy's sweeps in this tenant that finished or sent something, oldest first.

    A refused one proves nothing; one interrupted, failed or killed after its rotation run began
    may have rotated devices, which a later sweep must verify and hold, never send again within
    --resend-after."""
    found = []
    for path in policy.folder(reports_dir).glob(f"*/{SWEEP_FILE}"):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        runs = doc.get("runs")
        sent = isinstance(runs, dict) and bool(runs.get("rotation"))
        if doc.get("state") not in ("finished", "interrupted") and not sent:
            continue
        if doc.get("policy", {}).get("id") == policy.id:
            doc["_dir"] = str(path.parent.resolve())
            found.append(doc)
    return sorted(found, key=lambda d: (str(d.get("started_at")), str(d.get("sweep_id"))))


class _Events:
    """The sweep's events.jsonl for a SIEM: one JSON line per phase, owner-only (0600)."""

    def __init__(self, path: Path, sweep_id: str, policy: Policy) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8", newline="\n")
        self._base = {"schema_version": 1, "sweep_id": sweep_id, "policy_id": policy.id}
        self._tenant = policy.tenant_id

    def __call__(self, event: str, **fields: Any) -> None:
        record = {**self._base, "event": event, "at": utc_now(), "tenant_id": self._tenant}
        self._file.write(json.dumps({**record, **fields}, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _rotation_runs(doc: Mapping[str, Any], reports_dir: Path) -> list[Path]:
    """A sweep's run folders as recorded, or by name under `reports_dir` when the history was
    moved (restored into another workspace, another share's mount point)."""
    out = []
    for run in doc.get("runs", {}).get("rotation") or []:
        recorded = Path(run)
        out.append(recorded if has_journal(recorded) else reports_dir / recorded.name)
    return out


def _attempts(earlier: Sequence[Mapping[str, Any]], reports_dir: Path) -> dict[str, Attempt]:
    """Each device's latest attempt across the earlier sweeps' runs (oldest first, newest wins)."""
    latest: dict[str, Attempt] = {}
    for doc in earlier:
        for run_dir in _rotation_runs(doc, reports_dir):
            if has_journal(run_dir):
                latest.update(_run_attempts(run_dir, str(doc.get("sweep_id"))))
    return latest


def _run_attempts(run_dir: Path, sweep_id: str) -> dict[str, Attempt]:
    out: dict[str, Attempt] = {}
    with closing(Journal.open(run_dir, write=False)) as journal:
        for r in journal.report_rows():
            if not r.intune_device_id:
                continue
            out[r.intune_device_id] = Attempt(
                sweep_id,
                run_dir.name,
                r.status,
                r.reason,
                r.http_status,
                r.verification,
                r.verification_detail,
                parse_graph_time(r.accepted_at or r.requested_at),
                r.key_count,
            )
    return out


def _to_verify(
    earlier: Sequence[Mapping[str, Any]], attempts: Mapping[str, Attempt], reports_dir: Path
) -> list[Path]:
    """Earlier runs that hold some device's latest rotation, still unverified: a device sent
    again by a later sweep is no reason to read an old run again (the cost stays bounded)."""
    waiting = {a.run_id for a in attempts.values() if a.status == "queued" and _unverified(a)}
    runs = [run for doc in earlier for run in _rotation_runs(doc, reports_dir)]
    return [run for run in runs if run.name in waiting and has_journal(run)]


def _unverified(attempt: Attempt) -> bool:
    return attempt.verification in ("", "pending")


@dataclass
class Population:
    now: datetime
    members: list[Member]
    due: list[tuple[Device, str]]


async def read_population(
    criteria: Criteria, session: GraphSession, notify: Callable[[str], None]
) -> Population:
    """Every Windows device the policy's selectors (not its key age) take in, with its keys."""
    now = await tenant_now(session)
    whole = not criteria.group and criteria.exposed_since is None
    if whole:  # every key will be wanted: list them while the inventory is listed
        inventoried, every_key = await asyncio.gather(
            inventory(session), sel.tenant_key_metadata(session)
        )
    else:
        inventoried, every_key = await inventory(session), None
    listed = {d.id: d for d in inventoried}
    scope: dict[str, tuple[Device, list[str]]] = {k: (d, []) for k, d in listed.items()}
    if criteria.group:
        picked, _ = await sel.group_members(session, criteria.group)
        scope = {k: v for k, v in scope.items() if k in picked}
    if criteria.exposed_since is not None:
        since = criteria.exposed_since
        since = since if isinstance(since, datetime) else now - timedelta(seconds=since)
        picked, _ = await sel.exposed(session, session.lane(AUDIT_BUDGET), since, criteria.read_by)
        scope = {k: v for k, v in scope.items() if k in picked}
    if criteria.exclude is not None:
        scope, excluded = exclude_listed(scope, criteria.exclude)
        notify(f"--exclude left out {plural(excluded, 'device')}")
    devices = sorted((d for d, _ in scope.values()), key=lambda d: (d.name.lower(), d.id))
    eligible = [d for d in devices if not ineligibility(d)]
    found = every_key if every_key is not None else await sel.key_metadata(session, eligible)
    cutoff = now - timedelta(seconds=criteria.keys_older_than_s or 0)
    members, due = [], []
    for device in devices:
        keys = found.get(device.entra_device_id.lower(), [])
        newest = sel.newest_key(found, device)
        state = (
            KeyState(None, None, keys)
            if isinstance(keys, str)
            else KeyState(newest if isinstance(newest, datetime) else None, len(keys))
        )
        reason = ineligibility(device)
        why = sel.due_because(newest, cutoff, now) if reason is None else ""
        if why:
            due.append((device, why))
        members.append(Member(device, reason, state, reason is None and not why))
    del found  # the key metadata of the whole population: only the states are kept
    notify(
        f"population: {plural(len(devices), 'Windows device')}, {len(eligible)} eligible, "
        f"{len(due)} with a key older than {(criteria.keys_older_than_s or 0) / 86400:g} days "
        "or none"
    )
    return Population(now, members, due)


def _resend(attempt: Attempt | None, now: datetime, resend_after_s: float) -> bool:
    """Send a due device again? Yes after a transient failure, or once the earlier sweep's
    rotation is older than --resend-after (pending too long, failed on the device, no new key)."""
    if attempt is None:
        return True
    if attempt.status != "queued" and transient_failure(attempt.http_status, attempt.reason):
        return True
    if attempt.requested_at is None:
        return attempt.status != "queued"
    return (now - attempt.requested_at).total_seconds() >= resend_after_s


def _who(credentials: Credentials) -> dict[str, str]:
    return {
        "machine_user": f"{getpass.getuser()}@{socket.gethostname()}",
        "credential": credentials.method,
        "client_id": credentials.client_id,
    }


async def run_sweep(
    policy: Policy,
    *,
    settings: Settings,
    credentials: Credentials,
    options: SweepOptions = SweepOptions(),
    context_meta: Mapping[str, str] | None = None,
    argv: Sequence[str] = (),
    confirm: Callable[[ConfirmRequest], bool] | None = None,
    on_progress: Progress | None = None,
    notify: Callable[[str], None] = lambda _: None,
) -> SweepResult:
    """Verify, select, rotate, report: one sweep; idempotent within --resend-after.

    Long because it is the sweep's sequence, each phase logged as an event.
    """
    from batch_rotate.report.sweep_book import write_evidence

    started = utc_now()
    sweep_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    sweep_dir = policy.folder(settings.reports_dir) / sweep_id
    sweep_dir.mkdir(parents=True, exist_ok=False)
    earlier = history(policy, settings.reports_dir)
    events = _Events(sweep_dir / EVENTS_FILE, sweep_id, policy)
    doc: dict[str, Any] = {
        "schema_version": SWEEP_SCHEMA_VERSION,
        "command": "sweep",
        "sweep_id": sweep_id,
        "sweep_dir": str(sweep_dir.resolve()),
        "policy": policy.as_json(),
        "previous_sweep": (
            {"sweep_id": earlier[-1]["sweep_id"], "sweep_dir": earlier[-1]["_dir"]}
            if earlier
            else None
        ),
        "state": "running",
        "started_at": started,
        "ended_at": None,
        "tenant_time": None,
        "tool_version": __version__,
        **_who(credentials),
        "command_line": redacted_argv(argv or sys.argv),
        "options": {"max_share": options.max_share, "resend_after_s": options.resend_after_s},
        "runs": {"verified": [], "rotation": []},
    }
    try:
        events("sweep_started", previous=doc["previous_sweep"], policy=policy.as_json())
        # 1. what earlier sweeps left pending: verified first, so the key read below sees it
        reports = settings.reports_dir
        verified_runs = _to_verify(earlier, _attempts(earlier, reports), reports)
        once = dataclasses.replace(settings, verify_wait_s=0.0)
        for run_dir in verified_runs:
            checked = await verify_run(
                run_dir, settings=once, credentials=credentials, notify=notify
            )
            doc["runs"]["verified"].append(str(run_dir.resolve()))
            events("earlier_verified", run_dir=str(run_dir), counts=checked.verification_counts)
        attempts = _attempts(earlier, reports)
        # 2. the population and its keys, on the read budget
        with graph_errors():
            async with signed_in(
                credentials, settings, also=needed_permissions(policy.criteria)
            ) as session:
                population = await read_population(policy.criteria, session, notify)
        now = population.now
        doc["tenant_time"] = now.isoformat(timespec="seconds").replace("+00:00", "Z")
        # 3. re-target: the due devices, less those an earlier sweep's rotation still covers
        to_send, held = [], {}
        for device, why in population.due:
            attempt = attempts.get(device.id)
            if _resend(attempt, now, options.resend_after_s):
                again = f"; again after {attempt.sweep_id}" if attempt else ""
                to_send.append((device, why + again))
            elif attempt is not None:
                held[device.id] = attempt
        counts = {
            "population": len(population.members),
            "due": len(population.due),
            "to_send": len(to_send),
            "held": len(held),
            "retargeted": sum(1 for d, _ in to_send if d.id in attempts),
        }
        doc["counts"] = counts
        events("selected", **counts)
        notify(
            f"sweep {sweep_id}: {plural(len(to_send), 'device')} to rotate, "
            f"{len(held)} held (an earlier sweep's rotation is younger than --resend-after)"
        )
        # 4. guards, then one ordinary run
        _guard(len(to_send), len(population.members), settings, options)
        run: RunResult | None = None
        if to_send:
            request = ConfirmRequest(
                credentials.tenant_id,
                settings.endpoints.graph_url,
                len(to_send),
                [f"{d.name or d.id} ({d.id})" for d, _ in to_send[:5]],
            )
            if confirm is not None and not confirm(request):
                raise InputError("not confirmed: nothing was sent")
            run_dir = new_run_dir(settings.reports_dir, Path("sweep.csv"))
            listed = write_csv(run_dir / "sweep.csv", to_send)
            meta = {**(context_meta or {}), SWEEP_META: sweep_id, "sweep_policy": policy.id}
            # Recorded before anything is sent: however this process ends, the next sweep finds
            # the run and holds what it sent.
            doc["runs"]["rotation"].append(str(run_dir.resolve()))
            _write_json(sweep_dir / SWEEP_FILE, doc)
            run = await run_job(
                settings=settings,
                credentials=credentials,
                inputs=InputOptions(listed, id_column="Device ID", id_kind=IdKind.INTUNE_ID),
                argv=argv,
                on_progress=on_progress,
                notify=notify,
                run_dir=run_dir,
                context_meta=meta,
            )
            events("rotated", run_dir=str(run_dir), counts=run.counts)
        # 5. after: this sweep's rotations count once verify saw the new key
        mine = _run_attempts(run.run_dir, sweep_id) if run is not None else {}
        # the new key's bucket: made after the request, so the request's time bounds its age
        verified_now = {
            k: when
            for k, a in mine.items()
            if a.verification == "verified" and (when := a.requested_at) is not None
        }
        result_posture = posture(population.members, {**attempts, **mine}, verified_now, held, now)
        code = (
            EXIT_INTERRUPTED
            if run is not None and run.interrupted
            else sweep_exit_code(result_posture, run_failed=run is not None and run.exit_code == 1)
        )
        _finish(
            doc,
            result_posture,
            earlier,
            code,
            "interrupted" if code == EXIT_INTERRUPTED else "finished",
        )
        _write_json(sweep_dir / SWEEP_FILE, doc)
        write_evidence(sweep_dir, doc, result_posture)
        events("sweep_finished", exit_code=code, posture=result_posture.as_json())
        return SweepResult(sweep_dir, doc, code, run)
    except BaseException as exc:
        stopped = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
        refused = isinstance(exc, InputError)
        doc.update(state="interrupted" if stopped else "refused" if refused else "failed")
        doc.update(ended_at=utc_now(), stopped_because=str(exc) or type(exc).__name__)
        _write_json(sweep_dir / SWEEP_FILE, doc)
        events("sweep_stopped", state=doc["state"], reason=doc["stopped_because"])
        raise
    finally:
        events.close()


def _guard(count: int, population: int, settings: Settings, options: SweepOptions) -> None:
    """--max-devices and --max-share refuse before anything is sent (exit 2)."""
    if count > settings.max_devices:
        raise InputError(
            f"the sweep would rotate {plural(count, 'device')}, more than --max-devices "
            f"{settings.max_devices}; nothing was sent: check the policy, then run again with "
            f"--max-devices {count}"
        )
    if population and count > options.max_share * population:
        raise InputError(
            f"the sweep would rotate {count} of {plural(population, 'device')} "
            f"({count / population:.0%}), more than --max-share {options.max_share:g}; nothing "
            f"was sent: check the policy, then run again with --max-share "
            f"{min(1.0, (count / population) + 0.005):.2f}"
        )


def _finish(
    doc: dict[str, Any], p: Posture, earlier: Sequence[Mapping[str, Any]], code: int, state: str
) -> None:
    point = {
        "sweep_id": doc["sweep_id"],
        "tenant_time": doc["tenant_time"],
        "population": p.population,
        "compliant_before": p.compliant_before,
        "compliant_after": p.compliant_after,
        "share_before": p.share(p.compliant_before),
        "share_after": p.share(p.compliant_after),
        "rotated": doc["counts"]["to_send"],
    }
    trend = [t for t in (e.get("trend", [])[-1:] for e in earlier) for t in t]
    doc.update(
        state=state,
        ended_at=utc_now(),
        exit_code=code,
        posture=p.as_json(),
        exceptions=[
            {
                "intune_device_id": e.device.id,
                "device_name": e.device.name,
                "reason": e.why.value,
                "detail": e.detail,
            }
            for e in p.exceptions
        ],
        trend=[*trend, point],
        files={"json": SWEEP_FILE, "xlsx": "sweep.xlsx", "summary": "summary.md"},
    )


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Atomically: an auditor's copy is never half written."""
    partial = path.with_name(path.name + ".partial")
    shown = {k: v for k, v in doc.items() if not k.startswith("_")}
    partial.write_text(json.dumps(shown, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
