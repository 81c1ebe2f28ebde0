"""Profiles: non-secret defaults per tenant in `batch-rotate.toml`, instead of long command lines.

A profile only supplies defaults: options, a run's record and environment variables override it.
Secrets never belong in the file (they stay in the environment or a certificate file), so a
secret-looking key, or a proxy URL with a password, is refused rather than silently used. A
profile the operator did not name on the command line (a file found in the working folder, or
BATCH_ROTATE_PROFILE) may not say where sign-in and tokens go, nor loosen a guard.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Iterator, Mapping
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
# Where credentials and tokens go, and what is trusted: only from a profile named on purpose.
ROUTING_KEYS = frozenset({"cloud", "graph-url", "authority-url", "scope", "ca-bundle", "proxy"})
# A guard is loosened by a shorter --recent or a larger --max-devices than the defaults.
_LOOSER = {
    "recent": lambda v: _seconds(v) < 86400,
    "max-devices": lambda v: not isinstance(v, int) or v > 5000,
}
_SECRET = re.compile(r"secret|password|passwd|passphrase|token|credential|private", re.IGNORECASE)


@dataclass(frozen=True)
class Profile:
    name: str
    source: Path
    values: dict[str, Any]  # parameter name (tenant_id) -> value as the file gives it
    named: bool = True  # named on the command line (--profile or --config)

    def describe(self) -> str:
        how = "named on the command line" if self.named else "not named: routing keys refused"
        return f"profile {self.name} from {self.source} ({how})"


def _seconds(value: Any) -> float:
    from batch_rotate.settings import parse_duration  # settings imports the Graph layer

    try:
        return parse_duration(value)
    except ValueError:
        return 0.0


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


def looked_for(explicit: Path | None, folder: Path) -> str:
    """Where profiles were looked for, for the line that says none applied."""
    return str(explicit) if explicit is not None else str(folder / CONFIG_NAME)


def load_profile(
    path: Path | None,
    name: str | None,
    *,
    named: bool = True,
    used: Collection[str] | None = None,
) -> Profile | None:
    """The named profile (or the file's `default-profile`); None when no profile applies.

    `named`: the operator named the profile or the file on the command line; otherwise keys that
    route sign-in or loosen a guard are refused (a file left in a folder must not steer a run).
    """
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
        # only what this command would take from it can steer it (`runs` takes no Graph URL)
        if used is None or key.replace("-", "_") in used:
            _check_value(path, name, key, value, named=named)
        values[key.replace("-", "_")] = value
    return Profile(name, path, values, named)


def _check_value(path: Path, name: str, key: str, value: Any, *, named: bool) -> None:
    where = f"{path} [profile.{name}] {key}"
    if key == "proxy" and "@" in str(value).split("://", 1)[-1].split("/", 1)[0]:
        raise InputError(
            f"{where}: a proxy user or password never goes in {CONFIG_NAME}; give --proxy "
            "http://user:password@host:port on the command line or set HTTPS_PROXY"
        )
    if named:
        return
    fix = f"name it on the command line to use it: --profile {name}"
    if key in ROUTING_KEYS:
        raise InputError(
            f"{where}: a profile nobody named may not say where sign-in and tokens go "
            f"({', '.join(sorted(ROUTING_KEYS))}); {fix}"
        )
    looser = _LOOSER.get(key)
    if looser is not None and looser(value):
        raise InputError(f"{where} = {value!r} loosens a guard; {fix}")


def profile_for(
    config: Path | None,
    name: str | None,
    *,
    named: bool,
    folder: Path | None = None,
    used: Collection[str] | None = None,
) -> tuple[Profile | None, str]:
    """The profile that applies and the line that says so (or where none was found); `used`:
    the options the command takes (only those are checked against the rules for an unnamed
    profile, and only those are applied)."""
    folder = folder or Path.cwd()
    path = find_config(config, folder)
    profile = load_profile(path, name, named=named, used=used)
    if profile is not None:
        return profile, profile.describe()
    if path is None:
        return None, f"no profile (no {looked_for(config, folder)})"
    return None, f"no profile ({path} names no default-profile)"
