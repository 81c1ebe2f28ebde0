"""Ctrl-C during resolution keeps what was resolved (issue 18 item 7.1).

A run interrupted at 1,020 of 1,808 lookups must not look up all 1,808 again on resume. Each test
runs the real run layer in this process against the simulated tenant and sends itself SIGINT
from the resolution progress callback, so the interrupt lands at a known point without sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from batch_rotate.journal import Journal
from batch_rotate.run import InputOptions, run_job
from batch_rotate.settings import Budget, Credentials, Settings
from batch_rotate.sim import SimConfig, SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import sim_settings


@pytest.fixture(autouse=True)
def _no_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., SimTenant]]:
    started: list[SimTenant] = []

    def start(**config: Any) -> SimTenant:
        tenant = SimTenant(
            SimConfig(throttling=False, **config), workdir=tmp_path / f"sim{len(started)}"
        )
        started.append(tenant.start())
        return tenant

    yield start
    for tenant in started:
        tenant.stop()


def _settings(sim: SimTenant, reports: Path) -> tuple[Settings, Credentials]:
    return sim_settings(
        sim,
        reports,
        read_budget=Budget(100_000, 1.0),
        write_budget=Budget(100_000, 1.0),
        max_devices=100_000,
    )


def _ctrl_c_at(what: str, done: int) -> Callable[[str, int, int | None], None]:
    """A progress callback that sends this process one SIGINT once `what` reached `done`."""
    sent = [False]

    def on_resolving(label: str, count: int, total: int | None) -> None:
        if label == what and count >= done and not sent[0]:
            sent[0] = True
            os.kill(os.getpid(), signal.SIGINT)

    return on_resolving


def _statuses(run_dir: Path) -> dict[str, int]:
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        return dict(db.execute("SELECT status, COUNT(*) FROM devices GROUP BY status").fetchall())


def _interrupt_then_resume(
    sim: SimTenant, tmp_path: Path, values: list[str], header: str, what: str, done: int
) -> tuple[int, dict[str, int], list[str]]:
    """Run, Ctrl-C at `done` of `what`, resume: (rows resolved before the resume, what the
    resume cost the tenant: reads, listing pages, $batch requests; the resume's messages)."""
    (tmp_path / "d.csv").write_text(f"{header}\n" + "\n".join(values) + "\n", encoding="utf-8")
    settings, credentials = _settings(sim, tmp_path / "reports")
    first = asyncio.run(
        run_job(
            settings=settings,
            credentials=credentials,
            inputs=InputOptions(tmp_path / "d.csv"),
            on_resolving=_ctrl_c_at(what, done),
        )
    )
    assert first.interrupted and first.exit_code == 130
    assert sim.metrics()["rotate_calls"] == 0
    left = _statuses(first.run_dir).get("resolving", 0)
    before = sim.metrics()
    messages: list[str] = []
    second = asyncio.run(
        run_job(
            settings=settings,
            credentials=credentials,
            resume_dir=first.run_dir,
            notify=messages.append,
        )
    )
    after = sim.metrics()
    assert second.exit_code == 0, (second.messages, messages)
    assert second.resolve_report is not None
    messages.append(second.resolve_report.describe())
    cost = {key: after[key] - before[key] for key in ("reads", "graph_requests", "batch_requests")}
    cost["listing_pages"] = cost.pop("graph_requests") - cost["batch_requests"]
    with closing(Journal.open(first.run_dir, write=False)) as journal:
        rows = list(journal.report_rows())
    assert len(rows) == len(values) and all(r.status == "queued" for r in rows)  # complete
    accepted = after["accepted_by_device"]
    assert set(accepted) == {r.intune_device_id for r in rows}
    assert all(n == 1 for n in accepted.values())  # nothing sent twice
    return len(values) - left, cost, messages


def test_lookups_answered_before_ctrl_c_are_not_looked_up_again(
    start_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    sim = start_sim(devices=400)
    ids = [d["id"] for d in sim.inventory if eligible(d)][:200]
    resolved, cost, messages = _interrupt_then_resume(
        sim, tmp_path, ids, "managedDeviceId", "looked up devices", 60
    )
    assert 60 <= resolved < 200
    assert f"{200 - resolved} rows still to resolve" in " ".join(messages)
    assert cost["reads"] == 200 - resolved  # one lookup per row left, none for the others
    assert cost["listing_pages"] == 0


def test_a_finished_listing_and_its_answered_rechecks_survive_ctrl_c(
    start_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    """Names: one listing, then every name queried directly. Interrupted during those queries,
    the resume neither lists again nor re-queries the names already answered."""
    sim = start_sim(devices=400)
    names = [d["deviceName"] for d in sim.inventory]
    unique = [
        d["deviceName"] for d in sim.inventory if eligible(d) and names.count(d["deviceName"]) == 1
    ]
    chosen = unique[:120]
    resolved, cost, messages = _interrupt_then_resume(
        sim, tmp_path, chosen, "Device name", "re-checked identifiers", 40
    )
    assert 40 <= resolved < 120
    assert cost["listing_pages"] == 0
    assert cost["reads"] == 120 - resolved
    assert "the inventory listed before the interrupt (400 managed devices)" in messages[-1]


@pytest.mark.parametrize("store_every", [None, 150])
def test_ids_a_listing_matched_before_ctrl_c_stay_resolved(
    start_sim: Callable[..., SimTenant],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store_every: int | None,
) -> None:
    """Many ids: a listing. Interrupted part way, the devices it had listed stay matched and
    the resume looks up only the rest (few enough now for lookups, so no second listing).
    With small store batches, matches are stored several times during the listing: those
    stored before Ctrl-C and the batch not yet stored when it came are all kept."""
    if store_every is not None:
        monkeypatch.setattr("batch_rotate.resolve.STORE_EVERY", store_every)
    sim = start_sim(devices=3200, page_size=200)
    ids = [d["id"] for d in sim.inventory if eligible(d)][:2100]
    resolved, cost, _ = _interrupt_then_resume(
        sim, tmp_path, ids, "managedDeviceId", "listed managed devices", 600
    )
    assert 0 < resolved < 2100
    assert cost["listing_pages"] == 0
    assert cost["reads"] == 2100 - resolved
