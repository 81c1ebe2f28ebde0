"""Commands the tool prints for the operator to run: quoted for the shell of the platform.

A file or folder name is text from outside: `x$(touch PWNED);id.csv` printed raw would run
`touch` when the line is pasted or piped to `sh`. POSIX shells get `shlex.quote`; on Windows the
README's shell is PowerShell, where single quotes are literal and a quote is doubled.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

PROGRAM = "batch-rotate"
_SAFE = re.compile(r"[A-Za-z0-9_./:=@%+,\\-]+")  # no quoting needed in either shell


def quote(arg: str | Path, *, windows: bool | None = None) -> str:
    """One argument, quoted for POSIX sh or PowerShell (the platform's, unless told)."""
    text = str(arg)
    on_windows = os.name == "nt" if windows is None else windows
    if not on_windows:
        return shlex.quote(text)
    if text and _SAFE.fullmatch(text) and not text.startswith(("-", "@")):
        return text
    # PowerShell: single quotes are literal; typographic single quotes close them too
    return "'" + re.sub(r"(['\u2018\u2019\u201a\u201b])", r"\1\1", text) + "'"


def command(*args: str | Path, windows: bool | None = None) -> str:
    """`batch-rotate ARGS...`: words (subcommands, --options) as written, every path quoted.

    Paths are given as `Path`, so a file named `--yes` is shown as `./--yes`, never an option.
    """
    parts = [PROGRAM]
    for arg in args:
        if isinstance(arg, Path):
            text = str(arg)
            parts.append(
                quote(f".{os.sep}{text}" if text.startswith("-") else text, windows=windows)
            )
        else:
            parts.append(quote(arg, windows=windows))
    return " ".join(parts)


def relative(path: Path) -> Path:
    """A path as the operator would type it: relative to here when it is below here."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return path
