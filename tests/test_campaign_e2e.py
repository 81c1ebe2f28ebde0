"""A campaign across simulated tenants on one cloud (issue 21): one consented, one without
consent, one without Intune access. Plans, rotates, resumes after Ctrl-C and verifies, each from
one command, every printed command run as printed (only `--yes` added)."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import Result

from batch_rotate.sim.cloud import CloudTenant, SimCloud
from batch_rotate.sim.config import SimConfig

from .test_interrupt_phases import _Cli
from .test_operator_journey import printed

pytestmark = pytest.mark.slow
Cli = Callable[..., Result]

CONTOSO = "c0000000-0000-4000-8000-00000000c001"
FABRIKAM = "f0000000-0000-4000-8000-00000000fab1"
NORTHWIND = "d0000000-0000-4000-8000-0000000000d1"
WOODGROVE = "e0000000-0000-4000-8000-0000000000e1"


def _spec(tenant_id: str, seed: int, name: str, domain: str, **kw: Any) -> CloudTenant:
    config = SimConfig(tenant_id=tenant_id, seed=seed, devices=60, time_scale=20.0)
    return CloudTenant(config, name=name, domain=domain, **kw)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[SimCloud]:
    specs = [
        _spec(CONTOSO, 11, "Contoso", "contoso.example"),
        _spec(FABRIKAM, 12, "Fabrikam", "fabrikam.example", consent="AADSTS7000229"),
        _spec(NORTHWIND, 13, "Northwind", "northwind.example", intune=False),
        _spec(WOODGROVE, 14, "Woodgrove", "woodgrove.example"),
    ]
    with SimCloud(specs, workdir=tmp_path / "cloud") as started:
        yield started


def flags(cloud: SimCloud) -> list[str]:
    return [
        "--authority-host",
        cloud.authority_host,
        "--graph-url",
        cloud.graph_url,
        "--ca-bundle",
        str(cloud.ca_path),
    ]


def device_ids(cloud: SimCloud, tenant: str, count: int) -> list[str]:
    return [str(d["id"]) for d in list(cloud.tenant(tenant).inventory)[:count]]


def tenants_file(tmp_path: Path, cloud: SimCloud, count: int = 25) -> Path:
    rows = [("tenant", "name", "input")]
    for tenant, name in (
        (CONTOSO, "Contoso"),
        ("fabrikam.example", "Fabrikam"),
        (NORTHWIND, "Northwind"),
        ("woodgrove.example", "Woodgrove"),
    ):
        listed = tmp_path / f"{name.lower()}.csv"
        listed.write_text("Device ID\n" + "\n".join(device_ids(cloud, tenant, count)) + "\n")
        rows.append((tenant, name, listed.name))
    path = tmp_path / "tenants.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def campaign_of(tmp_path: Path) -> Path:
    (folder,) = (tmp_path / "reports").glob("campaign-*")
    return folder


def record(folder: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((folder / "campaign.json").read_text(encoding="utf-8"))
    return {t["name"]: t for t in data["tenants"]}


def statuses(run_dir: Path) -> dict[str, str]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {r["Input value"]: r["Status"] for r in csv.DictReader(handle)}


def accepted(cloud: SimCloud, tenant: str) -> int:
    return int(cloud.tenant(tenant).metrics()["rotate_accepted"])


def test_rotate_a_campaign_then_the_printed_verify(
    cloud: SimCloud, run_cli: Cli, tmp_path: Path
) -> None:
    tenants = tenants_file(tmp_path, cloud)
    rotated = run_cli(
        ["rotate", "--tenants", str(tenants), "--yes", *flags(cloud)], env=cloud.env()
    )
    assert rotated.exit_code == 1, rotated.output  # two tenants failed pre-flight
    folder = campaign_of(tmp_path)
    tenants_seen = record(folder)
    assert tenants_seen["Contoso"]["preflight"] == "ok"
    assert tenants_seen["Woodgrove"]["preflight"] == "ok"
    assert tenants_seen["Woodgrove"]["tenant_id"] == WOODGROVE  # the domain's `tid`
    fabrikam = tenants_seen["Fabrikam"]
    assert "not consented in Fabrikam (AADSTS7000229)" in fabrikam["preflight"]
    assert "/fabrikam.example/adminconsent?client_id=" in fabrikam["fix"]
    assert "no Intune access in Northwind" in tenants_seen["Northwind"]["preflight"]
    for name, tenant in (("Contoso", CONTOSO), ("Woodgrove", WOODGROVE)):
        run_dir = folder / tenants_seen[name]["run_dir"]
        queued = [v for v, s in statuses(run_dir).items() if s == "queued"]
        assert queued and len(queued) == accepted(cloud, tenant)
        events = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
        assert events and {json.loads(e)["tenant_id"] for e in events} == {tenant}
        assert f"[{name}]" in (run_dir / "run.log").read_text(encoding="utf-8")
        others = {"Contoso", "Woodgrove", "Fabrikam", "Northwind"} - {name}
        assert not any(f"[{o}]" in (run_dir / "run.log").read_text() for o in others)
    assert accepted(cloud, FABRIKAM) == accepted(cloud, NORTHWIND) == 0
    assert cloud.cross_tenant_requests() == 0
    book = openpyxl.load_workbook(folder / "rollup.xlsx", read_only=True)
    assert {"Summary", "Devices"} <= set(book.sheetnames)
    book.close()
    assert "adminconsent" in rotated.output, rotated.output  # the fix is on the screen too

    verify = printed(rotated.output)
    assert verify == ["verify", str(folder.relative_to(tmp_path))]
    verified = run_cli(verify, env=cloud.env())
    assert verified.exit_code in (1, 75), verified.output  # Fabrikam/Northwind stay to look at
    assert "[Contoso] verification" in verified.output, verified.output
    assert "[Fabrikam] verification" not in verified.output  # nothing was sent there

    # the printed resume after the admin consents: only what was never sent goes
    resume = printed(rotated.output, "resume the campaign: ")
    assert resume == ["rotate", "--resume", str(folder.relative_to(tmp_path))]
    again = run_cli([*resume, "--yes"], env=cloud.env())
    assert again.exit_code == 1, again.output
    assert accepted(cloud, CONTOSO) == len(
        [s for s in statuses(folder / tenants_seen["Contoso"]["run_dir"]).values() if s == "queued"]
    )  # nothing twice


def test_plan_a_campaign_then_the_printed_apply_sends_exactly_the_plans(
    cloud: SimCloud, run_cli: Cli, tmp_path: Path
) -> None:
    tenants = tenants_file(tmp_path, cloud, count=10)
    planned = run_cli(["plan", "--tenants", str(tenants), *flags(cloud)], env=cloud.env())
    assert planned.exit_code == 1, planned.output
    plan_folder = campaign_of(tmp_path)
    assert sum(accepted(cloud, t) for t in (CONTOSO, WOODGROVE)) == 0
    apply = printed(planned.output)
    assert apply == ["rotate", "--plan", str(plan_folder.relative_to(tmp_path))]
    applied = run_cli([*apply, "--yes"], env=cloud.env())
    assert applied.exit_code == 1, applied.output  # the two that failed pre-flight stay to fix
    assert "Fabrikam: the app is not consented" in applied.output
    plans = record(plan_folder)
    folders = set((tmp_path / "reports").glob("campaign-*")) - {plan_folder}
    (applied_folder,) = folders
    for name, tenant in (("Contoso", CONTOSO), ("Woodgrove", WOODGROVE)):
        would = {
            v
            for v, s in statuses(plan_folder / plans[name]["run_dir"]).items()
            if s == "would_rotate"
        }
        done = record(applied_folder)[name]
        queued = {v for v, s in statuses(applied_folder / done["run_dir"]).items() if s == "queued"}
        assert queued == would and accepted(cloud, tenant) == len(would)


def test_a_spanning_list_with_a_stranger_tenant_is_refused_before_anything(
    cloud: SimCloud, run_cli: Cli, tmp_path: Path
) -> None:
    tenants = tmp_path / "tenants.csv"
    tenants.write_text(f"tenant,name\n{CONTOSO},Contoso\n{WOODGROVE},Woodgrove\n")
    rmm = tmp_path / "rmm.csv"
    ids = device_ids(cloud, CONTOSO, 3)
    rmm.write_text(
        "Tenant ID,Device ID\n"
        + "".join(f"{CONTOSO},{i}\n" for i in ids)
        + f"{FABRIKAM},{device_ids(cloud, FABRIKAM, 1)[0]}\n"
    )
    refused = run_cli(
        ["rotate", "--tenants", str(tenants), str(rmm), "--yes", *flags(cloud)], env=cloud.env()
    )
    assert refused.exit_code == 2, refused.output
    assert "row" in refused.output and "not in the tenants file" in refused.output
    assert not list((tmp_path / "reports").glob("campaign-*"))
    assert accepted(cloud, CONTOSO) == 0

    rmm.write_text(
        "Tenant ID,Device ID\n"
        + "".join(f"{CONTOSO},{i}\n" for i in ids)
        + "".join(f"{WOODGROVE},{i}\n" for i in device_ids(cloud, WOODGROVE, 2))
    )
    split = run_cli(
        ["rotate", "--tenants", str(tenants), str(rmm), "--yes", *flags(cloud)], env=cloud.env()
    )
    assert split.exit_code in (0, 1), split.output
    folder = campaign_of(tmp_path)
    seen = record(folder)
    assert len(statuses(folder / seen["Contoso"]["run_dir"])) == 3
    assert len(statuses(folder / seen["Woodgrove"]["run_dir"])) == 2
    assert cloud.cross_tenant_requests() == 0
    listed = run_cli(["runs", "--json"])
    runs = json.loads(listed.output[listed.output.index("{") :])["runs"]
    assert {(r["kind"], r["campaign"]) for r in runs} == {("campaign", folder.name)}
    assert len(runs) == 2


def test_interrupted_campaign_then_the_printed_resume_sends_each_device_once(
    cloud: SimCloud, run_cli: Cli, tmp_path: Path
) -> None:
    tenants = tmp_path / "tenants.csv"
    rows = ["tenant,name,input"]
    for tenant, name in ((CONTOSO, "Contoso"), (WOODGROVE, "Woodgrove")):
        (tmp_path / f"{name}.csv").write_text(
            "Device ID\n" + "\n".join(device_ids(cloud, tenant, 60))
        )
        rows.append(f"{tenant},{name},{name}.csv")
    tenants.write_text("\n".join(rows) + "\n")
    slow = ["--write-budget", "10/1s", "--batch-size", "5", "--max-concurrency", "1"]

    class _Env:  # _Cli takes a SimTenant for its environment
        def env(self) -> dict[str, str]:
            return cloud.env()

    cli = _Cli(
        ["rotate", "--tenants", str(tenants), "--yes", *slow, *flags(cloud)], _Env(), tmp_path
    )  # type: ignore[arg-type]

    def sending() -> bool:
        for journal in (tmp_path / "reports").glob("campaign-*/*/journal.sqlite"):
            try:
                with sqlite3.connect(journal) as db:
                    state = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if state.get("state") == "rotating":
                    return True
            except sqlite3.OperationalError:
                continue
        return False

    cli.wait_for(sending, "a tenant to start sending")
    cli.proc.send_signal(signal.SIGINT)
    code, output = cli.finish()
    assert code == 130, output
    folder = campaign_of(tmp_path)
    resume = printed(output)
    assert resume == ["rotate", "--resume", str(folder.relative_to(tmp_path))]
    before = accepted(cloud, CONTOSO) + accepted(cloud, WOODGROVE)
    assert before < 2 * 60
    resumed = run_cli([*resume, "--yes"], env=cloud.env())
    assert resumed.exit_code == 0, resumed.output
    seen = record(folder)
    for name, tenant in (("Contoso", CONTOSO), ("Woodgrove", WOODGROVE)):
        queued = [s for s in statuses(folder / seen[name]["run_dir"]).values() if s == "queued"]
        assert len(queued) == accepted(cloud, tenant)  # each device once


def test_a_delegated_campaign_prompts_once_per_tenant_and_verify_reuses_each_cache(
    tmp_path: Path, run_cli: Cli
) -> None:
    """--auth device-code across tenants: one sign-in per tenant, each its own token cache file;
    the printed verify signs in to each from its cache (no prompt), never with the app's secret."""
    admin = "tech@partner.example"
    specs = [
        _spec(CONTOSO, 21, "Contoso", "contoso.example"),
        _spec(WOODGROVE, 24, "Woodgrove", "woodgrove.example"),
    ]
    with SimCloud(specs, workdir=tmp_path / "cloud") as cloud:
        for tenant in (CONTOSO, WOODGROVE):
            cloud.tenant(tenant).approve_device_codes(admin)
        tenants = tmp_path / "tenants.csv"
        lines = ["tenant,name,input"]
        for tenant, name in ((CONTOSO, "Contoso"), (WOODGROVE, "Woodgrove")):
            (tmp_path / f"{name}.csv").write_text(
                "Device ID\n" + "\n".join(device_ids(cloud, tenant, 8)) + "\n"
            )
            lines.append(f"{tenant},{name},{name}.csv")
        tenants.write_text("\n".join(lines) + "\n")
        env = {"AZURE_CLIENT_ID": cloud.env()["AZURE_CLIENT_ID"]}
        cache = tmp_path / "cache.json"
        rotated = run_cli(
            [
                "rotate",
                "--tenants",
                str(tenants),
                "--yes",
                "--auth",
                "device-code",
                "--token-cache",
                str(cache),
                *flags(cloud),
            ],
            env=env,
        )
        assert rotated.exit_code == 0, rotated.output
        for tenant in (CONTOSO, WOODGROVE):
            assert cloud.tenant(tenant).count("devicecode_requests") == 1
            assert cloud.tenant(tenant).count("app_token_requests") == 0
        assert sorted(p.name for p in tmp_path.glob("cache-*.json")) == [
            f"cache-{CONTOSO}.json",
            f"cache-{WOODGROVE}.json",
        ]
        verify = printed(rotated.output)
        verified = run_cli(
            verify, env={**env, "AZURE_CLIENT_SECRET": cloud.env()["AZURE_CLIENT_SECRET"]}
        )
        assert verified.exit_code in (0, 75), verified.output
        for tenant in (CONTOSO, WOODGROVE):
            assert cloud.tenant(tenant).count("devicecode_requests") == 1  # no second prompt
            assert cloud.tenant(tenant).count("app_token_requests") == 0
        assert cloud.cross_tenant_requests() == 0


