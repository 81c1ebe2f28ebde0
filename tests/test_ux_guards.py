"""The console guides (issue 12 item 3): key ceiling and recent-run guards end to end against the
simulated tenant, the 30-day warning, and profiles with their precedence (item 5)."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.escrow import EscrowConfig

from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]
_ROTATE = ["rotate", str(SAMPLE), "--yes"]
CEILING = EscrowConfig(ceiling_share=0.1, near_ceiling_share=0.1)


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {r["Row"]: r for r in csv.DictReader(handle)}


def _meta(run_dir: Path) -> dict[str, str]:
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())


def _newest(tmp_path: Path) -> Path:
    """The last run made (folder names sort by second, then by a random suffix)."""
    return max(run_dirs(tmp_path), key=lambda run_dir: _meta(run_dir)["started_at"])


def test_key_ceiling_devices_are_not_rotated_unless_allowed(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(escrow=CEILING)
    result = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--check-keys", *sim_flags(sim)], env=sim.env()
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    rows = _report(run_dir).values()
    held = {r["Intune device ID"] for r in rows if r["Reason"].startswith("key_ceiling:")}
    assert held and all(sim.initial_key_count(d) >= 190 for d in held)
    assert all(r["Status"] == "ineligible" for r in rows if r["Intune device ID"] in held)
    accepted = set(sim.metrics()["accepted_by_device"])
    assert not accepted & held
    assert "--allow-key-ceiling" in result.stderr and "key_ceiling" in result.stderr

    allowed = run_cli(
        [*_ROTATE, "--check-keys", "--allow-key-ceiling", "--recent", "0", *sim_flags(sim)],
        env=sim.env(),
    )
    assert allowed.exit_code == 0, allowed.output
    assert held <= set(sim.metrics()["accepted_by_device"])
    assert "WILL be rotated" in allowed.stderr


def test_recent_run_guard_skips_devices_another_run_queued(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    first = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=sim.env())
    assert first.exit_code == 0, first.output
    accepted = sim.metrics()["rotate_accepted"]
    (first_dir,) = run_dirs(tmp_path)

    planned = run_cli(["plan", str(SAMPLE), "--json", *sim_flags(sim)], env=sim.env())
    doc = json.loads(planned.stdout)
    assert doc["counts"].get("would_rotate", 0) == 0
    assert any(first_dir.name in w and "--force-recent" in w for w in doc["warnings"])

    again = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=sim.env())
    assert again.exit_code == 0, again.output
    assert sim.metrics()["rotate_accepted"] == accepted  # nothing sent twice
    newest = _newest(tmp_path)
    recent = [r for r in _report(newest).values() if r["Reason"].startswith("recent_run:")]
    assert len(recent) == accepted
    assert all(r["Status"] == "ineligible" and first_dir.name in r["Reason"] for r in recent)

    forced = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--force-recent", *sim_flags(sim)], env=sim.env()
    )
    assert forced.exit_code == 0, forced.output
    assert sim.metrics()["rotate_accepted"] == 2 * accepted


def test_devices_not_seen_for_a_month_are_warned_about(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    devices = [
        {
            "id": f"00000000-0000-4000-8000-{n:012d}",
            "deviceName": f"LT-{n:03d}",
            "serialNumber": f"SN{n:05d}",
            "azureADDeviceId": f"10000000-0000-4000-8000-{n:012d}",
            "operatingSystem": "Windows",
            "osVersion": "10.0.22631.4460",
            "joinType": "azureADJoined",
            "managementAgent": "mdm",
            "lastSyncDateTime": (now - timedelta(days=days)).isoformat().replace("+00:00", "Z"),
        }
        for n, days in enumerate([1, 45, 2, 90])
    ]
    inventory = tmp_path / "fleet.json"
    inventory.write_text(json.dumps(devices), encoding="utf-8")
    sim = make_sim(inventory_file=inventory)
    names = tmp_path / "names.csv"
    names.write_text("Device name\n" + "\n".join(d["deviceName"] for d in devices) + "\n")
    result = run_cli(["plan", str(names), "--json", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (warning,) = [w for w in doc["warnings"] if "30 days" in w]
    assert warning.startswith("2 devices") and "LT-001" in warning and "LT-003" in warning
    assert doc["counts"]["would_rotate"] == 4  # warned, not skipped


def test_the_simulated_fleet_warns_only_of_the_devices_it_left_unsynced(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    # The generated fleet syncs on the tenant's clock: a default tenant has no stale devices.
    quiet = make_sim()
    result = run_cli(["plan", str(SAMPLE), "--json", *sim_flags(quiet)], env=quiet.env())
    assert result.exit_code == 0, result.output
    assert not [w for w in json.loads(result.stdout)["warnings"] if "30 days" in w]

    sim = make_sim(unsynced_share=0.3)
    result = run_cli(["plan", str(SAMPLE), "--json", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    rows = _report(_newest(tmp_path)).values()
    planned = {r["Intune device ID"]: int(r["Row"]) for r in rows if r["Status"] == "would_rotate"}
    cutoff = datetime.now(UTC) - timedelta(days=30)
    stale = sorted(
        (planned[d["id"]], d["deviceName"], d["lastSyncDateTime"][:10])
        for d in sim.inventory
        if d["id"] in planned
        and datetime.fromisoformat(d["lastSyncDateTime"].replace("Z", "+00:00")) < cutoff
    )
    assert len(stale) > 3
    (warning,) = [w for w in json.loads(result.stdout)["warnings"] if "30 days" in w]
    examples = ", ".join(f"row {row} {name} (last sync {day})" for row, name, day in stale[:3])
    assert warning.startswith(f"{len(stale)} devices have not synced")
    assert warning.endswith(f"stay pending: {examples} …")


def _write_config(folder: Path, sim: SimTenant, **extra: str) -> Path:
    lines = [
        'default-profile = "lab"',
        "[profile.lab]",
        f'graph-url = "{sim.graph_url}"',
        f'authority-url = "{sim.authority_url}"',
        f'ca-bundle = "{sim.ca_path}"',
        'write-budget = "120/20s"',
        'tenant-id = "00000000-0000-4000-8000-00000000beef"',
        *(f'{key} = "{value}"' for key, value in extra.items()),
    ]
    path = folder / "batch-rotate.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_profile_supplies_defaults_and_env_and_options_override_it(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    _write_config(tmp_path, sim)
    env = {k: v for k, v in sim.env().items() if k != "AZURE_TENANT_ID"}
    # found in the folder but not named: it may not route sign-in; nothing is sent anywhere
    unnamed = run_cli(["plan", str(SAMPLE)], env=env)
    assert unnamed.exit_code == 2, unnamed.output
    assert "nobody named" in unnamed.output and "--profile lab" in unnamed.output
    assert sim.metrics()["token_requests"] == 0 and not (tmp_path / "reports").exists()
    # named (after the command, as a global option may be): its tenant is the one used, so the
    # token (for the sim's own tenant) is refused by the tenant check, naming the profile's tenant
    alone = run_cli(["plan", str(SAMPLE), "--profile", "lab"], env=env)
    assert alone.exit_code == 3, alone.output
    assert "AZURE_TENANT_ID is 00000000-0000-4000-8000-00000000beef" in alone.output
    assert _meta(_newest(tmp_path))["tenant_id"].endswith("beef")
    # the environment overrides the profile's tenant; the profile's URLs and budget still apply
    with_env = run_cli(["--profile", "lab", "plan", str(SAMPLE)], env=sim.env())
    assert with_env.exit_code == 0, with_env.output
    meta = _meta(_newest(tmp_path))
    assert meta["tenant_id"] == sim.config.tenant_id
    assert meta["graph_url"].startswith(sim.graph_url.rstrip("/"))
    # an option overrides both
    named = ["--profile", "lab", "rotate", str(SAMPLE), "--yes"]
    rotated = run_cli([*named, "--write-budget", "150/20s"], env=sim.env())
    assert rotated.exit_code == 0, rotated.output
    assert _meta(_newest(tmp_path))["write_budget"] == "150/20s"
    rotated = run_cli([*named, "--recent", "0"], env=sim.env())
    assert rotated.exit_code == 0, rotated.output
    assert _meta(_newest(tmp_path))["write_budget"] == "120/20s"


def test_named_profile_and_config_path(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    config = _write_config(folder, sim)
    config.write_text(config.read_text().replace("default-profile", "# default-profile"))
    missing = run_cli(["--config", str(config), "--profile", "nope", "plan", str(SAMPLE)])
    assert missing.exit_code == 2 and "profile.nope" in missing.output and "lab" in missing.output
    used = run_cli(
        ["--config", str(config), "--profile", "lab", "plan", str(SAMPLE)], env=sim.env()
    )
    assert used.exit_code == 0, used.output
    # without the profile, nothing of the file applies (the default Graph URL would be used)
    assert _meta(_newest(tmp_path))["graph_url"].startswith(sim.graph_url.rstrip("/"))


def test_a_secret_in_the_profile_file_is_refused(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    _write_config(tmp_path, sim, **{"client-secret": "hunter2"})
    result = run_cli(["plan", str(SAMPLE)], env=sim.env())
    assert result.exit_code == 2
    assert "client-secret" in result.output and "AZURE_CLIENT_SECRET" in result.output
    assert "hunter2" not in result.output
    assert sim.metrics()["token_requests"] == 0


def test_an_unknown_profile_key_is_refused(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    _write_config(tmp_path, sim, **{"max-devcies": "10"})
    result = run_cli(["plan", str(SAMPLE), "--profile", "lab"], env=sim.env())
    assert result.exit_code == 2
    assert "max-devcies" in result.output and "max-devices" in result.output


def test_an_unnamed_profile_blocks_only_commands_it_could_steer(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    _write_config(tmp_path, sim)  # a default-profile with routing keys, found in the folder
    listed = run_cli(["runs"])  # takes no Graph URL: the profile cannot steer it
    assert listed.exit_code == 0, listed.output
    refused = run_cli(["verify", str(tmp_path / "reports" / "none")], env=sim.env())
    assert refused.exit_code == 2 and "nobody named" in refused.output
