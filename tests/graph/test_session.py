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
