"""`make demo` (the README's first command) rotates the sample against the simulated tenant."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from batch_rotate.sim import demo

ROOT = Path(__file__).resolve().parents[2]


def test_demo_rotates_the_sample_and_says_where_its_next_command_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inputs").mkdir()
    sample = ROOT / "inputs" / "sample-devices.csv"
    (tmp_path / "inputs" / sample.name).write_bytes(sample.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert demo.main([]) == 0
    output = capfd.readouterr()
    (report,) = (tmp_path / "reports").glob("*/report.csv")
    with report.open(encoding="utf-8-sig", newline="") as handle:
        statuses = [row["Status"] for row in csv.DictReader(handle)]
    assert len(statuses) == 50 and statuses.count("queued") == 47
    assert "next: batch-rotate verify reports/" in output.out + output.err
    assert output.out.rstrip().endswith(demo.AFTER_DEMO)
