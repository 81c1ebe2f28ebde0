"""One run context: the operator's choices turned into `Credentials` and `Settings`, and recorded
with the run (never a secret) so every later command on it (`--resume`, `--plan`, `verify`) does
what the operator chose, whatever the environment says by then.

The values are keyed by option name (`tenant_id`, `write_budget`, ...) as the command line parses
them; `record_of` writes each back as the text that option accepts, so a record is read back by
the same parsers (`cli/groups.py`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from batch_rotate.errors import InputError
from batch_rotate.graph.budget import Budget
from batch_rotate.graph.proxy import is_redacted, redact
from batch_rotate.settings import Cloud, Credentials, Settings, budget_text, endpoints_for

SECRETS = frozenset({"client_secret", "certificate_password"})
NOT_RECORDED = SECRETS | {"json_out", "quiet", "verbose", "debug", "profile", "config"}
# A campaign's own choices: each tenant's run is an ordinary run (its record must not make a
# later `--resume RUN` a campaign again).
NOT_RECORDED |= {"tenants", "tenants_at_once", "all_or_nothing"}
RECORD_KEY = "options"  # the journal meta key that holds the record (JSON)


@dataclass(frozen=True)
class RunContext:
    """What one command runs with; `record` is what its run keeps of it."""

    credentials: Credentials
    settings: Settings
    record: dict[str, str]
    profile_note: str = ""
    # the typed options a printed command that starts a new run repeats (`cli/groups.replay`)
    replay: tuple[str | Path, ...] = ()

    def meta(self) -> dict[str, str]:
        return {RECORD_KEY: json.dumps(self.record, sort_keys=True), "profile": self.profile_note}


def credentials_for(values: Mapping[str, Any]) -> Credentials:
    """Credentials for the sign-in mode; only what that mode needs is required."""
    auth = str(values.get("auth") or "app")
    tenant_id, client_id = values.get("tenant_id") or "", values.get("client_id") or ""
    if auth == "app":
        secret, cert = values.get("client_secret") or "", values.get("certificate_path")
        missing = [
            name
            for name, value in (
                ("AZURE_TENANT_ID (--tenant-id)", tenant_id),
                ("AZURE_CLIENT_ID (--client-id)", client_id),
            )
            if not value
        ]
        if not secret and cert is None:
            missing.append("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH")
        if missing:
            raise InputError(
                "sign-in is not configured: set "
                + ", ".join(missing)
                + " (or choose another sign-in with --auth; see README: 'Signing in')"
            )
        # A certificate given is the credential used (and recorded); the secret is then ignored.
        password = values.get("certificate_password") or None
        return Credentials(tenant_id, client_id, None if cert else secret, cert, password)
    token_file = values.get("federated_token_file")
    needed = [
        ("AZURE_TENANT_ID (--tenant-id)", tenant_id),
        ("AZURE_CLIENT_ID (--client-id)", client_id),
    ]
    if auth == "workload-identity":
        needed.append(("AZURE_FEDERATED_TOKEN_FILE (--federated-token-file)", token_file))
    if auth not in _NEEDS:  # managed identity: the resource's own, nothing to give
        needed = []
    missing = [name for name, value in needed if not value]
    if missing:
        raise InputError(f"--auth {auth} needs " + ", ".join(missing) + f"; {_NEEDS[auth]}")
    return Credentials(
        tenant_id or "managed-identity",
        client_id,
        auth=auth,
        managed_identity_client_id=values.get("managed_identity_client_id"),
        token_cache=values.get("token_cache"),
        federated_token_file=token_file if auth == "workload-identity" else None,
    )


# What each delegated or federated mode needs on the app registration (no secret is used).
_NEEDS = {
    "device-code": "an app registration with 'Allow public client flows'; no secret is used",
    "interactive": "an app registration with the redirect URI http://localhost (Mobile and "
    "desktop applications); no secret is used",
    "workload-identity": "the file your pipeline writes its federated token to, and the app's "
    "federated credential for that issuer and subject; no secret is used",
}


def settings_for(values: Mapping[str, Any], *, dry_run: bool = False) -> Settings:
    """Settings from the options a command has; the others keep their defaults."""
    given = {
        "batch_size": values.get("batch_size"),
        "max_concurrency": values.get("max_concurrency"),
        "write_budget": values.get("write_budget"),
        "read_budget": values.get("read_budget"),
        "max_attempts": values.get("max_attempts"),
        "retry_delay_s": values.get("retry_delay"),
        "timeout_s": values.get("timeout"),
        "outage_s": values.get("outage_timeout"),
        "reports_dir": values.get("reports_dir"),
        "max_devices": values.get("max_devices"),
        "check_keys": values.get("check_keys"),
        "allow_key_ceiling": values.get("allow_key_ceiling"),
        "recent_s": values.get("recent"),
        "force_recent": values.get("force_recent"),
        "uncertain_grace_s": values.get("uncertain_grace"),
        "check_recent_rotations": values.get("check_recent_rotations"),
    }
    endpoints = endpoints_for(
        Cloud(values.get("cloud") or Cloud.GLOBAL),
        values.get("tenant_id") or "",
        graph_url=values.get("graph_url"),
        authority_url=values.get("authority_url"),
        authority_host=values.get("authority_host"),
        scope=values.get("scope"),
        ca_bundle=values.get("ca_bundle"),
        proxy=values.get("proxy"),
    )
    return Settings(
        endpoints=endpoints,
        dry_run=dry_run,
        **{name: value for name, value in given.items() if value is not None},
    )


def _text(value: Any) -> str:
    """A value as the text its option accepts."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Budget):
        return budget_text(value)
    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return str(value)


def record_of(values: Mapping[str, Any]) -> dict[str, str]:
    """Every choice but secrets and output, as text; a proxy's password is never kept."""
    record = {name: _text(v) for name, v in values.items() if name not in NOT_RECORDED}
    if record.get("proxy"):
        record["proxy"] = redact(record["proxy"])
    return record


def build(
    values: Mapping[str, Any], *, dry_run: bool = False, profile_note: str = ""
) -> RunContext:
    """The run context of one command."""
    proxy = values.get("proxy")
    if proxy and is_redacted(proxy):
        raise InputError(
            f"the run was made through the proxy {proxy}, whose user and password are never "
            "recorded; give it again with --proxy URL"
        )
    return RunContext(
        credentials_for(values),
        settings_for(values, dry_run=dry_run),
        record_of(values),
        profile_note,
    )


def recorded(meta: Mapping[str, str]) -> dict[str, str]:
    """A run's record; a run made before records existed gives what it kept: its endpoints."""
    if RECORD_KEY in meta:
        try:
            data = json.loads(meta[RECORD_KEY])
        except ValueError:
            data = None
        if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
            return data
        raise InputError(f"the run's recorded options are damaged ({RECORD_KEY!r} in its journal)")
    old = {
        "authority_url": meta.get("authority_url", ""),
        "graph_url": meta.get("graph_url", ""),
        "scope": meta.get("scope", ""),
        "ca_bundle": meta.get("ca_bundle", ""),
        "proxy": meta.get("proxy", ""),
    }
    return {name: text for name, text in old.items() if text or name in ("ca_bundle", "proxy")}
