"""`crmsync mappings ...`: validate, explain and describe the mapping YAML admins edit."""

from __future__ import annotations

from pathlib import Path

import typer

from connector.cli._common import (
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    VERBOSE_OPTION,
    LogFormat,
    LogLevel,
    app,
    fail,
    from_project,
    setup_logging,
)

mappings_app = typer.Typer(
    help="Check and explain the mapping YAML that admins edit (edit -> validate -> explain).",
    no_args_is_help=True,
)
app.add_typer(mappings_app, name="mappings")


@mappings_app.command("validate")
def mappings_validate(
    files: list[Path] = typer.Argument(
        None, help="Mapping files to check (default: `mapping` in ./crmsync.toml, else the "
                   "shipped mappings/default.yaml)."
    ),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Check mapping files; print every problem as FILE:LINE:COL: message.

    Exit 0 when every file is valid, 2 when any has a problem. Nothing is loaded from a file
    with problems.
    """
    setup_logging(log_format, log_level, verbose)
    from connector.exceptions import MappingError  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415

    failed = False
    for file in files or [from_project()[0]]:
        try:
            mapping = load_mapping(file)
        except MappingError as error:
            failed = True
            for problem in error.problems:
                typer.echo(str(problem), err=True)
            continue
        packs = ", ".join(mapping.label_packs) or "none"
        typer.echo(f"{mapping.files[0]}: ok (label packs: {packs})")
    raise typer.Exit(2 if failed else 0)


@mappings_app.command("schema")
def mappings_schema(
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Print the JSON Schema of the mapping format (for editors and CI)."""
    setup_logging(log_format, log_level, verbose)
    from connector.mapping import json_schema_text  # noqa: PLC0415

    typer.echo(json_schema_text(), nl=False)


@mappings_app.command("explain")
def mappings_explain(
    hubspot: list[Path] = typer.Option(
        [], "--hubspot", help="HubSpot record JSON (a record, a list, or an API page); repeatable."
    ),
    salesforce: list[Path] = typer.Option(
        [], "--salesforce", help="Salesforce record JSON, with attributes.type; repeatable."
    ),
    mapping: Path | None = typer.Option(
        None, "--mapping", metavar="PATH",
        help="Mapping YAML to use (default: `mapping` in ./crmsync.toml, else the shipped "
             "mappings/default.yaml)."),
    today: str | None = typer.Option(
        None, "--today", help="Evaluate trigger windows as of this date (YYYY-MM-DD)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Show the canonical view of the given records and the rule behind every value.

    Warns (on stderr, and under "warnings" in --json) of each record a given one is tied to
    that is not given: a contact's company or account, the same person in the other CRM, a
    deal's contacts. Links, fit and priority are then worked out from part of the picture.
    To explain records crmsync has already read, use `crmsync explain RECORD`.
    """
    setup_logging(log_format, log_level, verbose)
    import json  # noqa: PLC0415
    from datetime import date  # noqa: PLC0415

    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.explain import (  # noqa: PLC0415
        explain,
        missing_links,
        read_records,
        render_text,
    )
    from connector.mapping import load_mapping  # noqa: PLC0415

    if not hubspot and not salesforce:
        raise typer.BadParameter("give at least one --hubspot or --salesforce record file")
    try:
        as_of = date.fromisoformat(today) if today else date.today()
    except ValueError:
        raise typer.BadParameter(f"--today {today!r} is not a date (YYYY-MM-DD)") from None
    try:
        loaded = load_mapping(from_project(mapping)[0])
        records = [("hubspot", obj, raw) for path in hubspot
                   for obj, raw in read_records(path, "hubspot")]
        records += [("salesforce", obj, raw) for path in salesforce
                    for obj, raw in read_records(path, "salesforce")]
    except ConfigurationError as error:
        raise fail(str(error), 2) from None
    report = explain(loaded, records, as_of)
    warnings = missing_links(records)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        typer.echo(json.dumps({**report, "warnings": warnings}, indent=2))
    else:
        typer.echo(render_text(report))


