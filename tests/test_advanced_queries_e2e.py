"""Advanced queries as documented, and every filtered lookup read to its last page: the group
selector against a simulator that refuses type-cast member lists without `ConsistencyLevel:
eventual` and `$count=true`, and that pages member lists and filtered lookups one item at a time.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.graph.batch import InnerResponse
from batch_rotate.select.lookup import devices_where
from batch_rotate.select.selectors import group_members
from batch_rotate.sim import SimTenant
from batch_rotate.sim.targeting import TargetingConfig

from .conftest import run_dirs, sim_flags
from .graph.fakeclock import FakeClock
from .graph.fakes import ScriptedGraph, response, session_on

Cli = Callable[..., Result]
GID = "6f1c3a52-1d7e-4c1e-9a39-0d8c4f4a9b10"
NEXT = "https://graph.microsoft.com/beta/deviceManagement/managedDevices?$skiptoken=2"


def test_member_lists_are_advanced_queries_of_999() -> None:
    clock = FakeClock()
    group = response(200, body={"id": GID, "displayName": "Finance"})
    empty = response(200, body={"value": []})
    graph = ScriptedGraph(clock, gets=[group, empty, empty])
    asyncio.run(group_members(session_on(graph, clock), GID))
    members = graph.get_paths[1:]
    assert [path.rsplit("/", 1)[-1] for path, _ in members] == [
        "microsoft.graph.device",
        "microsoft.graph.user",
    ]
    for _, params in members:
        assert params["$count"] == "true" and params["$top"] == "999"
    assert graph.get_headers[1:] == [{"ConsistencyLevel": "eventual"}] * 2
    assert graph.get_headers[0] == {}  # a plain read stays plain


def test_a_filtered_lookup_follows_its_next_link() -> None:
    clock = FakeClock()
    twin = {"id": "a", "deviceName": "LT-1", "operatingSystem": "Windows"}
    first = {"value": [twin], "@odata.nextLink": NEXT}
    graph = ScriptedGraph(
        clock,
        inner=lambda _call, _item, _sent: InnerResponse(200, {}, first),
        gets=[response(200, body={"value": [{**twin, "id": "b"}]})],
    )
    found = asyncio.run(devices_where(session_on(graph, clock), "deviceName", ["LT-1"]))
    assert [d.id for d in found["LT-1"]] == ["a", "b"]
    assert graph.get_paths == [(NEXT, {})]


@pytest.mark.slow
def test_select_group_against_paged_advanced_queries(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(targeting=TargetingConfig(), devices=300, filtered_page_size=2)
    assert sim.config.require_advanced_query
    out = tmp_path / "group.csv"
    args = ["select", "--group", "Finance", "--out", str(out), *sim_flags(sim)]
    result = run_cli(args, env=sim.env())
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        got = {row["Device ID"] for row in csv.DictReader(handle)}
    assert got == sim.select_truth("group", "Finance") and len(got) > 2


@pytest.mark.slow
def test_a_name_on_two_pages_of_a_filtered_recheck_is_ambiguous(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    """The listing leaves every device out, so only the filtered re-check finds them, one per
    page: a name two devices share is ambiguous only if the second page is read."""
    sim = make_sim(devices=300, listing_omit_share=1.0, filtered_page_size=1)
    names = [d["deviceName"] for d in sim.inventory]
    shared = next(n for n in names if names.count(n) == 2)
    path = tmp_path / "names.csv"
    path.write_text(f"Device name\n{shared}\n", encoding="utf-8")
    result = run_cli(["plan", str(path), *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["Status"] == "ambiguous", row
    twins = [d["id"] for d in sim.inventory if d["deviceName"] == shared]
    assert all(t in row["Reason"] for t in twins)
