"""TLS, OpenID configuration, client-credential tokens (secret, certificate), Graph token checks."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import jwt
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from batch_rotate.sim import SimTenant

from ..certs import app_certificate
from .helpers import call, token

LIST = "/beta/deviceManagement/managedDevices"


def _cert() -> tuple[bytes, bytes, str]:
    """A self-signed app certificate: (cert PEM, key PEM, SHA-1 thumbprint hex)."""
    key, cert = app_certificate()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    thumbprint = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - what MSAL asks for
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, thumbprint


def _post_token(
    sim: SimTenant, form: dict[str, str], tenant: str | None = None
) -> tuple[int, dict[str, object]]:
    async def go() -> tuple[int, dict[str, object]]:
        context = ssl.create_default_context(cafile=str(sim.ca_path))
        url = f"{sim.base_url}/{tenant or sim.config.tenant_id}/oauth2/v2.0/token"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=form, ssl=context) as resp,
        ):
            return resp.status, await resp.json()

    return asyncio.run(go())


def _form(sim: SimTenant, **overrides: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": sim.config.client_id,
        "client_secret": sim.config.client_secret,
        "scope": f"{sim.graph_url}/.default",
        **overrides,
    }


def test_tls_is_verified_against_the_written_ca(sim: SimTenant) -> None:
    assert sim.ca_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")

    async def untrusted() -> None:
        async with aiohttp.ClientSession() as session:
            await session.get(f"{sim.base_url}/_sim/metrics", ssl=ssl.create_default_context())

    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        asyncio.run(untrusted())
    assert call(sim, "GET", "/_sim/metrics")[0] == 200  # with the CA: verified and fine


def test_openid_configuration_points_back_at_the_sim(sim: SimTenant) -> None:
    status, _, body = call(
        sim, "GET", f"/{sim.config.tenant_id}/v2.0/.well-known/openid-configuration"
    )
    assert status == 200
    assert body["token_endpoint"] == f"{sim.authority_url}/oauth2/v2.0/token"
    assert body["authorization_endpoint"].startswith(sim.authority_url)
    assert body["device_authorization_endpoint"].startswith(sim.authority_url)
    assert body["issuer"] == f"{sim.authority_url}/v2.0"
    status, _, body = call(sim, "GET", "/not-a-tenant/v2.0/.well-known/openid-configuration")
    assert status == 400 and body["error_codes"] == [90002]


def test_msal_secret_token_has_graph_claims(sim: SimTenant) -> None:
    claims = jwt.decode(token(sim), options={"verify_signature": False})
    assert claims["aud"] == sim.graph_url
    assert claims["tid"] == sim.config.tenant_id and claims["appid"] == sim.config.client_id
    assert claims["idtyp"] == "app" and claims["exp"] - claims["iat"] == 3599
    assert set(claims) >= {"iss", "nbf", "oid", "roles"}
    assert "DeviceManagementManagedDevices.ReadWrite.All" in claims["roles"]
    assert sim.metrics()["token_requests"] == 1


def test_msal_certificate_assertion(make_sim: Callable[..., SimTenant]) -> None:
    cert_pem, key_pem, thumbprint = _cert()
    sim = make_sim(certificates=[cert_pem])
    good = msal.ConfidentialClientApplication(
        sim.config.client_id,
        client_credential={"private_key": key_pem.decode(), "thumbprint": thumbprint},
        authority=sim.authority_url,
        instance_discovery=False,
        verify=str(sim.ca_path),
    )
    result = good.acquire_token_for_client(scopes=[f"{sim.graph_url}/.default"])
    good.http_client.close()
    assert "access_token" in result, result
    _, other_key, other_thumbprint = _cert()  # not registered with the app
    bad = msal.ConfidentialClientApplication(
        sim.config.client_id,
        client_credential={"private_key": other_key.decode(), "thumbprint": other_thumbprint},
        authority=sim.authority_url,
        instance_discovery=False,
        verify=str(sim.ca_path),
    )
    result = bad.acquire_token_for_client(scopes=[f"{sim.graph_url}/.default"])
    bad.http_client.close()
    assert result.get("error") == "invalid_client" and 700027 in result["error_codes"]


def test_assertion_with_wrong_audience_or_issuer_is_refused(
    make_sim: Callable[..., SimTenant],
) -> None:
    cert_pem, key_pem, _ = _cert()
    sim = make_sim(certificates=[cert_pem])
    x5t = jwt.utils.base64url_encode(
        x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    ).decode()
    now = int(time.time())
    endpoint = f"{sim.authority_url}/oauth2/v2.0/token"

    def assertion(**claims: object) -> str:
        base = {"aud": endpoint, "iss": sim.config.client_id, "sub": sim.config.client_id}
        body = {**base, "exp": now + 600, "nbf": now, "jti": "x", **claims}
        return jwt.encode(body, key_pem, algorithm="PS256", headers={"x5t#S256": x5t})

    def form(value: str) -> dict[str, str]:
        return _form(
            sim,
            client_secret="",
            client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion=value,
        )

    def without_secret(value: str) -> dict[str, str]:
        f = form(value)
        del f["client_secret"]
        return f

    assert _post_token(sim, without_secret(assertion()))[0] == 200
    for bad in (
        assertion(aud="https://elsewhere/token"),
        assertion(iss="someone"),
        assertion(exp=now - 600),
    ):
        status, body = _post_token(sim, without_secret(bad))
        assert status == 401 and body["error"] == "invalid_client"


def test_identity_errors_look_like_the_identity_platform(sim: SimTenant) -> None:
    status, body = _post_token(sim, _form(sim, client_secret="wrong"))
    assert status == 401 and body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert str(body["error_description"]).startswith("AADSTS7000215: Invalid client secret")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)
    status, body = _post_token(sim, _form(sim), tenant="11111111-1111-4111-8111-111111111111")
    assert status == 400 and body["error"] == "invalid_request" and body["error_codes"] == [90002]
    status, body = _post_token(sim, _form(sim, client_id="11111111-1111-4111-8111-111111111111"))
    assert status == 400 and body["error"] == "unauthorized_client"
    assert body["error_codes"] == [700016]
    status, body = _post_token(sim, _form(sim, scope="https://graph.microsoft.com/User.Read"))
    assert status == 400 and body["error"] == "invalid_scope"
    assert sim.metrics()["token_requests"] == 4


def test_msal_reports_a_bad_secret(sim: SimTenant) -> None:
    app = msal.ConfidentialClientApplication(
        sim.config.client_id,
        client_credential="not-the-secret",
        authority=sim.authority_url,
        instance_discovery=False,
        verify=str(sim.ca_path),
    )
    result = app.acquire_token_for_client(scopes=[f"{sim.graph_url}/.default"])
    app.http_client.close()
    assert result["error"] == "invalid_client" and 7000215 in result["error_codes"]


def test_graph_refuses_missing_malformed_and_expired_tokens(
    make_sim: Callable[..., SimTenant],
) -> None:
    sim = make_sim(token_lifetime_s=1)
    status, headers, body = call(sim, "GET", LIST, headers={"client-request-id": "abc-123"})
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert headers["client-request-id"] == "abc-123" and headers["request-id"]
    assert body["error"]["innerError"]["client-request-id"] == "abc-123"
    assert {"request-id", "date"} <= set(body["error"]["innerError"])
    assert call(sim, "GET", LIST, token="not.a.jwt")[0] == 401
    tok = token(sim)
    time.sleep(2.1)
    status, _, body = call(sim, "GET", LIST, token=tok)
    assert status == 401 and "expired" in body["error"]["message"]


def test_graph_checks_audience_and_roles(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    sim = make_sim(roles=["BitlockerKey.ReadBasic.All"])
    status, body = _post_token(sim, _form(sim, scope="https://graph.microsoft.com/.default"))
    assert status == 200  # the identity platform issues it; Graph (here, the sim) refuses it
    status, _, err = call(sim, "GET", LIST, token=str(body["access_token"]))
    assert status == 401 and "audience" in err["error"]["message"].lower()
    tok = token(sim)
    status, _, err = call(sim, "GET", LIST, token=tok)
    assert status == 403 and err["error"]["code"] == "Authorization_RequestDenied"
    device = sim.inventory[0]["id"]
    rotate = f"/beta/deviceManagement/managedDevices/{device}/rotateBitLockerKeys"
    assert call(sim, "POST", rotate, token=tok)[0] == 403
