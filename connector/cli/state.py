"""The commands that read the state DB only (no API calls): status, rejects."""

from __future__ import annotations

from pathlib import Path

import typer

from connector.cli._common import (
    ENV_FILE_OPTION,
    JSON_OPTION,
    LARGEST_RUN_ID,
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    STATE_OPTION,
    VERBOSE_OPTION,
    LogFormat,
    LogLevel,
    app,
    fail,
    open_state,
    setup_logging,
)


@app.command("status")
def status_command(
    runs: int = typer.Option(10, help="How many recent runs to show."),
    as_json: bool = JSON_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Last runs, watermarks, open rejects and API usage, from the state DB (no API calls)."""
    from rich.console import Console  # noqa: PLC0415

    from connector.cli.admin import admin_lines, admin_state  # noqa: PLC0415
    from connector.reporting import dumps, print_status, status_data  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    with open_state(state, env_file) as store:
        data = status_data(store, runs)
        data.update(admin_state(store))
        lines = admin_lines(store)
    if as_json:
        typer.echo(dumps(data))
    else:
        for line in lines:
            typer.echo(line)
        print_status(data, Console())


@app.command("rejects")
def rejects_command(
    run: int | None = typer.Option(None, "--run", help="Only rejects seen in this run."),
    as_json: bool = JSON_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """The reject ledger with reasons. Rejected records are retried on the next run."""
    from rich.console import Console  # noqa: PLC0415

    from connector.reporting import dumps, print_rejects  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    if run is not None and not 1 <= run <= LARGEST_RUN_ID:
        raise fail(f"no run {run}", 2)
    with open_state(state, env_file) as store:
        entries = store.ledger.open(run)
    rows = [{"record": e.ref, "stage": e.stage, "field": e.field, "reason": e.reason,
             "code": e.code, "attempts": e.attempts, "first_seen": e.first_seen,
             "last_seen": e.last_seen, "last_run": e.last_run} for e in entries]
    if as_json:
        typer.echo(dumps(rows))
    elif rows:
        print_rejects(rows, Console())
    else:
        typer.echo("no open rejects")


