"""Print `name==floor` for every runtime dependency in pyproject.toml (for `make test-lowest`).

A floor that is never installed can lie (msal 1.31 could not sign in with a PEM certificate):
CI installs exactly these and runs the tests, so every `>=` in pyproject.toml is one that works.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(?:[^#]*?)>=\s*([^,;\s]+)")


def floors(pyproject: Path) -> list[str]:
    """One pin per runtime dependency; a dependency without a `>=` floor is an error."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    pins = []
    for spec in data["project"]["dependencies"]:
        match = _FLOOR.match(spec)
        if not match:
            raise SystemExit(f"{spec!r}: no >= floor; give every runtime dependency one")
        name, extras, floor = match.groups()
        pins.append(f"{name}{extras or ''}=={floor}")
    return pins


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    print("\n".join(floors(root / "pyproject.toml")))
