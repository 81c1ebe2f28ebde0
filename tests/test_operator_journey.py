"""The operator's journey, every step taken from the previous step's output: plan with
--check-keys then the printed apply; device code and managed identity rotations then the printed
verify and resume; SSL_CERT_FILE set to the system store; -q interrupted then the printed resume.

Each printed command is split as a POSIX shell would (`shlex`) and run as it stands; the only
thing ever added is `--yes`, the consent the test's missing terminal cannot give.
"""

from __future__ import annotations

import csv
import shlex
import signal
import sqlite3
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.targeting import TargetingConfig

from .conftest import SAMPLE, run_dirs, sim_flags
from .test_interrupt_phases import _Cli
from .test_verify_e2e import LIVELY

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow
ADMIN = "alice@contoso.example"
VERIFY_DONE = (0, 1, 75)  # verify answered: all verified / something to look at / pending


def printed(output: str, marker: str = "next: ") -> list[str]:
    """The command after `marker` on the last line that has one, as a shell splits it."""
    lines = [line for line in output.splitlines() if marker in line]
    assert lines, f"no {marker!r} line in:\n{output}"
    words = shlex.split(lines[-1].split(marker, 1)[1])
    assert words[0] == "batch-rotate", words
    return words[1:]


def report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Row"]: row for row in csv.DictReader(handle)}


def newest(tmp_path: Path, before: list[Path]) -> Path:
    (made,) = set(run_dirs(tmp_path)) - set(before)
    return made


def meta(run_dir: Path) -> dict[str, str]:
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())


