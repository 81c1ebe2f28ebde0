"""A campaign: one ordinary run per customer tenant, all in one event loop, one confirmation for
all of them, one folder and one roll-up (issue 21).

Each tenant is a lane: its own sign-in (authority `{host}/{tenant}`, its own MSAL app and token
cache), its own pacer, concurrency and breaker (its own `GraphSession`), so Intune's per-app
per-tenant budget is used in every tenant at once and one tenant's throttling or outage never slows
another. Pre-flight is everything a run does before its first write (sign-in and `tid`, consent,
permissions, Intune access, resolution): every lane stops at the gate before its first write until
every other lane has reached it or failed, then the operator confirms once for all. So nothing is
written anywhere before every tenant has been checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batch_rotate.campaign_model import CAMPAIGN_FILE, TenantEntry, TenantOutcome
from batch_rotate.commandline import command, relative
from batch_rotate.context import RunContext, build
from batch_rotate.errors import AuthError, BatchRotateError, GraphError, InputError
from batch_rotate.events import claim_run_log
from batch_rotate.exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_PENDING
from batch_rotate.graph.session import GraphSession
from batch_rotate.interrupts import Interrupts
from batch_rotate.runkit import ConfirmRequest, RunResult
from batch_rotate.tenants import is_tenant_id, tenant_key, values_for

# What a lane's failure before its first write means, and what the operator does about it.
_CONSENT = re.compile(r"AADSTS(7000229|700016|65001|500011)\b")


@dataclass(frozen=True)
class TenantPlan:
    """One tenant at the gate: what it would rotate, for the one confirmation."""

    entry: TenantEntry
    request: ConfirmRequest


@dataclass
class Campaign:
    """A campaign folder and its record (`campaign.json`)."""

    folder: Path
    command: str  # "rotate" or "plan"
    tenants_file: str
    spanning_input: str = ""
    created_at: str = ""
    outcomes: list[TenantOutcome] = field(default_factory=list)
    state: str = "running"

    @classmethod
    def new(cls, reports_dir: Path, tenants_file: Path, command_name: str) -> Campaign:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        stem = _slug(tenants_file.stem)
        folder = reports_dir / f"campaign-{stamp}-{stem}-{secrets.token_hex(2)}"
        folder.mkdir(parents=True)
        return cls(folder, command_name, str(tenants_file.resolve()), created_at=stamp)

    def save(self) -> None:
        data = {
            "kind": "campaign",
            "command": self.command,
            "tenants_file": self.tenants_file,
            "spanning_input": self.spanning_input,
            "created_at": self.created_at,
            "state": self.state,
            "tenants": [_outcome_json(o, self.folder) for o in self.outcomes],
        }
        temp = self.folder / (CAMPAIGN_FILE + ".tmp")
        temp.write_text(json.dumps(data, indent=2, ensure_ascii=True), encoding="utf-8")
        os.replace(temp, self.folder / CAMPAIGN_FILE)

    @classmethod
    def load(cls, folder: Path) -> Campaign:
        path = folder / CAMPAIGN_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            outcomes = [_outcome_of(item, folder) for item in data["tenants"]]
            return cls(
                folder,
                str(data["command"]),
                str(data["tenants_file"]),
                str(data.get("spanning_input", "")),
                str(data.get("created_at", "")),
                outcomes,
                str(data.get("state", "")),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a readable campaign record ({exc})") from None


def is_campaign(folder: Path) -> bool:
    return (folder / CAMPAIGN_FILE).is_file()


def _slug(text: str) -> str:
    """A folder name from outside text: letters, digits, - and _ only; never steers a path."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "tenant"


def folder_name(entry: TenantEntry) -> str:
    """The tenant's run folder (and split list) name: letters, digits, - and _ only."""
    return f"{_slug(entry.name or entry.tenant)}-{_slug(tenant_key(entry.tenant))[:12]}"


def run_folder(campaign: Path, entry: TenantEntry) -> Path:
    return campaign / folder_name(entry)


