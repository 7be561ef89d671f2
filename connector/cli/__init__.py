"""The `crmsync` command: parse arguments, call the library, print. No logic lives here.

One module per group of commands; `_common` holds the app and the options they share.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from itertools import pairwise
from typing import Any

# Importing a module registers its commands, and `--help` lists them in import order.
# isort: off
from connector.cli import (  # noqa: F401
    check,
    fields,
    runs,
    admin,
    state,
    records,
    report,
    demo,
    mappings,
    sandbox,
    tenants,
    worker,
)
# isort: on
from connector.cli._common import app, interrupt, report_failure

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


class QuietWhenClosed:
    """stdout or stderr, made quiet when the reader goes away (`crmsync status | head -1`).

    Writing to a closed pipe raises BrokenPipeError at whatever print comes next, and
    typer turns it into exit 1 ("rejects", to a scheduler). Here the first such write points
    the stream at /dev/null (so Python's own flush at exit cannot fail either) and drops
    the rest: the command finishes and exits with its own code, saying nothing more.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.closed_by_reader = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor (a test's stream): nothing to flush
            pass

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, buffer, ...
        return getattr(self._stream, name)


def _click_exception() -> type[Exception]:
    """Click's base error class: typer vendors click since 0.2x, and imported it before."""
    try:
        from typer._click.exceptions import ClickException  # noqa: PLC0415
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click.exceptions import ClickException  # noqa: PLC0415
    return ClickException


def _wants_json(argv: list[str]) -> bool:
    """Whether the command line asked for JSON on stdout (even if it is otherwise wrong)."""
    return "--json" in argv


def main() -> None:
    """The `crmsync` command. Whatever goes wrong ends with a documented exit code and one
    line on stderr (and with --json a JSON error object on stdout): an uncaught exception
    would exit 1, which schedulers read as "finished with rejects". The traceback is shown
    only at --log-level debug (or --verbose)."""
    from typer import Abort  # noqa: PLC0415

    sys.stdout = QuietWhenClosed(sys.stdout)
    sys.stderr = QuietWhenClosed(sys.stderr)
    # systemd and orchestrators stop a job with SIGTERM: inside a run it stops cleanly as on
    # Ctrl-C (exit 3); before a run has started it exits 130, as Ctrl-C does
    signal.signal(signal.SIGTERM, interrupt)
    as_json = _wants_json(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except _click_exception() as error:  # a bad command line: a configuration error, exit 2
        _usage_error(error, as_json)
        code = error.exit_code
    except Abort:
        code = 130
    except Exception as error:  # the point of a last line of defence
        from connector.exceptions import scrub  # noqa: PLC0415

        code, message = _failure(error)
        if logging.getLogger("crmsync").isEnabledFor(logging.DEBUG):
            sys.stderr.write(scrub("".join(traceback.format_exception(error))))
        report_failure(message, code, as_json=as_json)
    sys.stdout.flush()
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(error: Any, as_json: bool) -> None:
    """Typer's own message for a bad command line, and with --json the JSON error object.
    With --log-format json the message is a JSON log line: a log shipper reading stderr
    (config/crontab) gets JSON lines only, even from a mistyped option."""
    from typer import rich_utils  # noqa: PLC0415

    from connector.runtime import configure_logging  # noqa: PLC0415

    message = f"{error.format_message()} (run with --help for the options)"
    if _json_logs(sys.argv[1:]):
        configure_logging("json")
        report_failure(message, error.exit_code, as_json=as_json)
        return
    rich_utils.rich_format_error(error)
    if as_json:
        import json  # noqa: PLC0415

        sys.stdout.write(json.dumps({"error": message, "exit_code": error.exit_code,
                                     "status": "config_error"}, indent=2) + "\n")


def _json_logs(argv: list[str]) -> bool:
    """Whether the command line asked for JSON log lines (parsed or not)."""
    return "--log-format=json" in argv or ("--log-format", "json") in pairwise(argv)