def test_select_across_tenants_then_the_printed_plan_plans_each_tenants_selection(
    cloud: SimCloud, run_cli: Cli, tmp_path: Path
) -> None:
    tenants = tmp_path / "tenants.csv"
    tenants.write_text(
        f"tenant,name\n{CONTOSO},Contoso\nwoodgrove.example,Woodgrove\n{FABRIKAM},Fabrikam\n"
    )
    out = tmp_path / "due.csv"
    selected = run_cli(
        ["select", "--tenants", str(tenants), "--all-windows", "--out", str(out), *flags(cloud)],
        env=cloud.env(),
    )
    assert selected.exit_code == 1, selected.output  # Fabrikam cannot sign in: said, not hidden
    assert "not consented in Fabrikam" in selected.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_tenant = {
        t: sum(1 for r in rows if r["Tenant ID"] == t) for t in (CONTOSO, "woodgrove.example")
    }
    assert all(by_tenant.values()) and len(rows) == sum(by_tenant.values())
    plan = printed(selected.output, "review it, then: ")
    assert plan[:4] == ["plan", "--tenants", "tenants.csv", "due.csv"]
    planned = run_cli(plan, env=cloud.env())
    assert planned.exit_code == 0, planned.output
    folder = campaign_of(tmp_path)
    seen = record(folder)
    for name, tenant in (("Contoso", CONTOSO), ("Woodgrove", "woodgrove.example")):
        would = [
            s for s in statuses(folder / seen[name]["run_dir"]).values() if s == "would_rotate"
        ]
        assert len(would) == by_tenant[tenant]
    assert "Fabrikam" not in seen  # it was not in the list: no rows, no run
    assert cloud.cross_tenant_requests() == 0


