"""Errors that stop a run. A single device's failure is data in the report, never one of these."""


class BatchRotateError(Exception):
    """Base: the CLI prints the message on one line and exits with `exit_code`."""

    exit_code = 1


class InputError(BatchRotateError):
    """The input file or the command line cannot be used (exit 2)."""

    exit_code = 2


class AuthError(BatchRotateError):
    """Sign-in failed or the app lacks a permission (exit 3)."""

    exit_code = 3


class GraphError(BatchRotateError):
    """Graph cannot be reached or answered in a way that stops the whole run (exit 3)."""

    exit_code = 3


class JournalError(BatchRotateError):
    """The run journal cannot be created, read or resumed (exit 2)."""

    exit_code = 2