def _outcome_json(outcome: TenantOutcome, folder: Path) -> dict[str, Any]:
    entry = outcome.entry
    return {
        "tenant": entry.tenant,
        "name": entry.name,
        "line": entry.line,
        # absolute: a resume from another folder must find the same list
        "input": str(entry.input.resolve()) if entry.input else "",
        "env": entry.env,
        "tenant_id": outcome.tenant_id,
        "sign_in": outcome.sign_in,
        "preflight": outcome.preflight,
        "fix": outcome.fix,
        "run_dir": outcome.run_dir.name if outcome.run_dir else "",
        "duration_s": round(outcome.duration_s, 3),
        "budget_use": outcome.budget_use,
        "exit_code": outcome.exit_code,
    }


def _outcome_of(item: Mapping[str, Any], folder: Path) -> TenantOutcome:
    entry = TenantEntry(
        str(item["tenant"]),
        str(item.get("name", "")),
        int(item.get("line", 0)),
        Path(item["input"]) if item.get("input") else None,
        {str(k): str(v) for k, v in dict(item.get("env") or {}).items()},
    )
    run_dir = str(item.get("run_dir") or "")
    if run_dir and not re.fullmatch(r"[A-Za-z0-9_-]{1,60}", run_dir):  # a name, never a path
        raise InputError(f"campaign record: {run_dir!r} is not a run folder name")
    return TenantOutcome(
        entry,
        str(item.get("tenant_id", "")),
        str(item.get("sign_in", "")),
        str(item.get("preflight", "ok")),
        str(item.get("fix", "")),
        folder / run_dir if run_dir else None,
        float(item.get("duration_s") or 0.0),
        item.get("budget_use"),
        int(item.get("exit_code") or 0),
    )


# --- the gate ----------------------------------------------------------------------------------


