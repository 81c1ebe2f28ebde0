"""Profiles: non-secret defaults per tenant in `batch-rotate.toml`, instead of long command lines.

A profile only supplies defaults: environment variables and options given on the command line
override it. Secrets never belong in the file (they stay in the environment or a certificate
file), so a secret-looking key is refused rather than silently used.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_rotate.errors import InputError

CONFIG_NAME = "batch-rotate.toml"
# Option names as written on the command line; each maps to the parameter of that name.
PROFILE_KEYS = frozenset(
    {
        "tenant-id",
        "client-id",
        "certificate-path",
        "cloud",
        "graph-url",
        "authority-url",
        "scope",
        "ca-bundle",
        "proxy",
        "batch-size",
        "max-concurrency",
        "write-budget",
        "read-budget",
        "max-attempts",
        "retry-delay",
        "timeout",
        "reports-dir",
        "max-devices",
        "check-keys",
        "recent",
        "verify-every",
        "keys-strategy",
    }
)
PATH_KEYS = frozenset({"certificate-path", "ca-bundle", "reports-dir"})
_SECRET = re.compile(r"secret|password|passwd|passphrase|token|credential|private", re.IGNORECASE)


@dataclass(frozen=True)
class Profile:
    name: str
    source: Path
    values: dict[str, Any]  # parameter name (tenant_id) -> value as the file gives it


def find_config(explicit: Path | None, folder: Path) -> Path | None:
    """--config PATH, else batch-rotate.toml in the working folder, else none."""
    if explicit is not None:
        if not explicit.is_file():
            raise InputError(f"--config {explicit}: no such file; give a {CONFIG_NAME} file")
        return explicit
    found = folder / CONFIG_NAME
    return found if found.is_file() else None


def _keys(table: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in table.items():
        yield prefix + key
        if isinstance(value, Mapping):
            yield from _keys(value, f"{prefix}{key}.")


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    for key in _keys(data):
        if _SECRET.search(key.rsplit(".", 1)[-1]):
            raise InputError(
                f"{path}: '{key}' looks like a secret; secrets never go in {CONFIG_NAME} (it is "
                "read by anyone who can read the folder). Remove it and set AZURE_CLIENT_SECRET "
                "(or AZURE_CLIENT_CERTIFICATE_PATH) in the environment instead"
            )
    return data


def load_profile(path: Path | None, name: str | None) -> Profile | None:
    """The named profile (or the file's `default-profile`); None when no profile applies."""
    if path is None:
        if name:
            raise InputError(
                f"--profile {name}: no {CONFIG_NAME} in this folder; give --config PATH"
            )
        return None
    data = _read(path)
    unknown_top = set(data) - {"profile", "default-profile"}
    if unknown_top:
        raise InputError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown_top))}; expected "
            "default-profile and [profile.NAME] tables"
        )
    name = name or data.get("default-profile")
    if not name:
        return None
    profiles = data.get("profile", {})
    if name not in profiles or not isinstance(profiles[name], Mapping):
        known = ", ".join(sorted(profiles)) or "none"
        raise InputError(f"{path}: no [profile.{name}] (profiles: {known})")
    values: dict[str, Any] = {}
    for key, value in profiles[name].items():
        if key not in PROFILE_KEYS:
            raise InputError(
                f"{path} [profile.{name}]: unknown key {key!r}; allowed: "
                + ", ".join(sorted(PROFILE_KEYS))
            )
        if not isinstance(value, str | int | float | bool):
            raise InputError(f"{path} [profile.{name}] {key}: give a string, number or boolean")
        if key in PATH_KEYS:  # relative to the file, so a profile works from any folder
            value = str((path.parent / str(value)).expanduser())
        values[key.replace("-", "_")] = value
    return Profile(name, path, values)


def default_map(profile: Profile, commands: Mapping[str, set[str]]) -> dict[str, dict[str, Any]]:
    """Click's per-command defaults: each command gets the profile keys it has an option for."""
    return {
        command: {param: value for param, value in profile.values.items() if param in params}
        for command, params in commands.items()
    }
