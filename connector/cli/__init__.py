"""The `crmsync` command: parse arguments, call the library, print. No logic lives here.

One module per group of commands; `_common` holds the app and the options they share.
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback

# Importing a module registers its commands; `--help` lists them in this order.
# Importing a module registers its commands, and `--help` lists them in import order.
# isort: off
from connector.cli import check, runs, state, demo, mappings, sandbox, tenants, worker  # noqa: F401
# isort: on
from connector.cli._common import app, interrupt

__all__ = ["app", "main"]

# ---- the last line of defence ------------------------------------------------------------

# The codes of RunReport.exit_code (connector/sync/report.py), kept here so that printing a failure
# cannot itself fail on importing the engine.
EXIT_CONFIG, EXIT_STOPPED, EXIT_FAILED = 2, 3, 4


def _failure(error: Exception) -> tuple[int, str]:
    """The exit code and the one line to print for an exception no command handled.

    By recovery class (see connector/exceptions.py), so an error class added later still
    gets the right code; anything else is a bug and says so.
    """
    from connector.exceptions import (  # noqa: PLC0415
        ConfigurationError,
        CrmsyncError,
        RunStoppedEarly,
    )

    if isinstance(error, ConfigurationError):
        return EXIT_CONFIG, f"configuration error: {error}"
    if isinstance(error, RunStoppedEarly):
        return EXIT_STOPPED, f"stopped: {error}"
    if isinstance(error, CrmsyncError):
        return EXIT_FAILED, f"crmsync failed: {error}"
    return EXIT_FAILED, (f"crmsync failed unexpectedly: {type(error).__name__}: {error}; "
                         "rerun with --log-level debug for details")


def main() -> None:
    """The `crmsync` command. Whatever goes wrong ends with a documented exit code and one
    line on stderr: an uncaught exception would exit 1, which schedulers read as "finished
    with rejects". The traceback is shown only at --log-level debug (or --verbose)."""
    # systemd and orchestrators stop a job with SIGTERM: inside a run it stops cleanly as on
    # Ctrl-C (exit 3); before a run has started it exits 130, as Ctrl-C does
    signal.signal(signal.SIGTERM, interrupt)
    try:
        app()
    except Exception as error:  # the point of a last line of defence
        from connector.exceptions import scrub  # noqa: PLC0415

        code, message = _failure(error)
        if logging.getLogger("crmsync").isEnabledFor(logging.DEBUG):
            sys.stderr.write(scrub("".join(traceback.format_exception(error))))
        sys.stderr.write(scrub(message) + "\n")
        sys.exit(code)