def test_make_demo_campaign_writes_a_campaign_with_its_roll_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from batch_rotate.sim import demo

    monkeypatch.chdir(tmp_path)
    assert demo.main(["campaign"]) == 0
    (folder,) = (tmp_path / "reports" / "demo").glob("campaign-*")
    seen = record(folder)
    assert seen["Contoso"]["preflight"] == seen["Woodgrove"]["preflight"] == "ok"
    assert "AADSTS7000229" in seen["Fabrikam"]["preflight"]
    assert (folder / "rollup.xlsx").is_file() and (folder / "rollup.csv").is_file()
    assert "adminconsent" in capfd.readouterr().err


def test_a_tenants_own_credential_comes_from_the_variable_the_file_names(
    cloud: SimCloud, run_cli: Cli, tmp_path: Path
) -> None:
    """Woodgrove signs in with the secret in WOODGROVE_SECRET; Contoso with the campaign's,
    which is wrong here: only Woodgrove can pass pre-flight, and no secret reaches a file."""
    secret = cloud.env()["AZURE_CLIENT_SECRET"]
    for name, tenant in (("Contoso", CONTOSO), ("Woodgrove", WOODGROVE)):
        (tmp_path / f"{name}.csv").write_text(
            "Device ID\n" + "\n".join(device_ids(cloud, tenant, 5))
        )
    tenants = tmp_path / "tenants.csv"
    tenants.write_text(
        "tenant,name,input,client_secret_env\n"
        f"{CONTOSO},Contoso,Contoso.csv,\n{WOODGROVE},Woodgrove,Woodgrove.csv,WOODGROVE_SECRET\n"
    )
    env = {**cloud.env(), "AZURE_CLIENT_SECRET": "not-the-secret", "WOODGROVE_SECRET": secret}
    rotated = run_cli(["rotate", "--tenants", str(tenants), "--yes", *flags(cloud)], env=env)
    assert rotated.exit_code == 1, rotated.output
    folder = campaign_of(tmp_path)
    seen = record(folder)
    assert seen["Woodgrove"]["preflight"] == "ok" and accepted(cloud, WOODGROVE) > 0
    assert seen["Contoso"]["preflight"] != "ok" and accepted(cloud, CONTOSO) == 0
    assert seen["Woodgrove"]["env"] == {"client_secret": "WOODGROVE_SECRET"}  # the name only
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".jsonl", ".csv"):
            assert secret not in path.read_text(encoding="utf-8", errors="replace"), path


