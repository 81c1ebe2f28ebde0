"""Where Graph and the identity platform live, how to reach them, and the app credentials.

Owned by the Graph layer so it needs nothing from the application; secrets never appear in repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from batch_rotate.graph.errors import ConfigError
from batch_rotate.graph.proxy import check_proxy


class Cloud(StrEnum):
    GLOBAL = "global"
    USGOV = "usgov"
    USGOV_DOD = "usgov-dod"
    CHINA = "china"


# (login host, Graph host) per national cloud (GRAPH_NOTES.md "Identity platform and MSAL").
CLOUD_HOSTS: dict[Cloud, tuple[str, str]] = {
    Cloud.GLOBAL: ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    Cloud.USGOV: ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    Cloud.USGOV_DOD: ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    Cloud.CHINA: ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}


@dataclass(frozen=True, repr=False)
class Credentials:
    """App registration credentials; repr never shows the secret or certificate password."""

    tenant_id: str
    client_id: str
    client_secret: str | None = None
    certificate_path: Path | None = None
    certificate_password: str | None = None
    # Sign-in mode (graph/signin.py): "app" (secret/certificate), "device-code", "interactive",
    # "managed-identity", "workload-identity".
    auth: str = "app"
    managed_identity_client_id: str | None = None  # user-assigned identity; None: system
    token_cache: Path | None = None  # device code, interactive: where the user's tokens persist
    # workload identity: the file the pipeline (re)writes its federated token to; re-read on
    # each token request, as azure-identity does
    federated_token_file: Path | None = None

    def __repr__(self) -> str:
        kind = (  # the order sign-in uses: a certificate given wins
            "certificate" if self.certificate_path else "secret" if self.client_secret else "none"
        )
        return f"Credentials(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, {kind})"

    @property
    def method(self) -> str:
        if self.auth != "app":
            return self.auth.replace("-", "_")
        return "certificate" if self.certificate_path else "client_secret"


@dataclass(frozen=True)
class Endpoints:
    authority_url: str  # https://login.../{tenant}
    graph_url: str  # https://graph.microsoft.com (no version)
    scope: str  # {graph}/.default
    ca_bundle: Path | None = None
    # --proxy for sign-in and Graph (None: the environment's); may hold user:password, so no repr
    proxy: str | None = field(default=None, repr=False)

    @classmethod
    def for_cloud(
        cls,
        cloud: Cloud,
        tenant_id: str,
        *,
        graph_url: str | None = None,
        authority_url: str | None = None,
        scope: str | None = None,
        ca_bundle: Path | None = None,
        proxy: str | None = None,
    ) -> Endpoints:
        login, graph = CLOUD_HOSTS[cloud]
        graph = _normal((graph_url or graph).rstrip("/"))
        authority = _normal((authority_url or f"{login}/{tenant_id}").rstrip("/"))
        for name, url in (("--graph-url", graph), ("--authority-url", authority)):
            if not url.startswith("https://"):
                raise ConfigError(
                    f"{name} {url!r} must be an https:// URL (TLS is never switched off)"
                )
        if ca_bundle is not None and not ca_bundle.is_file():
            raise ConfigError(
                f"--ca-bundle {ca_bundle}: no such file; give a PEM file of CA certificates"
            )
        if proxy is not None:
            check_proxy(proxy)
        return cls(authority, graph, scope or f"{graph}/.default", ca_bundle, proxy or None)


def _normal(url: str) -> str:
    """Scheme and host in lower case (`HTTPS://Graph.Example` is `https://graph.example`), so
    every later comparison of origins sees one spelling."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return url
    netloc = parts.netloc.rpartition("@")
    host = netloc[2].lower()
    return urlunsplit(
        parts._replace(scheme=parts.scheme.lower(), netloc=netloc[0] + netloc[1] + host)
    )