def test_plan_with_check_keys_then_the_printed_apply_sends_exactly_that_plan(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(escrow=LIVELY)
    planned = run_cli(["plan", str(SAMPLE), "--check-keys", *sim_flags(sim)], env=sim.env())
    assert planned.exit_code == 0, planned.output
    (plan_dir,) = run_dirs(tmp_path)
    apply = printed(planned.output)
    assert apply == ["rotate", "--plan", str(plan_dir.relative_to(tmp_path))]
    plan_rows = report(plan_dir)
    would = {r["Intune device ID"] for r in plan_rows.values() if r["Status"] == "would_rotate"}
    ceiling = {r["Row"] for r in plan_rows.values() if r["Reason"].startswith("key_ceiling")}
    assert would and ceiling  # the sample has devices at Entra's key ceiling

    # as printed: no sim flags, no --check-keys; the plan's record says where and how
    applied = run_cli([*apply, "--yes"], env=sim.env())
    assert applied.exit_code == 0, applied.output
    run_dir = newest(tmp_path, [plan_dir])
    rows = report(run_dir)
    assert {r["Intune device ID"] for r in rows.values() if r["Status"] == "queued"} == would
    assert all(rows[row]["Reason"].startswith("key_ceiling") for row in ceiling)
    assert sim.metrics()["rotate_accepted"] == len(would)
    assert meta(run_dir)["plan_run"] == plan_dir.name


def test_the_apply_refuses_an_old_plan_and_a_changed_input(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    devices = tmp_path / "devices.csv"
    devices.write_bytes(SAMPLE.read_bytes())
    planned = run_cli(["plan", str(devices), *sim_flags(sim)], env=sim.env())
    assert planned.exit_code == 0, planned.output
    apply = printed(planned.output)
    old = run_cli([*apply, "--plan-max-age", "0s", "--yes"], env=sim.env())
    assert old.exit_code == 2 and "older than --plan-max-age" in old.output, old.output
    with devices.open("a", encoding="utf-8") as handle:
        handle.write("00000000-0000-4000-8000-0000000000aa\n")
    changed = run_cli([*apply, "--yes"], env=sim.env())
    assert changed.exit_code == 2 and "changed since the plan" in changed.output, changed.output
    assert "batch-rotate plan" in changed.output
    assert len(run_dirs(tmp_path)) == 1 and sim.metrics()["rotate_accepted"] == 0


def _device_code_sim(make_sim: Callable[..., SimTenant]) -> SimTenant:
    sim = make_sim(user_roles={ADMIN: ["Intune Administrator"]})
    sim.approve_device_codes(ADMIN)
    return sim


def test_device_code_rotate_then_the_printed_verify_and_resume_stay_the_admin(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = _device_code_sim(make_sim)
    admin_env = {"AZURE_TENANT_ID": sim.config.tenant_id, "AZURE_CLIENT_ID": sim.config.client_id}
    cache = ["--token-cache", str(tmp_path / "cache.json")]
    rotate = ["rotate", str(SAMPLE), "--yes", "--auth", "device-code", *cache, *sim_flags(sim)]
    rotated = run_cli(rotate, env=admin_env)
    assert rotated.exit_code == 0, rotated.output
    verify = printed(rotated.output)
    assert verify[0] == "verify" and "--auth" not in verify
    # a secret in the environment must not switch the run from the admin to the app
    with_secret = sim.env()
    checked = run_cli(verify, env=with_secret)
    assert checked.exit_code in VERIFY_DONE, checked.output
    run_dir = run_dirs(tmp_path)[0]
    resumed = run_cli(["rotate", "--resume", str(run_dir.relative_to(tmp_path)), "--yes"])
    assert resumed.exit_code == 0, resumed.output
    assert sim.count("app_token_requests") == 0  # never the app's client credentials
    assert sim.count("devicecode_requests") == 1  # one prompt; then the admin's cache


def test_managed_identity_rotate_then_the_printed_verify(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    roles = ["DeviceManagementManagedDevices.ReadWrite.All", "BitLockerKey.ReadBasic.All"]
    sim = make_sim(managed_identities={"system": roles})
    env = {
        "IDENTITY_ENDPOINT": f"{sim.base_url}/msi/token",
        "IDENTITY_HEADER": sim.config.identity_header,
        "REQUESTS_CA_BUNDLE": str(sim.ca_path),
    }
    rotated = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--auth", "managed-identity", *sim_flags(sim)], env=env
    )
    assert rotated.exit_code == 0, rotated.output
    checked = run_cli(printed(rotated.output), env={**env, **sim.env()})  # a secret set too
    assert checked.exit_code in VERIFY_DONE, checked.output
    assert sim.count("app_token_requests") == 0


def test_ssl_cert_file_set_to_the_system_store_never_beats_the_runs_ca(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    system = ssl.get_default_verify_paths().openssl_cafile
    if not Path(system).is_file():
        pytest.skip("no system CA store file on this machine")
    env = {**sim.env(), "SSL_CERT_FILE": system}
    rotated = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=env)
    assert rotated.exit_code == 0, rotated.output
    checked = run_cli(printed(rotated.output), env=env)
    assert checked.exit_code in VERIFY_DONE, checked.output
    (run_dir,) = run_dirs(tmp_path)
    resumed = run_cli(["rotate", "--resume", str(run_dir.relative_to(tmp_path)), "--yes"], env=env)
    assert resumed.exit_code == 0, resumed.output
    # what the operator types now still wins over the record
    typed = run_cli([*printed(rotated.output), "--ca-bundle", str(tmp_path / "none.pem")], env=env)
    assert typed.exit_code == 2 and "--ca-bundle" in typed.output  # the typed file is missing


def test_quiet_interrupted_rotate_prints_its_run_and_the_resume_that_works(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    slow = ["--write-budget", "20/1s", "--batch-size", "5", "--max-concurrency", "1"]
    cli = _Cli(["rotate", str(SAMPLE), "--yes", "-q", *slow, *sim_flags(sim)], sim, tmp_path)

    def sending() -> bool:
        dirs = run_dirs(tmp_path)
        try:
            return bool(dirs) and meta(dirs[0]).get("state") == "rotating"
        except sqlite3.OperationalError:  # the journal is being created
            return False

    cli.wait_for(sending, "the rotation to start")
    cli.proc.send_signal(signal.SIGINT)
    code, output = cli.finish()
    assert code == 130, output
    (run_dir,) = run_dirs(tmp_path)
    assert f"run {run_dir.name}" in output
    resume = printed(output, "resume with  ")
    assert resume == ["rotate", "--resume", str(run_dir.relative_to(tmp_path))]
    resumed = run_cli([*resume, "--yes"], env=sim.env())
    assert resumed.exit_code == 0, resumed.output
    queued = [r for r in report(run_dir).values() if r["Status"] == "queued"]
    assert len(queued) == sim.metrics()["rotate_accepted"] == 47  # each once


def test_select_by_device_code_then_the_printed_plan_signs_in_the_same_way(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(targeting=TargetingConfig(), devices=200)
    sim.approve_device_codes(ADMIN)
    env = {"AZURE_TENANT_ID": sim.config.tenant_id, "AZURE_CLIENT_ID": sim.config.client_id}
    cache = ["--token-cache", str(tmp_path / "cache.json")]
    out = ["--out", str(tmp_path / "finance.csv")]
    chosen = ["select", "--group", "Finance", "--auth", "device-code", *cache, *out]
    selected = run_cli([*chosen, *sim_flags(sim)], env=env)
    assert selected.exit_code == 0, selected.output
    plan = printed(selected.output, "review it, then: ")
    assert (
        plan[:2] == ["plan", "finance.csv"] and "--auth" in plan and "--client-secret" not in plan
    )
    planned = run_cli(plan, env={**env, "AZURE_CLIENT_SECRET": sim.config.client_secret})
    assert planned.exit_code == 0, planned.output
    assert sim.count("app_token_requests") == 0 and sim.count("devicecode_requests") == 1


def test_a_profile_run_then_the_printed_verify_from_another_folder_without_the_profile(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    config = tmp_path / "batch-rotate.toml"
    config.write_text(
        "[profile.lab]\n"
        f'graph-url = "{sim.graph_url}"\nauthority-url = "{sim.authority_url}"\n'
        f'ca-bundle = "{sim.ca_path}"\nwrite-budget = "120/20s"\n',
        encoding="utf-8",
    )
    rotated = run_cli(["rotate", str(SAMPLE), "--yes", "--profile", "lab"], env=sim.env())
    assert rotated.exit_code == 0, rotated.output
    assert f"profile lab from {config}" in " ".join(rotated.output.split())
    (run_dir,) = run_dirs(tmp_path)
    assert meta(run_dir)["profile"].startswith("profile lab from")
    config.unlink()  # the printed command needs nothing but the run: its record
    checked = run_cli(printed(rotated.output), env=sim.env())
    assert checked.exit_code in VERIFY_DONE, checked.output
    assert "no profile" in checked.output


def test_global_options_before_or_after_the_command(run_cli: Cli) -> None:
    for args in (["--json", "-q", "plan", str(SAMPLE)], ["plan", str(SAMPLE), "--json", "-q"]):
        result = run_cli(args, env={})
        assert result.exit_code == 2, result.output
        assert '"exit_code": 2' in result.stdout and "AZURE_TENANT_ID" in result.stdout


def test_plan_select_then_the_printed_apply(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(targeting=TargetingConfig(), devices=120)
    planned = run_cli(["plan", "--select", "--group", "Finance", *sim_flags(sim)], env=sim.env())
    assert planned.exit_code == 0, planned.output
    (plan_dir,) = run_dirs(tmp_path)
    would = {
        r["Intune device ID"] for r in report(plan_dir).values() if r["Status"] == "would_rotate"
    }
    assert would and would <= sim.select_truth("group", "Finance")
    applied = run_cli([*printed(planned.output), "--yes"], env=sim.env())
    assert applied.exit_code == 0, applied.output
    rows = report(newest(tmp_path, [plan_dir])).values()
    assert {r["Intune device ID"] for r in rows if r["Status"] == "queued"} == would
    assert sim.metrics()["rotate_accepted"] == len(would)
    both = run_cli(["plan", str(SAMPLE), "--select", "--all-windows"], env=sim.env())
    assert both.exit_code == 2 and "not both" in both.output
