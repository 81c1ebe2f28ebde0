"""Machine-readable output and console conventions (issue 12 items 1-3): --json, events.jsonl,
run.log, --quiet/--verbose/--debug, help text, a closed stdout, the verify hint."""

from __future__ import annotations

import csv
import json
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, run_dirs, sim_flags
from .schema_check import problems, schema

Cli = Callable[..., Result]


def _rotate(extra: list[str]) -> list[str]:
    return ["rotate", str(SAMPLE), "--yes", *extra]


def _report(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _events(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_rotate_json_document_and_events_follow_their_schemas(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    # inner 429s make some devices answer more than once: the stream must still end right
    sim = make_sim(time_scale=20.0, app_write_limit=40, tenant_write_limit=80)
    result = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--json", "--write-budget", "400/1s", *sim_flags(sim)],
        env=sim.env(),
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one document, nothing else on stdout
    assert problems(doc, schema("result.schema.json")) == []
    (run_dir,) = run_dirs(tmp_path)
    assert doc["run_id"] == run_dir.name and doc["command"] == "rotate"
    assert doc["tenant_id"] == sim.config.tenant_id
    assert doc["exit_code"] == 0 and doc["exit_meaning"]
    assert doc["next_command"] == f"batch-rotate verify reports/{run_dir.name}"
    report = _report(run_dir)
    assert doc["total"] == len(report)
    assert doc["counts"]["queued"] == sum(r["Status"] == "queued" for r in report)
    assert Path(doc["reports"]["events"]).name == "events.jsonl"
    assert "run " not in result.stdout.split("{", 1)[0]  # the human summary went to stderr
    assert f"run {run_dir.name}" in result.stderr

    events = _events(run_dir)
    event_schema = schema("event.schema.json")
    for event in events:
        assert problems(event, event_schema) == [], event
    assert any(not e["final"] for e in events)  # retries are in the stream too
    last: dict[object, dict[str, object]] = {}
    for event in events:
        last[event["row"]] = event
    sent = [r for r in report if r["Status"] in ("queued", "failed")]
    assert sent
    for row in sent:  # every sent device has its final event, agreeing with the report
        event = last[int(row["Row"])]
        assert event["final"] is True
        assert event["status"] == row["Status"]
        assert event["intune_device_id"] == row["Intune device ID"]
        assert event["entra_device_id"] == row["Entra device ID"]
        assert event["device_name"] == row["Device name"]
        assert event["client_request_id"] == row["Client request ID"]
        assert str(event["http_status"]) == row["HTTP status"]
        assert event["tenant_time"]
    assert {int(r["Row"]) for r in sent} == set(last)
    for name in ("events.jsonl", "run.log"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert "resolution:" in log and "rotation:" in log


def test_plan_json_and_verify_json(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    planned = run_cli(["plan", str(SAMPLE), "--json", *sim_flags(sim)], env=sim.env())
    assert planned.exit_code == 0, planned.output
    doc = json.loads(planned.stdout)
    assert problems(doc, schema("result.schema.json")) == []
    assert doc["state"] == "plan" and doc["counts"]["would_rotate"] > 0
    assert doc["resolution"]
    rotated = run_cli(["rotate", str(SAMPLE), "--yes", "-q", *sim_flags(sim)], env=sim.env())
    assert rotated.exit_code == 0, rotated.output
    run_dir = next(d for d in run_dirs(tmp_path) if (d / "events.jsonl").exists())
    checked = run_cli(["verify", str(run_dir), "--json"], env=sim.env())
    doc = json.loads(checked.stdout)
    assert problems(doc, schema("result.schema.json")) == []
    assert doc["command"] == "verify" and sum(doc["verification"].values()) > 0
    # only pending devices: "retry later" (75), told apart from "look at this" (1)
    assert doc["verification"] == {"pending": 47}
    assert checked.exit_code == doc["exit_code"] == 75, checked.output
    assert "pending" in doc["exit_meaning"]


def test_json_error_document_on_usage_error(run_cli: Cli) -> None:
    result = run_cli(["rotate", str(SAMPLE), "--yes", "--json"], env={})
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert problems(doc, schema("result.schema.json")) == []
    assert doc["exit_code"] == 2 and "AZURE_TENANT_ID" in doc["error"]


def test_quiet_prints_no_progress_or_table_and_verbose_prints_each_answer(
    sim: SimTenant, run_cli: Cli
) -> None:
    quiet = run_cli(["rotate", str(SAMPLE), "--yes", "--quiet", *sim_flags(sim)], env=sim.env())
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout == ""
    assert "read 50 rows" not in quiet.stderr and "total" not in quiet.output
    again = ["--force-recent"]  # the same devices again: not the recent-run guard's test
    normal = run_cli(["rotate", str(SAMPLE), "--yes", *again, *sim_flags(sim)], env=sim.env())
    assert "read 50 rows" in normal.stderr and "total" in normal.stdout
    assert "next: batch-rotate verify reports/" in normal.stderr
    assert "debug:" not in normal.output
    verbose = run_cli(["plan", str(SAMPLE), "--verbose", *sim_flags(sim)], env=sim.env())
    assert verbose.exit_code == 0
    assert "debug:" not in verbose.stderr  # a plan sends nothing; verbose adds no HTTP lines
    loud = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--verbose", "--check-keys", *again, *sim_flags(sim)],
        env=sim.env(),
    )
    assert "debug: row " in loud.stderr and " GET " not in loud.stderr
    both = run_cli(["plan", str(SAMPLE), "-q", "-v", *sim_flags(sim)], env=sim.env())
    assert both.exit_code == 2


def test_debug_logs_http_lines_without_secrets(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    result = run_cli(["rotate", str(SAMPLE), "--yes", "--debug", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    for text in (result.stderr, log):
        assert "POST https://127.0.0.1" in text and "$batch -> 200" in text
        assert "request-id" in text
        assert sim.config.client_secret not in text
        assert "eyJ" not in text and "Bearer" not in text
        assert "$filter" not in text


@pytest.mark.parametrize("command", ["rotate", "plan", "verify", "report"])
def test_help_has_examples_usage_and_no_bool_placeholders(run_cli: Cli, command: str) -> None:
    result = run_cli([command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = result.stdout
    assert "Examples" in text and f"batch-rotate {command}" in text.split("Examples", 1)[1]
    assert "<bool>" not in text
    argument = "INPUT" if command in ("rotate", "plan") else "RUN"
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert argument in usage and "{" not in usage and "input_file" not in usage


def test_choices_and_completion_are_listed(run_cli: Cli) -> None:
    verify = run_cli(["verify", "--help"], env={"COLUMNS": "200"}).stdout
    assert "auto|per-device|listing" in verify
    top = run_cli(["--help"], env={"COLUMNS": "200"}).stdout
    assert "--install-completion" in top and "--profile" in top and "<bool>" not in top


def _pipe_to_head(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """`batch-rotate ARGS | head -1` in a shell; the CLI's own exit code (PIPESTATUS[0])."""
    command = shlex.join([sys.executable, "-m", "batch_rotate", *args])
    done = subprocess.run(
        ["bash", "-c", f'{command} | head -1 >/dev/null; echo "exit=${{PIPESTATUS[0]}}"'],
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )
    code = int(done.stdout.decode().rsplit("exit=", 1)[1])
    return code, done.stderr.decode(errors="replace")


def test_closed_stdout_keeps_the_exit_code(sim: SimTenant, tmp_path: Path) -> None:
    env = {**os.environ, **sim.env(), "COLUMNS": "200"}
    env.pop("SSL_CERT_FILE", None)
    # A summary far longer than head's one line, so the pipe is closed while it is written.
    code, stderr = _pipe_to_head(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], tmp_path, env)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    code, stderr = _pipe_to_head(
        ["rotate", str(SAMPLE), "--yes", "--json", *sim_flags(sim)], tmp_path, env
    )
    assert code == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_stdout_closed_before_the_first_write_keeps_the_exit_code(
    sim: SimTenant, tmp_path: Path, extra: list[str]
) -> None:
    """The deterministic case of `| head -1`: the reader is gone before anything is written."""
    env = {**os.environ, **sim.env()}
    env.pop("SSL_CERT_FILE", None)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "batch_rotate", *_rotate(extra), *sim_flags(sim)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    version = subprocess.run(
        [sys.executable, "-m", "batch_rotate", "--version"],
        stdout=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    assert version.returncode == 0


def test_no_color_and_no_terminal_mean_plain_text(sim: SimTenant, tmp_path: Path) -> None:
    env = {**os.environ, **sim.env(), "NO_COLOR": "1", "FORCE_COLOR": ""}
    env.pop("SSL_CERT_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "batch_rotate", "rotate", str(SAMPLE), "--yes", *sim_flags(sim)],
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
    assert b"\x1b[" not in done.stdout and b"\x1b[" not in done.stderr
