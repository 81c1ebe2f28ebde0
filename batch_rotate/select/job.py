"""The select stage's jobs for the CLI: `select` (sign in, select, write the list) and
`rotate --select` (the list goes into the run folder, then the run goes on as any other).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from batch_rotate.connect import signed_in
from batch_rotate.errors import InputError
from batch_rotate.graph.session import GraphSession
from batch_rotate.interrupts import Interrupts
from batch_rotate.models import IdKind
from batch_rotate.present import plural
from batch_rotate.run import (
    ConfirmRequest,
    InputOptions,
    Progress,
    RunResult,
    graph_errors,
    run_job,
)
from batch_rotate.runs import new_run_dir
from batch_rotate.select import Criteria, Selection, needed_permissions, select, write_csv
from batch_rotate.settings import Credentials, Settings


async def select_devices(
    criteria: Criteria,
    *,
    settings: Settings,
    credentials: Credentials,
    out: Path,
    notify: Callable[[str], None] = lambda _: None,
    before_selecting: Callable[[GraphSession], Awaitable[None]] | None = None,
) -> Selection:
    """Sign in, run the selectors on the read budget, and write the list to `out`."""
    needs = needed_permissions(criteria)
    with graph_errors():
        async with signed_in(credentials, settings, also=needs) as session:
            if before_selecting is not None:  # a campaign's pre-flight (campaign.py)
                await before_selecting(session)
            selection = await select(criteria, session, notify=notify)
    for warning in selection.warnings:
        notify(warning)
    for report in selection.reports:
        notify(report.describe())
    if selection.excluded:
        notify(f"--exclude removed {plural(selection.excluded, 'device')}")
    write_csv(out, selection.devices)
    notify(f"selected {plural(len(selection.devices), 'device')}: {out}")
    return selection


class NothingSelected(InputError):
    """The selectors matched no device: nothing to rotate (in a campaign, a tenant's fine end)."""


async def select_then_run(
    criteria: Criteria,
    *,
    settings: Settings,
    credentials: Credentials,
    argv: Sequence[str] = (),
    confirm: Callable[[ConfirmRequest], bool | Awaitable[bool]] | None = None,
    on_progress: Progress | None = None,
    notify: Callable[[str], None] = lambda _: None,
    context_meta: Mapping[str, str] | None = None,
    run_dir: Path | None = None,
    interrupts: Interrupts | None = None,
    before_resolving: Callable[[GraphSession], Awaitable[None]] | None = None,
) -> RunResult:
    """`rotate --select`: the selected list is written into the run folder, then a normal run."""
    run_dir = run_dir or new_run_dir(settings.reports_dir, Path("selected.csv"))
    listed = run_dir / "selected.csv"
    selection = await select_devices(
        criteria,
        settings=settings,
        credentials=credentials,
        out=listed,
        notify=notify,
        before_selecting=before_resolving,
    )
    if not selection.devices:
        raise NothingSelected(
            f"the selection ({criteria.describe()}) matched no device; nothing to rotate "
            f"(the empty list is in {listed})"
        )
    shown = plural(len(selection.devices), "device")
    notify(f"selection: {criteria.describe()} -> {shown} in {listed}")
    return await run_job(
        settings=settings,
        credentials=credentials,
        inputs=InputOptions(listed, id_column="Device ID", id_kind=IdKind.INTUNE_ID),
        argv=argv,
        confirm=confirm,
        on_progress=on_progress,
        notify=notify,
        run_dir=run_dir,
        context_meta=context_meta,
        interrupts=interrupts,
        before_resolving=before_resolving,
    )
