"""Errors that stop a run. A single device's failure is data in the report, never one of these."""

from batch_rotate.exitcodes import EXIT_AUTH, EXIT_FAILED, EXIT_USAGE


class BatchRotateError(Exception):
    """Base: the CLI prints the message on one line and exits with `exit_code`."""

    exit_code = EXIT_FAILED


class InputError(BatchRotateError):
    """The input file or the command line cannot be used (exit 2)."""

    exit_code = EXIT_USAGE


class AuthError(BatchRotateError):
    """Sign-in failed or the app lacks a permission (exit 3)."""

    exit_code = EXIT_AUTH


class GraphError(BatchRotateError):
    """Graph cannot be reached or answered in a way that stops the whole run (exit 3)."""

    exit_code = EXIT_AUTH


class JournalError(BatchRotateError):
    """The run journal cannot be created, read or resumed (exit 2)."""

    exit_code = EXIT_USAGE


class DiskFullError(JournalError):
    """No space left for the journal or the report (exit 2): free some, then resume."""
