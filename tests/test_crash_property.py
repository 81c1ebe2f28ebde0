"""Property: a run that dies between any two journal writes resumes with every device rotated
exactly once: in-flight devices are checked before any resend (hypothesis picks the crash point)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_rotate.journal import Journal
from batch_rotate.run import InputOptions, run_job
from batch_rotate.settings import Budget, Credentials, Settings
from batch_rotate.sim import SimConfig, SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import sim_settings

DEVICES = 120


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimTenant]:
    with SimTenant(
        SimConfig(devices=400, time_scale=50.0), workdir=tmp_path_factory.mktemp("sim")
    ) as tenant:
        yield tenant


def _settings(sim: SimTenant, reports: Path) -> tuple[Settings, Credentials]:
    return sim_settings(
        sim, reports, write_budget=Budget(1000, 1.0), batch_size=7, max_concurrency=3
    )


WRITES = ("mark_in_flight", "record")


def _device_list(sim: SimTenant, workdir: Path) -> list[str]:
    ids = [d["id"] for d in sim.inventory if eligible(d)][:DEVICES]
    (workdir / "d.csv").write_text("id\n" + "\n".join(ids) + "\n", encoding="utf-8")
    return ids


@contextlib.contextmanager
def _engine_writes(crash_after: int | None = None) -> Iterator[dict[str, int]]:
    """Count the engine's journal writes; raise `Crash` instead of write number `crash_after`."""
    writes = {"n": 0}
    originals = {name: getattr(Journal, name) for name in WRITES}

    def wrapped(name: str) -> Any:
        def write(self: Journal, *args: Any) -> None:
            writes["n"] += 1
            if writes["n"] == crash_after:
                raise Crash
            originals[name](self, *args)

        return write

    with pytest.MonkeyPatch.context() as mp:
        for name in WRITES:
            mp.setattr(Journal, name, wrapped(name))
        yield writes


def _run(settings_: Settings, credentials: Credentials, workdir: Path) -> None:
    inputs = InputOptions(workdir / "d.csv")
    asyncio.run(run_job(settings=settings_, credentials=credentials, inputs=inputs))


@pytest.fixture(scope="module")
def journal_writes(sim: SimTenant, tmp_path_factory: pytest.TempPathFactory) -> int:
    """How many engine writes a whole uncrashed run makes: crash points are drawn below it."""
    workdir = tmp_path_factory.mktemp("count")
    _device_list(sim, workdir)
    settings_, credentials = _settings(sim, workdir / "reports")
    with _engine_writes() as counted:
        _run(settings_, credentials, workdir)
    assert counted["n"] >= 2 * (DEVICES // settings_.batch_size)
    return counted["n"]


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_crash_anywhere_then_resume(
    sim: SimTenant,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    journal_writes: int,
    data: st.DataObject,
) -> None:
    crash_after = data.draw(st.integers(min_value=1, max_value=journal_writes), label="crash")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path_factory.mktemp("run")
    # each example is a fresh operator: the run index must not hold back the devices the
    # previous example rotated (the recent-run guard sees every run of the user)
    monkeypatch.setenv("BATCH_ROTATE_STATE_DIR", str(workdir / "state"))
    ids = _device_list(sim, workdir)
    sim.reset_metrics()
    settings_, credentials = _settings(sim, workdir / "reports")
    crashed = False
    with _engine_writes(crash_after) as writes:
        try:
            _run(settings_, credentials, workdir)
        except Crash:
            crashed = True
    (run_dir,) = [p.parent for p in (workdir / "reports").glob("*/journal.sqlite")]
    # a run may make fewer writes than the counted one (batches answered together), so a point
    # near the end may not be reached; any point the run did reach must have crashed it
    assert crashed or crash_after > writes["n"]
    if crashed:
        asyncio.run(run_job(settings=settings_, credentials=credentials, resume_dir=run_dir))
    accepted = sim.metrics()["accepted_by_device"]
    with closing(Journal.open(run_dir)) as journal:
        rows = {r.intune_device_id: r for r in journal.report_rows()}
    assert set(accepted) == set(ids)
    assert all(rows[i].status == "queued" for i in ids)
    assert all(n == 1 for n in accepted.values())  # nobody rotated twice
    resent = {i for i in ids if rows[i].resent_after_interrupt}
    confirmed = {i for i in ids if rows[i].confirmed_after_lost_answer}
    # only devices in flight at the crash were checked: at most the batches on the wire
    assert len(resent | confirmed) <= settings_.batch_size * settings_.max_concurrency
    assert not resent & confirmed
