"""The one place where the project's errors become a line on stderr and an exit code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer

from batch_rotate.errors import BatchRotateError
from batch_rotate.exitcodes import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from batch_rotate.cli.output import Mode


@contextlib.contextmanager
def exits(command: str = "", mode: Mode | None = None) -> Iterator[None]:
    """The one place where the project's errors become a line on stderr and an exit code."""
    from batch_rotate.cli.console import err
    from batch_rotate.cli.output import error_document, print_json

    try:
        yield
    except BatchRotateError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        if mode is not None and mode.json:
            print_json(error_document(command, exc.exit_code, str(exc)))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        if mode is not None and mode.json:
            print_json(error_document(command, EXIT_INTERRUPTED, "interrupted"))
        raise typer.Exit(EXIT_INTERRUPTED) from None
