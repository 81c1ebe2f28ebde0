"""The session is the one place runners and reads get their lane, attempts and concurrency."""

from __future__ import annotations

import ast
from pathlib import Path

from batch_rotate.graph.batch import MAX_BATCH
from batch_rotate.graph.pacer import Budget
from tests.graph.fakeclock import FakeClock
from tests.graph.fakes import ScriptedGraph, session_on

GRAPH = Path(__file__).resolve().parents[2] / "batch_rotate" / "graph"
GRAPH_PACKAGE = ["batch_rotate", "graph"]


def test_runners_take_the_lane_and_limits_from_the_session() -> None:
    clock = FakeClock()
    session = session_on(
        ScriptedGraph(clock), clock, max_attempts=3, max_concurrency=5, batch_size=7
    )
    writer = session.runner(writes=True, hand_back_lost=True)
    reader = session.runner(version="v1.0", max_concurrency=1)
    assert (writer.batch_size, writer.max_concurrency) == (7, 5)
    assert (reader.batch_size, reader.max_concurrency, reader.version) == (MAX_BATCH, 1, "v1.0")
    assert writer._lane is session.writes and reader._lane is session.reads
    assert writer._limits.max_attempts == reader._limits.max_attempts == session.max_attempts == 3
    assert session.clock is clock and session.writes.clock is clock


def test_a_further_lane_and_another_transport_keep_the_clock_and_limits() -> None:
    clock = FakeClock()
    session = session_on(ScriptedGraph(clock), clock, max_attempts=4)
    audit = session.lane(Budget(5, 10.0))
    assert audit.clock is clock and audit.budget == Budget(5, 10.0)
    assert audit.pacer is not session.reads.pacer  # its own budget, its own 429 pauses
    other = ScriptedGraph(clock)
    through = session.through(other)
    assert through.transport is other and session.transport is not other
    assert (through.reads, through.writes, through.pacing) == (
        session.reads,
        session.writes,
        session.pacing,
    )


def test_the_graph_layer_stays_closed() -> None:
    """graph/ imports nothing from the rest of the package (DESIGN.md)."""
    outside = []
    for path in GRAPH.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            outside += [
                f"{path.name}: {name}"
                for name in names
                if name.split(".")[0] == "batch_rotate" and name.split(".")[:2] != GRAPH_PACKAGE
            ]
    assert outside == []


def test_audit_reads_of_many_tenants_share_the_apps_limit_across_tenants() -> None:
    """GRAPH_NOTES "Many tenants": 5 audit reads / 10 s per tenant, and 122 / 10 s per app over
    every tenant. Thirty tenants' sessions of one app in one loop (a campaign) must keep the
    second: alone, each would read its first five at once (150 in the first instant)."""
    import asyncio
    import dataclasses

    from batch_rotate.graph.reads import get_with_retry
    from batch_rotate.select import APP_AUDIT_BUDGET, AUDIT_BUDGET
    from tests.graph.fakes import response

    clock = FakeClock()

    async def main() -> list[float]:
        graphs = [ScriptedGraph(clock, rtt_s=0.01) for _ in range(30)]
        sessions = [dataclasses.replace(session_on(g, clock), app="app-1") for g in graphs]
        lanes = [s.lane(AUDIT_BUDGET, app_wide=APP_AUDIT_BUDGET) for s in sessions]
        assert all(lane.app_wide is lanes[0].app_wide for lane in lanes)
        other = dataclasses.replace(session_on(ScriptedGraph(clock), clock), app="app-2")
        assert other.lane(AUDIT_BUDGET, app_wide=APP_AUDIT_BUDGET).app_wide is not lanes[0].app_wide
        for g in graphs:
            g.gets = [response(200, body={"value": []}) for _ in range(5)]

        async def reads(graph: ScriptedGraph, lane: object) -> None:
            for _ in range(5):
                await get_with_retry(graph, lane, "auditLogs/directoryAudits")  # type: ignore[arg-type]

        await asyncio.gather(*(reads(g, lane) for g, lane in zip(graphs, lanes, strict=True)))
        return sorted(t for g in graphs for t in g.get_times)

    times = asyncio.run(main())
    assert len(times) == 150
    most = max(sum(1 for t in times if start <= t < start + 10.0) for start in times)
    assert most <= 122, most
