"""Access tokens the sim issues (HS256 JWTs, a per-process key) and client assertions it accepts.

Assertions follow the identity platform: a JWT signed with the app certificate's key, header
`x5t` (SHA-1) or `x5t#S256`, aud = token endpoint, iss = sub = client id, not expired.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenIssuer:
    """Signs and checks the sim's access tokens; a restart voids them all, like a new key."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def issue(
        self,
        *,
        audience: str,
        issuer: str,
        tenant_id: str,
        client_id: str,
        roles: list[str],
        lifetime_s: float,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "tid": tenant_id,
            "appid": client_id,
            "azp": client_id,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{client_id}")),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{client_id}")),
            "idtyp": "app",
            "roles": list(roles),
            "ver": "1.0",
            "uti": secrets.token_urlsafe(16),
            **(extra or {}),
        }
        return jwt.encode(claims, self._key, algorithm="HS256", headers={"typ": "JWT"})

    def verify(self, authorization: str | None, audience: str) -> tuple[dict[str, Any] | None, str]:
        """(claims, "") for a good bearer token, else (None, the reason Graph would give)."""
        if not authorization:
            return None, "Access token is empty."
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, "Access token is empty."
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(), self._key, algorithms=["HS256"], audience=audience
            )
        except jwt.ExpiredSignatureError:
            return None, "Lifetime validation failed, the token is expired."
        except jwt.InvalidAudienceError:
            return None, "Invalid audience."
        except jwt.InvalidSignatureError:
            return None, "Access token validation failure. Invalid signature."
        except jwt.PyJWTError:
            return None, "IDX14100: JWT is not well formed, there are no dots (.)."
        return claims, ""


class AssertionVerifier:
    """Checks `client_assertion` JWTs against the app's registered certificates."""

    def __init__(self, certificates: list[bytes], client_id: str) -> None:
        self.client_id = client_id
        self._certs: dict[str, x509.Certificate] = {}
        for pem in certificates:
            cert = x509.load_pem_x509_certificate(pem)
            self._certs[b64url(cert.fingerprint(hashes.SHA1()))] = cert  # noqa: S303 - x5t is SHA-1
            self._certs[b64url(cert.fingerprint(hashes.SHA256()))] = cert

    def check(self, assertion: str, endpoint: str) -> str | None:
        """None if the assertion is good, else the AADSTS700027-style reason."""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return "Client assertion is not a valid JWT."
        shown = str(header.get("x5t#S256") or header.get("x5t") or "")
        cert = self._certs.get(shown.replace("+", "-").replace("/", "_").rstrip("="))
        if cert is None:
            return (
                "Client assertion contains an invalid signature. [Reason - The key was not found., "
                f"Thumbprint of key used by client: '{shown}']"
            )
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            return "Client assertion uses an unsupported key type."
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256", "PS256", "ES256"],
                audience=endpoint,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            return "Client assertion is expired."
        except jwt.InvalidAudienceError:
            return f"Client assertion audience claim does not match Realm issuer '{endpoint}'."
        except jwt.PyJWTError as exc:
            return f"Client assertion contains an invalid signature ({type(exc).__name__})."
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return "The issuer and subject of the client assertion must be the client id."
        return None
