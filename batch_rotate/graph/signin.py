"""Sign-in modes beyond the app's own secret or certificate: device code (a signed-in admin,
delegated permissions, token cache persisted per user) and managed identity (no secret at all);
interactive browser sign-in and workload identity federation live in graph/interactive.py and
graph/federated.py.

`token_provider` picks the provider for `Credentials.auth`; all share the app provider's
transport (`verify` and the proxy on every request) and refresh-before-expiry rule.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msal

from batch_rotate.graph.auth import (
    REFRESH_BEFORE_EXPIRY_S,
    MsalTokenProvider,
    _HttpClient,
    _with_ids,
    combined_ca_bundle,
    error_text,
)
from batch_rotate.graph.endpoints import Credentials, Endpoints
from batch_rotate.graph.errors import SignInAbandoned, SignInError
from batch_rotate.graph.proxy import proxy_for, redact

APP, DEVICE_CODE, MANAGED_IDENTITY = "app", "device-code", "managed-identity"
INTERACTIVE, WORKLOAD_IDENTITY = "interactive", "workload-identity"


def token_provider(
    credentials: Credentials, endpoints: Endpoints, *, timeout_s: float = 30.0
) -> MsalTokenProvider | _MsalProvider:
    """The provider for the sign-in mode the credentials name."""
    # here, not at the top: both modules build on this one's providers
    from batch_rotate.graph.federated import WorkloadIdentityTokenProvider
    from batch_rotate.graph.interactive import InteractiveTokenProvider

    if credentials.auth == DEVICE_CODE:
        return DeviceCodeTokenProvider(credentials, endpoints, timeout_s=timeout_s)
    if credentials.auth == INTERACTIVE:
        return InteractiveTokenProvider(credentials, endpoints, timeout_s=timeout_s)
    if credentials.auth == MANAGED_IDENTITY:
        return ManagedIdentityTokenProvider(credentials, endpoints, timeout_s=timeout_s)
    if credentials.auth == WORKLOAD_IDENTITY:
        return WorkloadIdentityTokenProvider(credentials, endpoints, timeout_s=timeout_s)
    return MsalTokenProvider(credentials, endpoints, timeout_s=timeout_s)


def default_token_cache(
    tenant_id: str,
    client_id: str,
    *,
    environ: Mapping[str, str] | None = None,
    windows: bool | None = None,
) -> Path:
    """Per user: %LOCALAPPDATA% on Windows (DPAPI-encrypted there), else $XDG_CACHE_HOME or
    ~/.cache; the same folder rules as the run index (runindex.state_dir)."""
    env = os.environ if environ is None else environ
    if sys.platform == "win32" if windows is None else windows:
        local = env.get("LOCALAPPDATA")
        base = Path(local) if local else Path.home() / "AppData" / "Local"
    else:
        xdg = env.get("XDG_CACHE_HOME", "")
        # the XDG spec: a relative value is invalid and ignored
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    safe = "".join(c for c in f"{tenant_id}-{client_id}" if c.isalnum() or c in "-._")
    return base / "batch-rotate" / f"msal-token-cache-{safe}.json"


def persisted_cache(path: Path) -> msal.TokenCache:
    """An MSAL cache kept in `path` (mode 0600), shared safely between processes by a lock file.

    Encrypted (DPAPI, Keychain) on Windows and macOS; on Linux a 0600 file, because the
    libsecret backend needs a desktop session that servers and containers do not have.
    """
    from msal_extensions import FilePersistence, PersistedTokenCache, build_encrypted_persistence

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if sys.platform in ("win32", "darwin"):
        persistence = build_encrypted_persistence(str(path))
    else:
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)  # also when an older file was made with the umask's mode
        persistence = FilePersistence(str(path))
    return PersistedTokenCache(persistence)


class _MsalProvider:
    """Token reuse until five minutes before expiry, one acquisition at a time, in a thread."""

    _direct = False  # True: sign-in requests never go through a proxy

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
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._ca_file: Path | None = None
        self._http: _HttpClient | None = None

    def _transport(self) -> _HttpClient:
        if self._http is None:
            verify: str | bool = True
            if self._endpoints.ca_bundle is not None:
                self._ca_file = combined_ca_bundle(self._endpoints.ca_bundle)
                verify = str(self._ca_file)
            # the proxy the Graph client takes for the same URL (--proxy, else the environment);
            # none at all for a managed identity's local endpoint (`_direct`)
            self._http = _HttpClient(verify, self._endpoints.proxy, direct=self._direct)
        return self._http

    def _acquire(self, force_refresh: bool) -> dict[str, Any]:
        raise NotImplementedError

    def _describe(self, result: dict[str, Any]) -> str:
        error = str(result.get("error", "unknown_error"))
        first = error_text(_with_ids(result))
        return f"{self._credentials.method} sign-in failed: {error}: {first}"

    async def token(self, *, force_refresh: bool = False) -> str:
        """A valid access token; renewed near expiry, or at once when Graph answered 401."""
        async with self._lock:
            fresh = self._token and self._now() < self._expires_at - REFRESH_BEFORE_EXPIRY_S
            if fresh and not force_refresh:
                assert self._token is not None
                return self._token
            try:
                result = await asyncio.to_thread(self._acquire, force_refresh)
            except SignInError:
                raise
            except Exception as exc:  # requests' connection errors and the like
                chosen = proxy_for(self._endpoints.authority_url, self._endpoints.proxy)
                via = f" through the proxy {redact(chosen)}" if chosen else ""
                raise SignInError(
                    f"{self._credentials.method} sign-in could not reach its endpoint{via} "
                    f"({type(exc).__name__}); check the network, --proxy or HTTPS_PROXY, "
                    "and --ca-bundle"
                ) from None
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


# Device code flows waiting for the operator, by id; `_abandoned` once the command is stopping.
_flows: dict[int, dict[str, Any]] = {}
_abandoned = threading.Event()
_ABANDONED = "device code sign-in stopped (interrupted) before the code was entered"


def abandon_device_code_waits(abandon: bool = True) -> None:
    """Stop every device code wait within a second (MSAL polls `expires_at` each second) and
    refuse new ones; `abandon=False` allows them again (a new command in this process)."""
    if not abandon:
        _abandoned.clear()
        return
    _abandoned.set()
    for flow in list(_flows.values()):
        flow["expires_at"] = 0


def inert(text: str) -> str:
    """Outside text as one inert line: a control or bidi character is escaped as repr() does
    (`\\x1b`, `\\u202e`), the scheme of batch_rotate/textsafe.py."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _DelegatedProvider(_MsalProvider):
    """A signed-in admin (delegated): silent from the persisted per-user cache, else `_sign_in`."""

    prompt: Callable[[str], None] = staticmethod(
        lambda text: print(text, file=sys.stderr, flush=True)
    )
    _app: msal.PublicClientApplication | None = None

    def _options(self) -> dict[str, Any]:
        """More PublicClientApplication arguments for the mode (none by default)."""
        return {}

    def _build(self) -> msal.PublicClientApplication:
        creds = self._credentials
        cache = persisted_cache(
            creds.token_cache or default_token_cache(creds.tenant_id, creds.client_id)
        )
        return msal.PublicClientApplication(
            creds.client_id,
            authority=self._endpoints.authority_url,
            instance_discovery=False,
            http_client=self._transport(),
            timeout=self._timeout_s,
            token_cache=cache,
            **self._options(),
        )

    def _sign_in(self, app: msal.PublicClientApplication, scopes: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def _acquire(self, force_refresh: bool) -> dict[str, Any]:
        if self._app is None:
            self._app = self._build()
        scopes = [self._endpoints.scope]
        for account in self._app.get_accounts():
            result = self._app.acquire_token_silent(
                scopes, account=account, force_refresh=force_refresh
            )
            if result and "access_token" in result:
                return dict(result)
        return self._sign_in(self._app, scopes)


class DeviceCodeTokenProvider(_DelegatedProvider):
    """The device code flow, whose message (code and URL, never a token) goes to stderr."""

    def _sign_in(self, app: msal.PublicClientApplication, scopes: list[str]) -> dict[str, Any]:
        flow = app.initiate_device_flow(scopes=scopes)
        if "user_code" not in flow:
            return dict(flow)
        key = id(flow)
        _flows[key] = flow
        try:
            if _abandoned.is_set():
                raise SignInAbandoned(_ABANDONED)
            self.prompt(inert(str(flow.get("message") or f"Open {flow['verification_uri']}")))
            result = dict(app.acquire_token_by_device_flow(flow))
        finally:
            del _flows[key]
        if _abandoned.is_set() and "access_token" not in result:
            raise SignInAbandoned(_ABANDONED)
        return result

    def _describe(self, result: dict[str, Any]) -> str:
        hint = {
            "authorization_declined": "the sign-in was declined in the browser",
            "expired_token": "the code expired before it was entered; run again",
            "invalid_client": "enable 'Allow public client flows' on the app registration",
            "unauthorized_client": "check AZURE_CLIENT_ID and AZURE_TENANT_ID",
        }.get(str(result.get("error")), "check the app registration and the user's consent")
        return f"{super()._describe(result)}; {hint}"


class ManagedIdentityTokenProvider(_MsalProvider):
    """The Azure resource's managed identity (system- or user-assigned); MSAL finds the endpoint
    from the environment (App Service / Functions / Automation, Arc, else the VM's IMDS)."""

    _client: msal.ManagedIdentityClient | None = None
    # The identity endpoint is local (IMDS, App Service's IDENTITY_ENDPOINT) and its request
    # carries the identity header: never through a proxy, not even the environment's.
    _direct = True

    def _acquire(self, force_refresh: bool) -> dict[str, Any]:
        if self._client is None or force_refresh:
            client_id = self._credentials.managed_identity_client_id
            identity: Any = (
                msal.UserAssignedManagedIdentity(client_id=client_id)
                if client_id
                else msal.SystemAssignedManagedIdentity()
            )
            self._client = msal.ManagedIdentityClient(
                identity, http_client=self._transport(), token_cache=msal.TokenCache()
            )
        resource = self._endpoints.scope.removesuffix("/.default")
        return dict(self._client.acquire_token_for_client(resource=resource))

    def _describe(self, result: dict[str, Any]) -> str:
        which = self._credentials.managed_identity_client_id or "system-assigned"
        return (
            f"{super()._describe(result)}; check that the {which} managed identity is assigned "
            "to this resource and holds the Graph app roles"
        )