def test_a_domain_that_now_signs_in_elsewhere_is_stopped_on_resume(
    cloud: SimCloud, run_cli: Cli, tmp_path: Path
) -> None:
    """The campaign recorded the tid the domain signed in to; a resume whose token says another
    tenant sends nothing there (a domain moved, or a wrong authority)."""
    (tmp_path / "w.csv").write_text("Device ID\n" + "\n".join(device_ids(cloud, WOODGROVE, 5)))
    tenants = tmp_path / "tenants.csv"
    tenants.write_text("tenant,name,input\nwoodgrove.example,Woodgrove,w.csv\n")
    first = run_cli(["rotate", "--tenants", str(tenants), "--yes", *flags(cloud)], env=cloud.env())
    assert first.exit_code == 0, first.output
    folder = campaign_of(tmp_path)
    data = json.loads((folder / "campaign.json").read_text(encoding="utf-8"))
    assert data["tenants"][0]["tenant_id"] == WOODGROVE
    data["tenants"][0]["tenant_id"] = CONTOSO  # as if the domain had signed in there before
    (folder / "campaign.json").write_text(json.dumps(data), encoding="utf-8")
    before = accepted(cloud, WOODGROVE)
    again = run_cli(["rotate", "--resume", str(folder), "--yes"], env=cloud.env())
    assert again.exit_code == 1, again.output
    assert f"now signs in to tenant {WOODGROVE}, but this campaign ran in {CONTOSO}" in again.output
    assert accepted(cloud, WOODGROVE) == before
