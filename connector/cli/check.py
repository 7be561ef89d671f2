"""`crmsync check`: connectivity, authentication and every mapped field, before a first run."""

from __future__ import annotations

from pathlib import Path

import typer

from connector.cli._common import (
    ENV_FILE_OPTION,
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    MAPPING_OPTION,
    VERBOSE_OPTION,
    LogFormat,
    LogLevel,
    app,
    fail,
    from_project,
    settings_from,
    setup_logging,
)


@app.command("check")
def check_command(
    mapping: Path | None = MAPPING_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Check connectivity, authentication and every mapped field in both CRMs: that it
    exists, takes the values and type the mapping writes, HubSpot's lifecycle stage order,
    and picklist values the mapping does not know.

    Exit 0 when all is well, 1 when a field, a connection or a login fails, 2 when a setting
    or the mapping is wrong.
    """
    from rich.console import Console  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from connector.exceptions import ConfigurationError, scrub  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415
    from connector.reporting import dumps  # noqa: PLC0415
    from connector.systems.check import run_check  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    try:
        settings = settings_from(env_file)
        mapping = from_project(mapping)[0]
        report = run_check(settings, load_mapping(mapping or settings.mapping_path))
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None
    if as_json:
        typer.echo(dumps(report.to_dict()))
    else:
        table = Table("system", "check", "result", "detail", "how to fix")
        colours = {"ok": "green", "warning": "yellow", "error": "red"}
        for f in report.findings:
            level = f"[{colours[f.level]}]{f.level}[/{colours[f.level]}]"
            table.add_row(escape(f.system), escape(f.what), level, escape(scrub(f.detail)),
                          escape(scrub(f.fix)))
        Console().print(table)
    raise typer.Exit(0 if report.ok else 2 if report.settings_missing else 1)


