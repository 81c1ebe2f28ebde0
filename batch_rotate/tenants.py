"""The tenants file of a campaign (issue 21): one line per customer tenant, CSV or TOML.

Columns (CSV header, any case; TOML `[[tenant]]` keys alike): `tenant` (tenant id or verified
domain), `name` (display name), optional `input` (that tenant's own device list, relative to the
tenants file), and optional per-tenant credential overrides given as the NAMES of environment
variables: `client_id_env`, `client_secret_env`, `certificate_path_env`,
`certificate_password_env`. A secret never lives in the file: a value that is not a variable name
is refused without being echoed.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from batch_rotate.campaign_model import TenantEntry
from batch_rotate.errors import InputError
from batch_rotate.textsafe import safe_text as shown

_GUID = re.compile(r"^[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Authorities that sign in to "some" tenant: never a customer's.
_NOT_A_TENANT = frozenset({"common", "organizations", "consumers"})

ENV_COLUMNS = {
    "client_id_env": "client_id",
    "client_secret_env": "client_secret",
    "certificate_path_env": "certificate_path",
    "certificate_password_env": "certificate_password",
}
_ALIASES = {
    "tenant": "tenant",
    "tenant id": "tenant",
    "tenant_id": "tenant",
    "tenantid": "tenant",
    "domain": "tenant",
    "name": "name",
    "display name": "name",
    "display_name": "name",
    "customer": "name",
    "input": "input",
    "device list": "input",
    **{name: name for name in ENV_COLUMNS},
}
MAX_TENANTS = 1000


def tenant_key(text: str) -> str:
    """A tenant id or domain as compared: trimmed, lower case."""
    return text.strip().lower()


def is_tenant_id(text: str) -> bool:
    return bool(_GUID.match(tenant_key(text)))


def read_tenants(path: Path) -> list[TenantEntry]:
    """The tenants file's entries; every problem is an `InputError` naming the line and column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--tenants {path}: no such file; give a CSV or TOML tenants file")
    if path.suffix.lower() == ".toml":
        lines = _toml_lines(path)
    elif path.suffix.lower() in (".csv", ".txt"):
        lines = _csv_lines(path)
    else:
        raise InputError(f"--tenants {path.name}: give a .csv or .toml tenants file")
    entries = [_entry(path, line, cells) for line, cells in lines]
    if not entries:
        raise InputError(f"{path.name}: no tenants; add one line per tenant (tenant,name[,input])")
    if len(entries) > MAX_TENANTS:
        raise InputError(f"{path.name}: {len(entries)} tenants, more than {MAX_TENANTS}")
    seen: dict[str, int] = {}
    for entry in entries:
        key = tenant_key(entry.tenant)
        if key in seen:
            raise InputError(
                f"{path.name} line {entry.line}: tenant {entry.tenant} is already on line "
                f"{seen[key]}; give each tenant once"
            )
        seen[key] = entry.line
    return entries


def _csv_lines(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path.name}: not UTF-8 text; save it as CSV UTF-8") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        return []
    columns = [_column(path, 1, h) for h in header]
    out = []
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            raise InputError(
                f"{path.name} line {number}: {len(row)} cells but {len(columns)} columns; "
                "quote a name that holds a comma"
            )
        out.append((number, {c: v.strip() for c, v in zip(columns, row, strict=False) if c}))
    return out


def _toml_lines(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: not valid TOML ({exc})") from None
    tables = data.get("tenant")
    if not isinstance(tables, list):
        raise InputError(f"{path.name}: give each tenant as a [[tenant]] table")
    out = []
    for number, table in enumerate(tables, start=1):
        if not isinstance(table, dict):
            raise InputError(f"{path.name}: [[tenant]] number {number} is not a table")
        cells = {}
        for key, value in table.items():
            column = _column(path, number, str(key))
            if not isinstance(value, str):
                raise InputError(f"{path.name} [[tenant]] {number}: {key} must be text")
            cells[column] = value.strip()
        out.append((number, cells))
    return out


def _column(path: Path, line: int, header: str) -> str:
    name = _ALIASES.get(header.strip().lower())
    if name is None:
        raise InputError(
            f"{path.name} line {line}: unknown column {shown(header)!r}; the columns are tenant, "
            "name, input, " + ", ".join(ENV_COLUMNS)
        )
    return name


def _entry(path: Path, line: int, cells: Mapping[str, str]) -> TenantEntry:
    where = f"{path.name} line {line}"
    tenant = tenant_key(cells.get("tenant", ""))
    if not tenant:
        raise InputError(f"{where}: no tenant; give the tenant id or its verified domain")
    if tenant in _NOT_A_TENANT or not (_GUID.match(tenant) or _DOMAIN.match(tenant)):
        raise InputError(
            f"{where}: {shown(tenant)!r} is not a tenant id (a GUID) or a verified domain "
            "(contoso.com)"
        )
    name = shown(cells.get("name", ""))[:100]
    env: dict[str, str] = {}
    for column, option in ENV_COLUMNS.items():
        value = cells.get(column, "")
        if not value:
            continue
        if not _ENV_NAME.match(value):  # never echo it: it may be the secret itself
            raise InputError(
                f"{where}: {column} must be the NAME of an environment variable (like "
                "FABRIKAM_CLIENT_SECRET), not a value; never put a secret in the tenants file"
            )
        env[option] = value
    raw_input = cells.get("input", "")
    source = (path.parent / raw_input) if raw_input else None
    if source is not None and not source.is_file():
        raise InputError(f"{where}: input {shown(raw_input)!r}: no such file (relative to {path})")
    return TenantEntry(tenant, name, line, source, env)


def values_for(
    entry: TenantEntry, base: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """One tenant's option values: the campaign's, with this tenant as the authority and its
    credential overrides read from the environment variables the file names."""
    values = dict(base)
    values["tenant_id"] = entry.tenant
    missing = [name for name in entry.env.values() if not environ.get(name)]
    if missing:
        raise InputError(
            f"tenant {entry.label}: the tenants file names the environment variable "
            f"{missing[0]}, which is not set; set it (or remove the column's value)"
        )
    for option, variable in entry.env.items():
        value: Any = environ[variable]
        values[option] = Path(value) if option == "certificate_path" else value
    if "certificate_path" in entry.env and "client_secret" not in entry.env:
        values["client_secret"] = ""  # this tenant's certificate, not the campaign's secret
    return values


def check_inputs(entries: Iterable[TenantEntry], *, spanning: bool, select: bool) -> None:
    """Each tenant has devices from exactly one source."""
    entries = list(entries)
    own = [e for e in entries if e.input is not None]
    if spanning and own:
        raise InputError(
            f"tenant {own[0].label} has its own input, and a device list spanning every tenant was "
            "given too: use one or the other"
        )
    if select and own:
        raise InputError(
            f"tenant {own[0].label} has its own input, and --select was given: the selectors "
            "choose every tenant's devices; drop one"
        )
    if not spanning and not select:
        lacking = [e for e in entries if e.input is None]
        if lacking:
            raise InputError(
                f"tenant {lacking[0].label} (line {lacking[0].line}) has no input: give each "
                "tenant an input column, or one device list with a Tenant ID column, or --select"
            )