class Gate:
    """Holds every lane before its first write until all lanes are there (or done), then asks
    once. A lane waiting here gives its place among the tenants at once to another."""

    def __init__(
        self,
        lanes: int,
        ask: Callable[[list[TenantPlan], list[TenantOutcome]], bool],
        places: asyncio.Semaphore,
        *,
        stop_on_failure: bool,
        guard: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self._guard = guard  # Ctrl-C at the one prompt is a no, as at a run's own prompt
        self._waiting = lanes
        self._ask = ask
        self._places = places
        self._stop_on_failure = stop_on_failure
        self._plans: list[TenantPlan] = []
        self._failed: list[TenantOutcome] = []
        self._answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def confirm(self, entry: TenantEntry) -> Callable[[ConfirmRequest], Awaitable[bool]]:
        async def wait(request: ConfirmRequest) -> bool:
            self._plans.append(TenantPlan(entry, request))
            self._places.release()
            try:
                self._arrived()
                return await self._answer
            finally:
                await self._places.acquire()

        return wait

    def done(self, outcome: TenantOutcome | None) -> None:
        """A lane that ended without reaching the gate (nothing to rotate, a plan, a failure)."""
        if outcome is not None and outcome.preflight != "ok":
            self._failed.append(outcome)
        self._arrived()

    def _arrived(self) -> None:
        self._waiting -= 1
        if self._waiting > 0 or self._answer.done() or not self._plans:
            return
        if self._stop_on_failure and self._failed:
            self._answer.set_result(False)
            return
        plans = sorted(self._plans, key=lambda p: p.entry.line)
        try:
            with self._guard():
                answer = self._ask(plans, list(self._failed))
            self._answer.set_result(answer)
        except BaseException as exc:  # e.g. no terminal to confirm on: every lane stops
            self._answer.set_exception(exc)


async def intune_access(session: GraphSession) -> None:
    """Pre-flight on the run's own session: a tenant where Intune answers 403 (no licence, no
    access for the app) fails here, before any row is looked up, rather than row by row."""
    response = await session.get(
        "/deviceManagement/managedDevices", params={"$top": "1", "$select": "id"}, passed=(403,)
    )
    if response.status == 403:
        error = response.body.get("error", {}) if isinstance(response.body, dict) else {}
        raise GraphError(
            f"403 on deviceManagement/managedDevices: {error.get('code', 'Forbidden')}: "
            f"{str(error.get('message', ''))[:200]} (request-id {response.request_id})"
        )


# --- lanes -------------------------------------------------------------------------------------


@dataclass
class CampaignRun:
    """What a command gives its lanes: the run each tenant's lane makes, and the campaign's
    choices (the contexts come with the work, one per tenant)."""

    lane: Callable[[TenantEntry, RunContext, Path, LaneHooks], Awaitable[RunResult]]
    notify: Callable[[str], None]
    tenants_at_once: int = 10
    stop_on_failure: bool = False
    ask: Callable[[list[TenantPlan], list[TenantOutcome]], bool] = lambda _p, _f: True


@dataclass
class LaneHooks:
    """What one lane hands its run: the gate's confirm, the campaign's Ctrl-C and its notes."""

    confirm: Callable[[ConfirmRequest], Awaitable[bool]]
    interrupts: Interrupts
    notify: Callable[[str], None]
    on_progress: Callable[[Any, int], None]
    before_resolving: Callable[[GraphSession], Awaitable[None]] = field(
        default_factory=lambda: intune_access
    )


@dataclass
class CampaignResult:
    campaign: Campaign
    exit_code: int
    messages: list[str] = field(default_factory=list)
    next_command: str = ""
    results: dict[str, RunResult] = field(default_factory=dict)  # by tenant key


def context_values(
    entry: TenantEntry,
    base: Mapping[str, Any],
    environ: Mapping[str, str],
    tenant_id: str = "",
) -> dict[str, Any]:
    """One tenant's option values; its token cache is its own file."""
    values = values_for(entry, base, environ)
    if tenant_id:
        values["tenant_id"] = tenant_id
    cache = values.get("token_cache")
    own = f"-{_slug(tenant_key(entry.tenant))}"
    if cache and not Path(cache).stem.endswith(own):  # a run's record already names its own
        cache = Path(cache)
        values["token_cache"] = cache.with_name(f"{cache.stem}{own}{cache.suffix}")
    return values


def tenant_context(
    entry: TenantEntry,
    base: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    dry_run: bool,
    profile_note: str = "",
    tenant_id: str = "",
) -> RunContext:
    values = context_values(entry, base, environ, tenant_id)
    context = build(values, dry_run=dry_run, profile_note=profile_note)
    meta_note = {"campaign_tenant": entry.tenant, "campaign_name": entry.name}
    return replace(context, record={**context.record, **meta_note})


def classify(
    exc: BaseException, entry: TenantEntry, authority_host: str, client_id: str
) -> tuple[str, str]:
    """(reason, fix) for a lane that failed before its first write."""
    text = str(exc)
    name = entry.label
    match = _CONSENT.search(text)
    if match:
        url = f"{authority_host.rstrip('/')}/{entry.tenant}/adminconsent?client_id={client_id}"
        return (
            f"the app is not consented in {name} (AADSTS{match.group(1)})",
            f"an admin of {name} must consent at {url} (or through Partner Center under GDAP); "
            "then resume the campaign",
        )
    if "403" in text and (
        "deviceManagement" in text or "managedDevices" in text or "Intune" in text
    ):
        return (
            f"no Intune access in {name} (403 on deviceManagement)",
            f"check that {name} has Intune licences and that the app holds "
            "DeviceManagementManagedDevices permissions there, then resume the campaign",
        )
    if "lacks" in text and "permission" in text.lower():
        return (f"missing permission in {name}", text)
    return (
        text.split("\n", 1)[0][:300],
        "see the tenant's run.log; resume the campaign when fixed",
    )


async def run_lanes(
    campaign: Campaign,
    work: Sequence[tuple[TenantEntry, Path, RunContext | BaseException]],
    spec: CampaignRun,
    *,
    interrupts: Interrupts,
    authority_host: str,
) -> dict[str, RunResult]:
    """Every tenant's lane at once (at most `tenants_at_once` working), through one gate."""
    places = asyncio.Semaphore(max(1, spec.tenants_at_once))
    gate = Gate(
        len(work),
        spec.ask,
        places,
        stop_on_failure=spec.stop_on_failure,
        guard=interrupts.raising,
    )
    results: dict[str, RunResult] = {}
    outcomes = {tenant_key(o.entry.tenant): o for o in campaign.outcomes}

    async def lane(entry: TenantEntry, run_dir: Path, context: RunContext | BaseException) -> None:
        key = tenant_key(entry.tenant)
        outcome = outcomes[key]
        label = entry.label
        claim_run_log(run_dir)  # this task's lines go to this tenant's run.log only

        def notify(text: str) -> None:
            spec.notify(f"[{label}] {text}")

        if isinstance(context, BaseException):
            outcome.preflight, outcome.fix = classify(context, entry, authority_host, "")
            outcome.exit_code = getattr(context, "exit_code", EXIT_FAILED)
            gate.done(outcome)
            return
        outcome.sign_in = context.credentials.method
        sent: list[float] = []

        def on_progress(stats: Any, _total: int) -> None:
            now = time.monotonic()
            writes = int(getattr(stats, "succeeded", 0)) + int(getattr(stats, "failed", 0))
            if not sent:
                sent.extend([now, now, float(writes)])
            sent[1], sent[2] = now, float(writes)

        at_gate = gate.confirm(entry)
        reached = False

        async def confirm(request: ConfirmRequest) -> bool:
            nonlocal reached
            reached = True
            return await at_gate(request)

        async def preflight(session: GraphSession) -> None:
            signed = session.tenant_id.lower()
            known = outcome.tenant_id.lower()
            if signed and is_tenant_id(known) and signed != known:
                # a domain that signed in to another tenant than this campaign's earlier runs
                raise AuthError(
                    f"{entry.tenant} now signs in to tenant {signed}, but this campaign ran in "
                    f"{known}; nothing was sent there. Check the domain, or start a new campaign"
                )
            if signed:  # a domain in the tenants file: the `tid` it signed in to
                outcome.tenant_id = signed
            await intune_access(session)

        hooks = LaneHooks(confirm, interrupts.child(notify), notify, on_progress, preflight)
        started = time.monotonic()
        async with places:
            try:
                result = await spec.lane(entry, context, run_dir, hooks)
            except BatchRotateError as exc:
                outcome.exit_code = exc.exit_code
                if not reached:
                    outcome.preflight, outcome.fix = classify(
                        exc, entry, authority_host, context.credentials.client_id
                    )
                else:
                    outcome.fix = str(exc)
                notify(f"failed: {outcome.preflight if not reached else exc}")
            else:
                results[key] = result
                outcome.exit_code = result.exit_code
                outcome.tenant_id = outcome.tenant_id or result.tenant_id
            finally:
                outcome.duration_s += time.monotonic() - started
                if _made(run_dir):
                    outcome.run_dir = run_dir
                if len(sent) == 3 and sent[1] > sent[0]:
                    budget = context.settings.write_budget
                    rate = budget.count / budget.window_s
                    outcome.budget_use = round(sent[2] / ((sent[1] - sent[0]) * rate), 3)
                if not reached:
                    gate.done(outcome)
                campaign.save()

    await asyncio.gather(*(lane(entry, run_dir, ctx) for entry, run_dir, ctx in work))
    return results


def _made(run_dir: Path) -> bool:
    return run_dir.is_dir()


def exit_code_of(campaign: Campaign, results: Mapping[str, RunResult], interrupted: bool) -> int:
    """0 every tenant fine; 130 interrupted; 75 only pending verification; 1 anything else."""
    if interrupted:
        return EXIT_INTERRUPTED
    codes = [o.exit_code for o in campaign.outcomes]
    if any(o.preflight != "ok" for o in campaign.outcomes):
        return EXIT_FAILED
    if all(code == EXIT_OK for code in codes):
        return EXIT_OK
    if all(code in (EXIT_OK, EXIT_PENDING) for code in codes):
        return EXIT_PENDING
    return EXIT_FAILED


def next_command(campaign: Campaign, *, verifying: bool = False) -> str:
    where = relative(campaign.folder)
    if campaign.command == "plan":
        return command("rotate", "--plan", where)
    if verifying:
        return command("verify", where, "--wait", "2h", "--every", "10m")
    return command("verify", where)
