"""Every malformed option is refused at the command-line edge: exit 2, the option named, nothing
sent to the tenant, no run folder created."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, sim_flags

Cli = Callable[..., Result]


def _refused(
    sim: SimTenant, run_cli: Cli, tmp_path: Path, args: list[str], option: str, fix: str
) -> None:
    result = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim), *args], env=sim.env())
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert option in text, text
    assert fix in text, text
    metrics = sim.metrics()
    assert metrics["token_requests"] == 0
    assert metrics["graph_requests"] == 0
    reports = tmp_path / "reports"
    assert not reports.exists() or not any(reports.iterdir())


@pytest.mark.parametrize(
    ("args", "option", "fix"),
    [
        (["--write-budget", "abc"], "--write-budget", "200/20s"),
        (["--read-budget", "0/1s"], "--read-budget", "above zero"),
        (["--timeout", "0"], "--timeout", "above 0"),
        (["--timeout", "-1"], "--timeout", "above 0"),
        (["--timeout", "nan"], "--timeout", "above 0"),
        (["--timeout", "inf"], "--timeout", "above 0"),
        (["--verify-wait", "soon"], "--verify-wait", "2h"),
        (["--verify-every", "0"], "--verify-every", "above 0"),
        (["--batch-size", "21"], "--batch-size", "1 to 20"),
        (["--max-concurrency", "0"], "--max-concurrency", "1 to 64"),
        (["--graph-url", "https://user:pw@127.0.0.1:1"], "--graph-url", "password"),
        (["--graph-url", "http://127.0.0.1:1"], "--graph-url", "https://"),
        (["--proxy", "socks5://127.0.0.1:1080"], "--proxy", "SOCKS"),
        (["--proxy", "http://127.0.0.1:3128/path"], "--proxy", "no path"),
    ],
)
def test_malformed_option_is_refused_before_anything(
    sim: SimTenant, run_cli: Cli, tmp_path: Path, args: list[str], option: str, fix: str
) -> None:
    _refused(sim, run_cli, tmp_path, args, option, fix)


@pytest.mark.parametrize(
    "content", ["", "not a certificate\n", "-----BEGIN CERTIFICATE-----\nAA\n"]
)
def test_bad_ca_bundle_is_refused(
    sim: SimTenant, run_cli: Cli, tmp_path: Path, content: str
) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text(content)
    # the last one wins: the sim flags name the good CA first
    _refused(sim, run_cli, tmp_path, ["--ca-bundle", str(bad)], "--ca-bundle", "PEM")


def test_missing_certificate_path_is_refused(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "app.pem"
    _refused(
        sim, run_cli, tmp_path, ["--certificate-path", str(missing)], "--certificate-path", "PEM"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_reports_dir_is_refused_as_user(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    _refused(sim, run_cli, tmp_path, ["--reports-dir", str(locked / "r")], "--reports-dir", "")


def test_reports_dir_that_is_a_file_is_refused(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    _refused(
        sim, run_cli, tmp_path, ["--reports-dir", str(afile / "runs")], "--reports-dir", "folder"
    )


def test_reports_dir_special_file_is_refused(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    _refused(sim, run_cli, tmp_path, ["--reports-dir", "/dev/null"], "--reports-dir", "folder")


def test_version_flag(run_cli: Cli) -> None:
    result = run_cli(["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("batch-rotate ")


def test_unknown_keys_strategy_is_refused(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    result = run_cli(["verify", str(tmp_path), "--keys-strategy", "fast"], env=sim.env())
    text = " ".join(result.output.split())
    assert result.exit_code == 2
    assert "--keys-strategy" in text and "per-device" in text  # the choices are listed
    assert sim.metrics()["token_requests"] == 0
