"""Workload identity federation: a pipeline (GitHub Actions, Azure DevOps, Kubernetes) signs in as
the app with a federated token from its own issuer, no secret stored; azure-identity's variables
(AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_AUTHORITY_HOST).

The file is re-read on every token request, as azure-identity does: the platform rotates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batch_rotate.graph.auth import MsalTokenProvider, _describe_failure
from batch_rotate.graph.errors import SignInError

VARIABLE = "AZURE_FEDERATED_TOKEN_FILE"


def read_federated_token(path: Path) -> str:
    """The token the pipeline wrote last; SignInError names the file and the fix."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SignInError(
            f"workload identity: cannot read the federated token file {path} "
            f"({type(exc).__name__}); check {VARIABLE} and that the pipeline wrote the file"
        ) from None
    if not token:
        raise SignInError(
            f"workload identity: the federated token file {path} is empty; check that the "
            f"pipeline wrote its token ({VARIABLE})"
        )
    return token


class WorkloadIdentityTokenProvider(MsalTokenProvider):
    """App-only tokens with the federated token as the client assertion (a callable: MSAL asks for
    it on each request it sends, never holding an expired one)."""

    def _credential(self) -> Any:
        path = self._credentials.federated_token_file
        if path is None:  # context.credentials_for requires it; a guard for direct callers
            raise SignInError(f"workload identity needs {VARIABLE}")
        return {"client_assertion": lambda: read_federated_token(path)}

    def _describe(self, result: dict[str, Any]) -> str:
        creds, error = self._credentials, str(result.get("error", ""))
        hint = (
            "check the app's federated credential: its issuer, subject and audience "
            "(api://AzureADTokenExchange) must match the token's exactly (case-sensitive), and "
            f"the pipeline must refresh {creds.federated_token_file} before it expires"
            if error == "invalid_client"
            else "check AZURE_CLIENT_ID and AZURE_TENANT_ID"
            if error in ("unauthorized_client", "invalid_request")
            else "check the app registration and its federated credential"
        )
        return _describe_failure(result, creds, hint)
