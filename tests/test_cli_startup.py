"""`--help`, `--version` and completion load only Typer and the option modules: the run layer's
heavy imports (aiohttp, MSAL, openpyxl, requests) wait for a command that needs them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("aiohttp", "msal", "openpyxl", "requests", "sqlite3", "batch_rotate.run")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"
    out = (
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return set(json.loads(out))


def test_the_command_line_starts_without_the_run_layer() -> None:
    loaded = _loaded_after("import batch_rotate.cli")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY}


def test_help_renders_without_the_run_layer() -> None:
    code = (
        "import sys\nfrom batch_rotate.cli import app\n"
        "try:\n    app(['rotate', '--help'])\nexcept SystemExit:\n    pass"
    )
    loaded = _loaded_after(code)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY}
