"""The simulated identity platform's interactive flow: `/authorize` checks the client and the
loopback redirect URI; its code is redeemed once, only with the PKCE verifier it is bound to."""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from batch_rotate.sim import SimTenant
from batch_rotate.sim.authcode import challenge_of

ADMIN = "admin@contoso.example"


def _request(
    sim: SimTenant, method: str, url: str, **kwargs: object
) -> tuple[int, str, dict[str, str]]:
    async def go() -> tuple[int, str, dict[str, str]]:
        context = ssl.create_default_context(cafile=str(sim.ca_path))
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, ssl=context, allow_redirects=False, **kwargs) as r,
        ):
            return r.status, await r.text(), dict(r.headers)

    return asyncio.run(go())


def _authorize(sim: SimTenant, verifier: str, **overrides: str) -> tuple[int, str, dict[str, str]]:
    query = {
        "client_id": sim.config.client_id,
        "response_type": "code",
        "redirect_uri": "http://localhost:51234",
        "scope": f"{sim.graph_url}/.default offline_access openid profile",
        "state": "st4te",
        "code_challenge": challenge_of(verifier, "S256"),
        "code_challenge_method": "S256",
        **overrides,
    }
    return _request(sim, "GET", f"{sim.authority_url}/oauth2/v2.0/authorize?{urlencode(query)}")


def _code(sim: SimTenant, verifier: str) -> str:
    status, _, headers = _authorize(sim, verifier)
    assert status == 302
    answer = parse_qs(urlsplit(headers["Location"]).query)
    assert headers["Location"].startswith("http://localhost:51234")
    assert answer["state"] == ["st4te"]
    return answer["code"][0]


def _redeem(sim: SimTenant, code: str, verifier: str) -> tuple[int, str]:
    form = {
        "grant_type": "authorization_code",
        "client_id": sim.config.client_id,
        "code": code,
        "redirect_uri": "http://localhost:51234",
        "code_verifier": verifier,
        "scope": f"{sim.graph_url}/.default offline_access openid profile",
    }
    status, text, _ = _request(sim, "POST", f"{sim.authority_url}/oauth2/v2.0/token", data=form)
    return status, text


def test_a_code_is_redeemed_once_with_its_verifier(sim: SimTenant) -> None:
    sim.sign_in_browser_as(ADMIN)
    verifier = secrets.token_urlsafe(43)
    code = _code(sim, verifier)
    status, text = _redeem(sim, code, verifier)
    assert status == 200 and '"access_token"' in text and '"refresh_token"' in text
    status, text = _redeem(sim, code, verifier)
    assert status == 400 and "AADSTS54005" in text  # already redeemed


def test_a_wrong_verifier_is_refused(sim: SimTenant) -> None:
    sim.sign_in_browser_as(ADMIN)
    code = _code(sim, secrets.token_urlsafe(43))
    status, text = _redeem(sim, code, secrets.token_urlsafe(43))
    assert status == 400
    assert "AADSTS501481: The Code_Verifier does not match the code_challenge" in text


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({"redirect_uri": "https://evil.example/callback"}, "AADSTS50011"),
        ({"client_id": "99999999-0000-4000-8000-000000000000"}, "AADSTS700016"),
    ],
)
def test_an_unregistered_redirect_or_client_stays_on_an_error_page(
    make_sim: Callable[..., SimTenant], overrides: dict[str, str], shown: str
) -> None:
    sim = make_sim()
    sim.sign_in_browser_as(ADMIN)
    status, text, headers = _authorize(sim, "v" * 43, **overrides)
    assert status == 400 and shown in text and "Location" not in headers


def test_form_post_answers_with_a_self_posting_form(sim: SimTenant) -> None:
    sim.sign_in_browser_as(ADMIN)
    status, text, _ = _authorize(sim, "v" * 43, response_mode="form_post")
    assert status == 200
    assert '<form method="POST" action="http://localhost:51234">' in text
    assert 'name="code"' in text and 'name="state" value="st4te"' in text
