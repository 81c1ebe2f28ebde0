"""Counts in human messages agree with their nouns: `1 device`, `2 devices` (issue 18 item 7.4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.models import ReportRow
from batch_rotate.present import plural, plural_noun, shown_rows
from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import sim_flags


@pytest.mark.parametrize(
    ("count", "noun", "shown"),
    [
        (0, "device", "0 devices"),
        (1, "device", "1 device"),
        (2, "device", "2 devices"),
        (1, "batch", "1 batch"),
        (3, "batch", "3 batches"),
        (2, "key", "2 keys"),
        (2, "entry", "2 entries"),
        (1, "$batch request", "1 $batch request"),
        (20, "$batch request", "20 $batch requests"),
    ],
)
def test_plural(count: int, noun: str, shown: str) -> None:
    assert plural(count, noun) == shown


def test_plural_irregular_and_grouped() -> None:
    assert plural(2, "try", "tries") == "2 tries" and plural(1, "try", "tries") == "1 try"
    assert plural(1808, "row", sep=",") == "1,808 rows"
    assert plural_noun(1, "row") == "row" and plural_noun(7, "row") == "rows"


def test_a_one_row_plan_says_row_read_and_request_in_the_singular(
    sim: SimTenant, run_cli: Callable[..., Result], tmp_path: Path
) -> None:
    device = next(d for d in sim.inventory if eligible(d))
    (tmp_path / "one.csv").write_text(f"managedDeviceId\n{device['id']}\n", encoding="utf-8")
    result = run_cli(["plan", "one.csv", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "read 1 row from one.csv" in text
    assert "resolution: 1 row in " in text
    assert "looked up devices by id: 1 read in 1 $batch request" in text
    assert "1 rows" not in text and "1 reads" not in text


def test_shown_rows_changes_only_status_and_reason() -> None:
    """The positional copy (issue 23) keeps every other field in place."""
    names = list(ReportRow._fields)
    values: dict[str, object] = {n: f"{n}-value" for n in names}
    values.update(row=7, http_status=204, attempts=3, key_count=2, status="pending", reason="")
    values.update(resent_after_interrupt=False, confirmed_after_lost_answer=False, flag="")
    row = ReportRow(**values)
    (plan,) = shown_rows([row], dry_run=True)
    assert plan == row._replace(
        status="would_rotate", reason="eligible; a rotate request would be sent"
    )
    assert isinstance(plan, ReportRow) and plan.row == 7 and plan.key_count == 2
    finished = row._replace(status="queued", reason="ok")
    assert next(shown_rows([finished], dry_run=False)) is finished  # unchanged: not copied
