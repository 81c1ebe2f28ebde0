"""The simulated identity platform's workload identity federation: a federated token from the
trusted issuer is accepted as the client assertion; a wrong issuer, subject or audience, a bad
signature, an expired token or an app with no federated credential are refused as Entra does."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import aiohttp
import jwt
import pytest

from batch_rotate.sim import SimTenant

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _post(sim: SimTenant, assertion: str) -> tuple[int, dict[str, object]]:
    form = {
        "grant_type": "client_credentials",
        "client_id": sim.config.client_id,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
        "scope": f"{sim.graph_url}/.default",
    }

    async def go() -> tuple[int, dict[str, object]]:
        context = ssl.create_default_context(cafile=str(sim.ca_path))
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{sim.authority_url}/oauth2/v2.0/token", data=form, ssl=context) as r,
        ):
            return r.status, await r.json()

    return asyncio.run(go())


def test_a_federated_token_from_the_trusted_issuer_gets_an_app_token(sim: SimTenant) -> None:
    status, body = _post(sim, sim.federated_token())
    assert status == 200, body
    claims = jwt.decode(str(body["access_token"]), options={"verify_signature": False})
    assert claims["appid"] == sim.config.client_id and claims["roles"]


@pytest.mark.parametrize(
    ("claims", "code", "text"),
    [
        (
            {"audience": "api://AzureADTokenExchange/wrong"},
            700212,
            "No matching federated identity record found for presented assertion audience "
            "'api://AzureADTokenExchange/wrong'.",
        ),
        (
            {"subject": "repo:contoso/bitlocker-rotation:ref:refs/heads/main"},
            700213,
            "No matching federated identity record found for presented assertion subject "
            "'repo:contoso/bitlocker-rotation:ref:refs/heads/main'.",
        ),
        (
            {"issuer": "https://token.actions.githubusercontent.com/"},
            700211,
            "presented assertion issuer 'https://token.actions.githubusercontent.com/'",
        ),
        (
            {"issued_at": time.time() - 7200, "lifetime_s": 600},
            700024,
            "AADSTS700024: Client assertion is not within its valid time range. Current time: ",
        ),
    ],
)
def test_a_federated_token_that_does_not_match_is_refused_as_entra_does(
    sim: SimTenant, claims: dict[str, object], code: int, text: str
) -> None:
    status, body = _post(sim, sim.federated_token(**claims))
    assert status == 401
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [code]
    assert text in str(body["error_description"])


def test_a_federated_token_signed_by_another_key_is_refused(sim: SimTenant) -> None:
    good = jwt.decode(sim.federated_token(), options={"verify_signature": False})
    forged = jwt.encode(good, "not-the-issuer-key-but-32-bytes-long!", algorithm="HS256")
    status, body = _post(sim, forged)
    assert status == 401 and body["error_codes"] == [700027]


def test_an_app_without_a_federated_credential_refuses_any(
    make_sim: Callable[..., SimTenant],
) -> None:
    sim = make_sim(federated_credential=None)
    status, body = _post(sim, sim.federated_token())
    assert status == 401 and body["error_codes"] == [700211]
