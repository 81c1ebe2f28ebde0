"""Identity checks: the token's tenant is the configured one, and the credential used is the one
recorded (a certificate given is never silently replaced by a secret)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from typer.testing import Result

from batch_rotate.graph.auth import MsalTokenProvider
from batch_rotate.graph.endpoints import Cloud, Credentials, Endpoints
from batch_rotate.graph.errors import SignInError
from batch_rotate.graph.session import check_tenant
from batch_rotate.sim import SimTenant

from ..conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]
SIM_TENANT = "00000000-0000-4000-8000-00000000a11c"
OTHER_TENANT = "7d3f9c1e-5b2a-4c8d-9e6f-0a1b2c3d4e5f"
AUTHORITY = f"https://login.microsoftonline.com/{OTHER_TENANT}"


def _token(**token_claims: str) -> str:
    return jwt.encode(token_claims, "k" * 32, algorithm="HS256")


def test_a_token_for_the_configured_tenant_passes() -> None:
    check_tenant(_token(tid=SIM_TENANT), SIM_TENANT, AUTHORITY)
    check_tenant(_token(tid=SIM_TENANT.upper()), f" {SIM_TENANT} ", AUTHORITY)


def test_a_token_for_another_tenant_names_both() -> None:
    with pytest.raises(SignInError) as caught:
        check_tenant(_token(tid=SIM_TENANT), OTHER_TENANT, AUTHORITY)
    text = str(caught.value)
    assert SIM_TENANT in text and OTHER_TENANT in text and AUTHORITY in text


def test_a_domain_name_tenant_cannot_be_compared_so_it_is_not() -> None:
    check_tenant(_token(tid=SIM_TENANT), "contoso.onmicrosoft.com", AUTHORITY)


def test_an_opaque_token_or_one_without_tid_is_left_to_graph() -> None:
    check_tenant("not-a-jwt", OTHER_TENANT, AUTHORITY)
    check_tenant(_token(aud="https://graph.microsoft.com"), OTHER_TENANT, AUTHORITY)


def test_a_token_for_another_tenant_exits_3_before_any_request(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    # The authority URL (the sim's) signs in to its own tenant; AZURE_TENANT_ID says another.
    env = {**sim.env(), "AZURE_TENANT_ID": OTHER_TENANT}
    result = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=env)
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert f"the token is for tenant {SIM_TENANT}" in text
    assert f"AZURE_TENANT_ID is {OTHER_TENANT}" in text
    metrics = sim.metrics()
    assert metrics["token_requests"] == 1
    assert metrics["graph_requests"] == 0
    (run_dir,) = run_dirs(tmp_path)
    with (run_dir / "report.csv").open(encoding="utf-8-sig") as handle:
        assert "the token is for tenant" in handle.read()


def test_a_certificate_given_is_used_even_beside_a_secret(tmp_path: Path) -> None:
    """What `Credentials.method` records is what MSAL gets: never a silent fall-back."""
    missing = tmp_path / "gone.pem"
    credentials = Credentials(OTHER_TENANT, "app", client_secret="s3cret", certificate_path=missing)
    assert credentials.method == "certificate"
    endpoints = Endpoints.for_cloud(Cloud.GLOBAL, OTHER_TENANT)
    provider = MsalTokenProvider(credentials, endpoints)
    try:
        with pytest.raises(SignInError, match=r"gone\.pem: no such file"):
            asyncio.run(provider.token())
    finally:
        provider.close()
