"""Workload identity federation end to end: a pipeline's federated token (the file named by
AZURE_FEDERATED_TOKEN_FILE) as the client assertion, with azure-identity's variables, against
the simulated identity platform; the printed `verify` command reuses the mode from the record."""

from __future__ import annotations

import asyncio
import csv
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.graph.endpoints import Cloud, Credentials, Endpoints
from batch_rotate.graph.errors import SignInError
from batch_rotate.graph.signin import token_provider
from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, run_dirs

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow


def _pipeline_env(sim: SimTenant, token_file: Path) -> dict[str, str]:
    """What an AKS pod or a pipeline step is given: no secret, the authority host by variable."""
    return {
        "AZURE_TENANT_ID": sim.config.tenant_id,
        "AZURE_CLIENT_ID": sim.config.client_id,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZURE_AUTHORITY_HOST": sim.base_url,
    }


def _graph_flags(sim: SimTenant) -> list[str]:
    return ["--graph-url", sim.graph_url, "--ca-bundle", str(sim.ca_path)]


def test_workload_identity_rotates_and_the_printed_verify_needs_no_variable(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(sim.federated_token(), encoding="utf-8")
    result = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--auth", "workload-identity", *_graph_flags(sim)],
        env=_pipeline_env(sim, token_file),
    )
    assert result.exit_code == 0, result.output
    assert "eyJ" not in result.output  # neither the federated token nor an access token
    (run_dir,) = run_dirs(tmp_path)
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        queued = [r for r in csv.DictReader(handle) if r["Status"] == "queued"]
    assert len(queued) >= 40 and sim.metrics()["rotate_accepted"] == len(queued)

    # The pipeline has rotated its token since; the printed command, run with no variable set,
    # takes the mode, ids, authority host and token file from the run's record.
    token_file.write_text(sim.federated_token(), encoding="utf-8")
    line = next(x for x in result.stderr.splitlines() if x.startswith("next: batch-rotate verify"))
    words = shlex.split(line.removeprefix("next: "))
    assert words[0] == "batch-rotate"
    checked = run_cli(words[1:], env={})
    assert checked.exit_code == 75, checked.output  # read back at once: all still pending
    assert f"verification: pending {len(queued)}" in checked.output


def test_the_token_file_is_read_again_for_each_token(sim: SimTenant, tmp_path: Path) -> None:
    """A long run renews its token from the file as it is now, never the one read at start."""
    token_file = tmp_path / "token"
    token_file.write_text(sim.federated_token(), encoding="utf-8")
    credentials = Credentials(
        sim.config.tenant_id,
        sim.config.client_id,
        auth="workload-identity",
        federated_token_file=token_file,
    )
    endpoints = Endpoints.for_cloud(
        Cloud.GLOBAL,
        sim.config.tenant_id,
        authority_url=sim.authority_url,
        graph_url=sim.graph_url,
        ca_bundle=sim.ca_path,
    )
    provider = token_provider(credentials, endpoints)

    async def go() -> str:
        first = await provider.token()
        token_file.write_text(
            sim.federated_token(issued_at=time.time() - 7200, lifetime_s=600), encoding="utf-8"
        )
        with pytest.raises(SignInError) as refused:
            await provider.token(force_refresh=True)
        return first + "\n" + str(refused.value)

    try:
        first, message = asyncio.run(go()).split("\n", 1)
    finally:
        provider.close()
    assert first.startswith("eyJ")
    assert "AADSTS700024: Client assertion is not within its valid time range" in message
    assert "must refresh" in message and str(token_file) in message


@pytest.mark.parametrize(
    ("claims", "shown"),
    [
        (
            {"audience": "api://AzureADTokenExchange/other"},
            "AADSTS700212: No matching federated identity record found for presented assertion "
            "audience 'api://AzureADTokenExchange/other'",
        ),
        (
            {"issued_at": time.time() - 7200, "lifetime_s": 600},
            "AADSTS700024: Client assertion is not within its valid time range",
        ),
    ],
)
def test_a_refused_federated_token_exits_3_with_entras_reason(
    sim: SimTenant, run_cli: Cli, tmp_path: Path, claims: dict[str, object], shown: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(sim.federated_token(**claims), encoding="utf-8")
    result = run_cli(
        ["plan", str(SAMPLE), "--auth", "workload-identity", *_graph_flags(sim)],
        env=_pipeline_env(sim, token_file),
    )
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "(workload_identity): invalid_client: " + shown in text
    assert "issuer, subject and audience (api://AzureADTokenExchange)" in text


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        ("AZURE_FEDERATED_TOKEN_FILE", "AZURE_FEDERATED_TOKEN_FILE (--federated-token-file)"),
        ("AZURE_CLIENT_ID", "AZURE_CLIENT_ID (--client-id)"),
    ],
)
def test_a_missing_variable_is_named(
    sim: SimTenant, run_cli: Cli, tmp_path: Path, drop: str, named: str
) -> None:
    env = _pipeline_env(sim, tmp_path / "token")
    del env[drop]
    result = run_cli(
        ["plan", str(SAMPLE), "--auth", "workload-identity", *_graph_flags(sim)], env=env
    )
    assert result.exit_code == 2, result.output
    assert f"--auth workload-identity needs {named}" in " ".join(result.output.split())
    assert sim.count("token_requests") == 0


def test_an_unreadable_token_file_exits_3_naming_it(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    missing = tmp_path / "never-written"
    result = run_cli(
        ["plan", str(SAMPLE), "--auth", "workload-identity", *_graph_flags(sim)],
        env=_pipeline_env(sim, missing),
    )
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert f"cannot read the federated token file {missing}" in text
