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
    runs: int = typer.Option(10, metavar="N", help="How many recent runs to show."),
    as_json: bool = JSON_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Last runs, watermarks, open rejects and API usage, from the state DB (no API calls).

    Dry runs show what they would apply: they applied nothing.
    """
    from connector.cli.admin import admin_lines, admin_state  # noqa: PLC0415
    from connector.reporting import (  # noqa: PLC0415
        dumps,
        print_status,
        status_data,
        stdout_console,
    )

    setup_logging(log_format, log_level, verbose)
    with open_state(state, env_file, as_json=as_json) as store:
        data = status_data(store, runs)
        data.update(admin_state(store))
        lines = admin_lines(store)
    if as_json:
        typer.echo(dumps(data))
    else:
        for line in lines:
            typer.echo(line)
        print_status(data, stdout_console())


@app.command("rejects")
def rejects_command(
    run: int | None = typer.Option(None, "--run", metavar="RUN_ID",
                                   help="Only rejects seen in this run."),
    records: bool = typer.Option(False, "--records",
                                 help="List every rejected record under its cause (in a "
                                      "pipe: one record per line, with its cause)."),
    as_json: bool = JSON_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Open rejects grouped by cause, with the fix: records that could not be read or
    written. Rejected records are retried on every run.

    Each cause shows how many records it rejected and a few of them; --records lists them
    all. --json lists every reject with its cause and fix.
    """
    from connector.reporting import (  # noqa: PLC0415
        RECORDS_SHOWN,
        dumps,
        print_reject_causes,
        reject_rows,
        stdout_console,
    )
    from connector.sync.report import group_rejects  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    if run is not None and not 1 <= run <= LARGEST_RUN_ID:
        raise fail(f"no run {run}", 2, as_json=as_json)
    with open_state(state, env_file, as_json=as_json) as store:
        rows = reject_rows(store.ledger.open(run))
    if as_json:
        typer.echo(dumps(rows))
    elif rows:
        print_reject_causes(group_rejects(rows), stdout_console(),
                            records=None if records else RECORDS_SHOWN)
    else:
        typer.echo("no open rejects")
