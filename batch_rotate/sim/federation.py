"""Workload identity federation: an outside issuer (GitHub Actions, Kubernetes) signs a token that
the app presents as its client assertion; the identity platform checks it against the app's
federated credential (issuer, subject, audience: exact, case-sensitive) and its lifetime.

The sim plays both sides: it mints the outside issuer's tokens (its own ES256 key) for tests and
demos, and refuses a wrong issuer, subject or audience, a bad signature or an expired token with
the AADSTS codes and texts Entra sends.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # the audience Entra requires
_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
_CHECK = (
    "Check your federated identity credential Subject, Audience and Issuer against the "
    "presented assertion."
)


@dataclass(frozen=True)
class FederatedCredential:
    """What the app registration trusts (Entra: Certificates & secrets > Federated credentials)."""

    issuer: str = "https://token.actions.githubusercontent.com"
    subject: str = "repo:contoso/bitlocker-rotation:environment:production"
    audience: str = TOKEN_EXCHANGE_AUDIENCE


def _stamp(seconds: float) -> str:
    """Entra's time format in AADSTS700024: 2024-10-02T22:05:03.6755165Z."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


class Federation:
    """The outside issuer's key, and the check of a presented federated assertion."""

    def __init__(self, credential: FederatedCredential) -> None:
        self.credential = credential
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._kid = uuid.uuid4().hex

    def mint(
        self,
        *,
        issuer: str | None = None,
        subject: str | None = None,
        audience: str | None = None,
        lifetime_s: float = 600.0,
        issued_at: float | None = None,
    ) -> str:
        """A token as the outside issuer writes it to AZURE_FEDERATED_TOKEN_FILE."""
        now = int(time.time() if issued_at is None else issued_at)
        claims = {
            "iss": issuer or self.credential.issuer,
            "sub": subject or self.credential.subject,
            "aud": audience or self.credential.audience,
            "iat": now,
            "nbf": now,
            "exp": int(now + lifetime_s),
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self._kid})

    @staticmethod
    def is_federated(assertion: str, client_id: str) -> bool:
        """An assertion not issued by the app itself (iss != client id) is a federated one."""
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return bool(claims.get("iss")) and claims.get("iss") != client_id

    def check(self, assertion: str) -> tuple[int, str] | None:
        """None for a good assertion, else (AADSTS code, text) as Entra answers."""
        cred = self.credential
        seen: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
        if seen.get("iss") != cred.issuer:
            return 700211, _no_match("issuer", seen.get("iss"))
        try:
            jwt.decode(
                assertion,
                self._key.public_key(),
                algorithms=["ES256"],
                options={"verify_exp": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            return 700027, "Client assertion failed signature validation."
        if seen.get("sub") != cred.subject:
            return 700213, _no_match("subject", seen.get("sub"))
        audiences = seen.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if cred.audience not in audiences:
            return 700212, _no_match("audience", ",".join(str(a) for a in audiences))
        now = time.time()
        if not (float(seen.get("nbf", 0)) - 300 <= now < float(seen.get("exp", 0))):
            return (
                700024,
                f"Client assertion is not within its valid time range. Current time: "
                f"{_stamp(now)}, assertion valid from {_stamp(float(seen.get('nbf', 0)))}, "
                f"expiry time of assertion {_stamp(float(seen.get('exp', 0)))}. Review the "
                "documentation at https://learn.microsoft.com/entra/identity-platform/"
                "certificate-credentials .",
            )
        return None


def _no_match(what: str, value: Any) -> str:
    return (
        f"No matching federated identity record found for presented assertion {what} "
        f"'{value}'. {_CHECK} {_DOCS}"
    )
