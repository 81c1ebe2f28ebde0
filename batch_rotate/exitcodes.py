"""Exit codes: the one table every command, the errors and the help text share."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_PENDING = 75  # sysexits' EX_TEMPFAIL: verify found only devices not yet rotated; retry later
EXIT_CRASH = 70  # sysexits' EX_SOFTWARE: never a device's failure (1), always a bug to report
EXIT_MEANINGS = {
    EXIT_OK: "every targeted device succeeded",
    EXIT_FAILED: "some devices failed or were not sent; see the report",
    EXIT_USAGE: "bad input or usage, a guard, or no confirmation; nothing more was sent",
    EXIT_AUTH: "sign-in failed, a permission is missing, or Graph was unreachable",
    EXIT_PENDING: "no device failed, but some are still pending: verify again later",
    EXIT_INTERRUPTED: "interrupted; the journal is saved, resume the run",
    EXIT_CRASH: "unexpected internal error; the traceback is in crash.log, please report it",
}
