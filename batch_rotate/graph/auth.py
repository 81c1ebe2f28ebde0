"""App-only sign-in with MSAL (client secret or certificate) and a token reused until near expiry.

MSAL runs on `requests` (sync), so it is called in a worker thread; one lock keeps a burst of
senders from asking for several tokens at once.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import certifi
import jwt
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from batch_rotate.graph.endpoints import Credentials, Endpoints
from batch_rotate.graph.errors import SignInError
from batch_rotate.graph.proxy import proxy_for, redact

REFRESH_BEFORE_EXPIRY_S = 300.0  # the same 5 minutes MSAL's own cache uses
ERROR_TEXT_MAX = 600  # characters of an error text shown before it is cut (at a word)

# What Microsoft support asks for: never cut, never dropped (AADSTS codes, request and
# correlation ids, Trace and Correlation IDs of the identity platform, timestamps).
_IDENTIFIER = re.compile(
    r"\bAADSTS\d+\b"
    r"|\bTimestamp:\s*\S+(?:\s+\d{1,2}:\d{2}:\d{2}\S*)?"
    r"|\b(?:Trace ID|Correlation ID|(?:client-)?request-id)\s*[:=]?\s*\S+"
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
    re.IGNORECASE,
)


def error_text(text: str, *, limit: int = ERROR_TEXT_MAX) -> str:
    """An error text on one line, cut (if at all) at a word, with every identifier kept whole."""
    flat = " ".join(line.strip() for line in text.splitlines() if line.strip())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit + 1].rsplit(" ", 1)[0] if " " in flat[: limit + 1] else flat[:limit]
    kept: list[str] = []
    for match in _IDENTIFIER.finditer(flat):
        if match.end() > len(cut) and match.group(0) not in kept:
            kept.append(match.group(0))
    # an identifier already named by a longer kept one ("Trace ID: <guid>") is not repeated
    kept = [k for k in kept if not any(k != other and k in other for other in kept)]
    return f"{cut} …" + (f" ({'; '.join(kept)})" if kept else "")


class TokenProvider(Protocol):
    async def token(self, *, force_refresh: bool = False) -> str: ...


def claims(token: str) -> dict[str, Any]:
    """Claims of an access token, unverified: only used to explain missing permissions."""
    try:
        decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return decoded


def combined_ca_bundle(extra_ca: Path) -> Path:
    """requests (under MSAL) swaps its trust store for `verify=`: add the CA to the usual one."""
    base = os.environ.get("REQUESTS_CA_BUNDLE") or certifi.where()
    data = Path(base).read_bytes() + b"\n" + extra_ca.read_bytes()
    fd, name = tempfile.mkstemp(prefix="batch-rotate-ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return Path(name)


def _certificate_credential(path: Path, password: str | None) -> dict[str, Any]:
    """MSAL client_credential for a PEM (key + certificate) or a PFX file."""
    if not path.is_file():
        raise SignInError(f"certificate {path}: no such file (AZURE_CLIENT_CERTIFICATE_PATH)")
    if path.suffix.lower() in (".pfx", ".p12"):
        return {"private_key_pfx_path": str(path), "passphrase": password}
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(
            data, password=password.encode() if password else None
        )
        cert = x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError) as exc:
        kind = type(exc).__name__
        raise SignInError(
            f"certificate {path}: cannot read a private key and certificate from it ({kind}); "
            "give a PEM holding both, or a .pfx with AZURE_CLIENT_CERTIFICATE_PASSWORD"
        ) from None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    # With public_certificate and no thumbprint MSAL signs with an x5t#S256 header.
    return {"private_key": key_pem, "public_certificate": cert_pem}


class _HttpClient:
    """MSAL's transport with `verify` and the proxy on every request: a session-level `verify`
    loses to the REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE environment variables, an explicit one does
    not; the proxy is the one the Graph client picks for the same URL (`proxy_for`). `direct`:
    no proxy at all, the environment's included (a managed identity's local endpoint)."""

    def __init__(
        self, verify: str | bool, proxy: str | None = None, *, direct: bool = False
    ) -> None:
        self._session = requests.Session()
        self._session.trust_env = not direct  # requests would read HTTP(S)_PROXY itself
        self._verify = verify
        self._proxy = proxy
        self._direct = direct

    def _with(self, url: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["verify"] = self._verify
        if self._direct:
            kwargs["proxies"] = {}
            return kwargs
        chosen = proxy_for(url, self._proxy)
        if chosen:
            kwargs["proxies"] = {"http": chosen, "https": chosen}
        return kwargs

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._session.get(url, **self._with(url, kwargs))

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._session.post(url, **self._with(url, kwargs))

    def close(self) -> None:
        self._session.close()


class MsalTokenProvider:
    """Client-credentials tokens for `endpoints.scope`, renewed five minutes before expiry."""

    def __init__(
        self,
        credentials: Credentials,
        endpoints: Endpoints,
        *,
        timeout_s: float = 30.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._endpoints = endpoints
        self._timeout_s = timeout_s
        self._now = now
        self._app: msal.ConfidentialClientApplication | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._ca_file: Path | None = None
        self._http: _HttpClient | None = None

    def _via(self) -> str:
        """' through the proxy P' when sign-in goes through one (for error messages)."""
        chosen = proxy_for(self._endpoints.authority_url, self._endpoints.proxy)
        return f" through the proxy {redact(chosen)}" if chosen else ""

    def _credential(self) -> Any:
        """MSAL's client_credential: the certificate first, as `Credentials.method` (what the
        journal records) says; a certificate that cannot be used is an error, never a silent
        fall-back to a secret."""
        creds = self._credentials
        if creds.certificate_path:
            return _certificate_credential(creds.certificate_path, creds.certificate_password)
        if creds.client_secret:
            return creds.client_secret
        raise SignInError(
            "no credential: set AZURE_CLIENT_SECRET, or AZURE_CLIENT_CERTIFICATE_PATH "
            "(and AZURE_CLIENT_CERTIFICATE_PASSWORD for a protected file)"
        )

    def _describe(self, result: dict[str, Any]) -> str:
        return _describe_failure(result, self._credentials)

    def _build_app(self) -> msal.ConfidentialClientApplication:
        creds = self._credentials
        credential = self._credential()
        verify: str | bool = True
        if self._endpoints.ca_bundle is not None:
            self._ca_file = combined_ca_bundle(self._endpoints.ca_bundle)
            verify = str(self._ca_file)
        self._http = http_client = _HttpClient(verify, self._endpoints.proxy)
        try:
            return msal.ConfidentialClientApplication(
                creds.client_id,
                client_credential=credential,
                authority=self._endpoints.authority_url,
                instance_discovery=False,  # the cloud's authority host is given explicitly
                http_client=http_client,
                timeout=self._timeout_s,
            )
        except ValueError as exc:
            raise SignInError(
                f"sign-in setup failed for authority {self._endpoints.authority_url}: "
                f"{_first_line(exc)}; check AZURE_TENANT_ID, --cloud and --authority-url"
            ) from None
        except Exception as exc:  # requests' connection errors and the like
            raise SignInError(
                f"cannot reach the identity platform at {self._endpoints.authority_url}"
                f"{self._via()} ({type(exc).__name__}); check the network, --proxy or "
                "HTTPS_PROXY, --authority-url and --ca-bundle"
            ) from None

    def _acquire(self, force_refresh: bool) -> dict[str, Any]:
        if self._app is None:
            self._app = self._build_app()
        if force_refresh:
            cache = self._app.token_cache
            for entry in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(entry)
        try:
            result: dict[str, Any] = self._app.acquire_token_for_client(
                scopes=[self._endpoints.scope]
            )
        except SignInError:  # raised by a credential MSAL calls back (a federated token file)
            raise
        except Exception as exc:
            raise SignInError(
                f"cannot reach the identity platform at {self._endpoints.authority_url}"
                f"{self._via()} ({type(exc).__name__}); check the network, --proxy or "
                "HTTPS_PROXY, and --ca-bundle"
            ) from None
        return result

    async def token(self, *, force_refresh: bool = False) -> str:
        """A valid access token; renewed near expiry, or at once when Graph answered 401."""
        async with self._lock:
            fresh = self._token and self._now() < self._expires_at - REFRESH_BEFORE_EXPIRY_S
            if fresh and not force_refresh:
                assert self._token is not None
                return self._token
            result = await asyncio.to_thread(self._acquire, force_refresh)
            if "access_token" not in result:
                raise SignInError(self._describe(result))
            self._token = str(result["access_token"])
            self._expires_at = self._now() + float(result.get("expires_in", 3599))
            return self._token

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._ca_file is not None:
            self._ca_file.unlink(missing_ok=True)
            self._ca_file = None


def _first_line(exc: BaseException) -> str:
    return error_text(str(exc)) or type(exc).__name__


def _with_ids(result: dict[str, Any]) -> str:
    """The identity platform's description, plus its ids when the text does not carry them."""
    text = str(result.get("error_description", ""))
    for key, label in (("trace_id", "Trace ID"), ("correlation_id", "Correlation ID")):
        value = str(result.get(key) or "")
        if value and value not in text:
            text += f"\n{label}: {value}"
    return text


def _describe_failure(result: dict[str, Any], creds: Credentials, hint: str | None = None) -> str:
    """One actionable line from an MSAL error result (never includes the credential)."""
    error = str(result.get("error", "unknown_error"))
    first = error_text(_with_ids(result))
    hint = hint or {
        "invalid_client": "check the client secret or certificate registered on the app",
        "unauthorized_client": "check AZURE_CLIENT_ID and that the app exists in this tenant",
        "invalid_request": "check AZURE_TENANT_ID and --cloud",
        "invalid_scope": "check --graph-url / --scope",
    }.get(error, "check the app registration and its credentials")
    return (
        f"sign-in failed for app {creds.client_id} in tenant {creds.tenant_id} "
        f"({creds.method}): {error}: {first}; {hint}"
    )
