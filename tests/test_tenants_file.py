"""The tenants file and the spanning device list of a campaign (issue 21): every problem is an
actionable error with its line, and nothing from the file steers a secret or a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_rotate.errors import InputError
from batch_rotate.inputs.split import split_by_tenant
from batch_rotate.tenants import check_inputs, read_tenants, values_for

A = "11111111-1111-4111-8111-111111111111"
B = "22222222-2222-4222-8222-222222222222"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_aliases_inputs_and_env_names(tmp_path: Path) -> None:
    write(tmp_path / "contoso.csv", "Device ID\n")
    f = write(
        tmp_path / "tenants.csv",
        f"Tenant ID,Display name,input,client_secret_env\n{A},Contoso,contoso.csv,CONTOSO_SECRET\n"
        "Fabrikam.Example,Fabrikam,,\n",
    )
    first, second = read_tenants(f)
    assert (first.tenant, first.name, first.line) == (A, "Contoso", 2)
    assert first.input == tmp_path / "contoso.csv"
    assert first.env == {"client_secret": "CONTOSO_SECRET"}
    assert (second.tenant, second.input, second.env) == ("fabrikam.example", None, {})


def test_toml(tmp_path: Path) -> None:
    f = write(
        tmp_path / "t.toml",
        f'[[tenant]]\ntenant = "{A}"\nname = "A"\n\n[[tenant]]\ntenant = "b.example"\n',
    )
    assert [e.tenant for e in read_tenants(f)] == [A, "b.example"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"tenant,name\n{A},x\n{A.upper()},y\n", "line 3: tenant .* already on line 2"),
        ("tenant,name\ncommon,x\n", "line 2: 'common' is not a tenant id"),
        ("tenant,name\n../../etc,x\n", "not a tenant id"),
        ("tenant,name,colour\nx.example,x,red\n", "unknown column 'colour'"),
        ("tenant,name\n,x\n", "line 2: no tenant"),
        (f"tenant,name,input\n{A},x,missing.csv\n", "line 2: input 'missing.csv': no such file"),
        ("tenant,name\n", "no tenants"),
    ],
)
def test_problems_name_the_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        read_tenants(write(tmp_path / "t.csv", text))


def test_a_secret_in_the_file_is_refused_and_never_echoed(tmp_path: Path) -> None:
    f = write(tmp_path / "t.csv", f"tenant,client_secret_env\n{A},abc~DEF.123-secret\n")
    with pytest.raises(InputError) as caught:
        read_tenants(f)
    assert "abc~DEF" not in str(caught.value)
    assert "NAME of an environment variable" in str(caught.value)


def test_values_for_reads_the_named_variables(tmp_path: Path) -> None:
    f = write(
        tmp_path / "t.csv",
        f"tenant,client_id_env,certificate_path_env\n{A},A_ID,A_CERT\n",
    )
    (entry,) = read_tenants(f)
    base = {"tenant_id": "other", "client_id": "base", "client_secret": "base-secret"}
    values = values_for(entry, base, {"A_ID": "a-client", "A_CERT": "/x/a.pem"})
    assert values["tenant_id"] == A and values["client_id"] == "a-client"
    assert values["certificate_path"] == Path("/x/a.pem") and values["client_secret"] == ""
    with pytest.raises(InputError, match="A_CERT, which is not set"):
        values_for(entry, base, {"A_ID": "a"})


def test_each_tenant_needs_one_source(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "Device ID\n")
    f = write(tmp_path / "t.csv", f"tenant,input\n{A},a.csv\n{B},\n")
    entries = read_tenants(f)
    with pytest.raises(InputError, match="has no input"):
        check_inputs(entries, spanning=False, select=False)
    with pytest.raises(InputError, match="spanning every tenant"):
        check_inputs(entries, spanning=True, select=False)
    with pytest.raises(InputError, match="--select"):
        check_inputs(entries, spanning=False, select=True)


def test_split_keeps_every_row_and_refuses_unknown_tenants(tmp_path: Path) -> None:
    spanning = write(
        tmp_path / "rmm.csv",
        f"Device name,Tenant ID,Device ID\npc-1,{A},d1\npc-2,{B.upper()},d2\npc-3,{A},d3\n",
    )
    keys = {A: "a", B: "b"}
    split = split_by_tenant(spanning, tmp_path / "out", lambda v: keys.get(v.lower()))
    assert split.rows == {"a": 2, "b": 1}
    text = split.files["a"].read_text(encoding="utf-8").splitlines()
    assert text == ["Source row,Device name,Device ID", "2,pc-1,d1", "4,pc-3,d3"]
    stranger = write(tmp_path / "bad.csv", f"Tenant ID,Device ID\n{A},d1\nevil.example,d2\n,d3\n")
    with pytest.raises(InputError, match=r"rows 3: tenant 'evil.example' is not in the tenants"):
        split_by_tenant(stranger, tmp_path / "out2", lambda v: keys.get(v.lower()))
    assert not list((tmp_path / "out2").glob("*.csv"))  # nothing half-split is left to send
    with pytest.raises(InputError, match="no Tenant ID column"):
        split_by_tenant(write(tmp_path / "x.csv", "Device ID\nd\n"), tmp_path / "o3", keys.get)


def test_the_command_refuses_a_one_tenant_authority_and_a_bad_file_before_anything(
    run_cli: object, tmp_path: Path
) -> None:
    invoke = run_cli  # type: ignore[assignment]
    f = write(tmp_path / "t.csv", f"tenant,name,input\n{A},A,\n")
    pinned = invoke(["rotate", "--tenants", str(f), "--authority-url", "https://x/y"])  # type: ignore[operator]
    assert pinned.exit_code == 2 and "--authority-url names one tenant" in pinned.output
    lacking = invoke(["plan", "--tenants", str(f)], env={"AZURE_CLIENT_ID": "x"})  # type: ignore[operator]
    assert lacking.exit_code == 2 and "has no input" in lacking.output, lacking.output
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())


def test_hostile_names_never_steer_a_path_or_the_terminal(tmp_path: Path) -> None:
    from batch_rotate.campaign import run_folder

    f = write(
        tmp_path / "t.csv",
        f'tenant,name\n{A},"../../x\x1b[31m=cmd|\' /C calc\'!A0"\n{B},"[bold]Fab[/bold]\u202e"\n',
    )
    first, second = read_tenants(f)
    assert "\x1b" not in first.name and "\\x1b" in first.name
    assert "\u202e" not in second.name
    for entry in (first, second):
        folder = run_folder(tmp_path / "campaign", entry)
        assert folder.parent == tmp_path / "campaign"  # one level, inside the campaign
        assert set(folder.name) <= set(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
        )


@pytest.mark.parametrize("run_dir", ["../../etc", "/abs", "a/b", "..", "x\\y"])
def test_a_campaign_record_cannot_point_a_tenant_outside_its_folder(
    tmp_path: Path, run_dir: str
) -> None:
    import json

    from batch_rotate.campaign import Campaign

    record = {
        "command": "rotate",
        "tenants_file": "t.csv",
        "tenants": [{"tenant": A, "name": "A", "run_dir": run_dir}],
    }
    (tmp_path / "campaign.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(InputError, match="not a run folder name"):
        Campaign.load(tmp_path)
