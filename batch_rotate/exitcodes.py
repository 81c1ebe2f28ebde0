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
# `sweep` reads the same codes as a scheduler's verdict on the policy (README "Quarterly sweeps").
SWEEP_MEANINGS = {
    EXIT_OK: "compliant: every targeted device that can comply holds a key younger than the limit",
    EXIT_FAILED: "something to look at: a failed rotation or request, no key escrowed, keys "
    "unreadable; see sweep.xlsx",
    EXIT_USAGE: "bad usage, a guard (--max-devices, --max-share) or no confirmation; nothing sent",
    EXIT_AUTH: EXIT_MEANINGS[EXIT_AUTH],
    EXIT_PENDING: "rotations wait for devices to check in (pending, offline): sweep again later",
    EXIT_INTERRUPTED: "interrupted; the run's journal is saved: sweep again",
    EXIT_CRASH: EXIT_MEANINGS[EXIT_CRASH],
}
