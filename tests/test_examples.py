"""The scheduling examples under examples/ run as written: each line marked `# tested-command`
is taken from the file (never re-typed here) and run against the simulated tenant, signed in
the way the example's platform signs in (workload identity federation, managed identity)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.escrow import EscrowConfig
from batch_rotate.sim.targeting import TargetingConfig

from .conftest import ROOT

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow
MARK = "# tested-command"
EXAMPLES = {
    "github-actions/sweep.yml": "workload-identity",
    "azure-devops/azure-pipelines.yml": "workload-identity",
    "azure-container-job/README.md": "managed-identity",
}


def commands(path: Path) -> list[list[str]]:
    """Each line right after a `# tested-command` marker, split as a shell splits it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [shlex.split(lines[i + 1]) for i, line in enumerate(lines) if MARK in line]


def test_every_example_marks_one_sweep_command() -> None:
    for name, auth in EXAMPLES.items():
        (words,) = commands(ROOT / "examples" / name)
        assert words[:2] == ["batch-rotate", "sweep"] and words[words.index("--auth") + 1] == auth
        assert "--yes" in words  # a schedule never waits on a prompt


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_against_the_simulated_tenant(
    name: str, make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    escrow = EscrowConfig(checkin_mean_s=30.0, fail_share=0.0, not_supported_share=0.0)
    sim = make_sim(devices=80, time_scale=1000, targeting=TargetingConfig(), escrow=escrow)
    (words,) = commands(ROOT / "examples" / name)
    if EXAMPLES[name] == "workload-identity":  # what the pipeline step writes and exports
        token = tmp_path / "azure-identity-token"
        token.write_text(sim.federated_token(), encoding="utf-8")
        env = {
            "AZURE_TENANT_ID": sim.config.tenant_id,
            "AZURE_CLIENT_ID": sim.config.client_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(token),
            "AZURE_AUTHORITY_HOST": sim.base_url,
        }
    else:  # what Azure Container Apps sets for a managed identity (never 169.254.169.254)
        env = {
            "AZURE_TENANT_ID": sim.config.tenant_id,
            "IDENTITY_ENDPOINT": f"{sim.base_url}/msi/token",
            "IDENTITY_HEADER": sim.config.identity_header,
            "REQUESTS_CA_BUNDLE": str(sim.ca_path),
        }
    # the example's line as written; only where Graph is, and the sim's 1000x pacing, are added
    tenant = ["--graph-url", sim.graph_url, "--ca-bundle", str(sim.ca_path)]
    if EXAMPLES[name] == "managed-identity":
        tenant += ["--authority-url", sim.authority_url]
    result = run_cli([*words[1:], *tenant, "--write-budget", "1000/1s", "--json"], env=env)
    assert result.exit_code in (0, 75), result.output  # what the examples treat as success
    doc = json.loads(result.stdout)
    assert doc["state"] == "finished" and doc["counts"]["to_send"] > 0
    assert (tmp_path / "reports" / "sweeps" / "quarterly-90d" / doc["sweep_id"]).is_dir()
    assert sim.metrics()["rotate_accepted"] == doc["counts"]["to_send"]
