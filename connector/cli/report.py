"""`crmsync report`: the HTML report with charts, from the state DB (no API calls)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import typer

from connector.cli._common import (
    ENV_FILE_OPTION,
    LARGEST_RUN_ID,
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    MAPPING_OPTION,
    STATE_OPTION,
    VERBOSE_OPTION,
    LogFormat,
    LogLevel,
    app,
    fail,
    open_state,
    settings_from,
    setup_logging,
)

DEFAULT_OUTPUT = Path("crmsync-report.html")


@app.command("report")
def report_command(
    output: Path | None = typer.Option(
        None, "--output", "-o", show_default=False,
        help=f"HTML file to write (default: {DEFAULT_OUTPUT}; with --json, none unless named). "
             "Readable by you only: it names records and quotes their values."),
    run: int | None = typer.Option(
        None, "--run", show_default=False,
        help="The run to report on: its before and after, and what it changed (default: the "
             "latest run)."),
    since: str | None = typer.Option(
        None, "--since", metavar="YYYY-MM-DD", show_default=False,
        help="Show the history of runs started on or after this day (UTC), up to the run "
             "reported on (default: the last 30 runs)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report's numbers as JSON on stdout, for dashboards "
                              "(field names: connector/report/data.py)."),
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Write one self-contained HTML file with charts: the funnel per system, where HubSpot
    and Salesforce agree, organisations, what a run changed, what is stuck, and the run
    history. Built from the state DB alone (no API calls); it opens offline.
    """
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415
    from connector.report.data import report_data  # noqa: PLC0415
    from connector.reporting import dumps  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    if run is not None and not 1 <= run <= LARGEST_RUN_ID:
        raise fail(f"configuration error: no run {run}: run ids start at 1", 2)
    start = _day(since)
    try:
        loaded = load_mapping(mapping or settings_from(env_file).mapping_path)
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None
    with open_state(state, env_file) as store:
        try:
            data = report_data(store, loaded, run_id=run, since=start)
        except ConfigurationError as error:
            raise fail(f"configuration error: {error}", 2) from None
    if as_json:
        typer.echo(dumps(data))
        if output is None:
            return
    _write(data, output or DEFAULT_OUTPUT, quiet=as_json)


def _day(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(text.strip()), datetime.min.time(), UTC)
    except ValueError:
        raise fail(f"configuration error: --since {text!r} is not a date: give it as "
                   "YYYY-MM-DD, e.g. 2026-11-01", 2) from None


def _write(data: dict, output: Path, *, quiet: bool) -> None:
    try:
        from connector.report.html import write_report  # noqa: PLC0415
    except ImportError as error:  # plotly missing from a hand-made install
        raise fail(f"crmsync failed: cannot draw the report ({error}); install crmsync with its "
                   "dependencies (pip install -e .)", 4) from None
    try:
        size = write_report(data, output)
    except OSError as error:
        raise fail(f"configuration error: cannot write the report to {output}: "
                   f"{error.strerror or error}", 2) from None
    message = f"report written to {output} ({size / 1_000_000:.1f} MB); open it in a browser"
    typer.echo(message, err=quiet)
