"""The commands about one record, from the state DB only (no API calls): explain, history."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import typer

from connector.cli._common import (
    ENV_FILE_OPTION,
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    STATE_OPTION,
    VERBOSE_OPTION,
    LogFormat,
    LogLevel,
    app,
    fail,
    from_project,
    open_state,
    settings_from,
    setup_logging,
)

RECORD_ARGUMENT = typer.Argument(
    ..., metavar="RECORD", show_default=False,
    help="A record as system:object:id (hubspot:contacts:100007, salesforce:Lead:00Q...), an "
         "e-mail address (a person) or a domain (an organisation).",
)
RECORD_MAPPING_OPTION = typer.Option(
    None, "--mapping", metavar="PATH",
    help="Mapping YAML to plan with (default: `mapping` in ./crmsync.toml, else the mapping "
         "pinned in the state DB, which the runs use, else CRMSYNC_MAPPING_PATH, else the "
         "shipped mappings/default.yaml).",
)
JSON_OUTPUT = typer.Option(False, "--json", help="Print JSON instead of text (errors too).")
TODAY_OPTION = typer.Option(
    None, "--today", metavar="YYYY-MM-DD",
    help="Plan as of this date: triggers start and expire by it (default: today, UTC, as a "
         "run does).",
)


@app.command("explain")
def explain_command(
    record: str = RECORD_ARGUMENT,
    today: str | None = TODAY_OPTION,
    as_json: bool = JSON_OUTPUT,
    mapping: Path | None = RECORD_MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Why a record is as it is: its person or organisation, every record linked to it and
    why, every value with its rule (file:line), and what the next run would change.

    From the state DB alone (what the last run read), planned with the mapping as a run plans
    it; no API calls. Exit 0, or 2 when RECORD is unknown or matches several people (they are
    listed) or a setting is wrong.
    """
    setup_logging(log_format, log_level, verbose)
    from connector.lookup import explain_report, render_explain  # noqa: PLC0415
    from connector.sync.saved import mapping_fingerprint  # noqa: PLC0415

    as_of = _date(today, as_json)
    with open_state(state, env_file, as_json=as_json) as store:
        loaded = _mapping(mapping, env_file, as_json, store)
        found = _find(store, loaded, record, as_of, as_json)
        report = explain_report(store, loaded, found, as_of, mapping_fingerprint(loaded))
    _print(report, render_explain, as_json)


@app.command("history")
def history_command(
    record: str = RECORD_ARGUMENT,
    as_json: bool = JSON_OUTPUT,
    mapping: Path | None = RECORD_MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Every change crmsync made to a record's person or organisation, run by run: before
    and after, rule, reason and what became of it (applied, rejected, rolled back...).

    From the state DB's audit log; no API calls. Dry runs write nothing, so they have no
    entries. The mapping only decides which records form the person or organisation. A table
    per run on a terminal, plain lines otherwise. Exit 0, or 2 as for `explain`.
    """
    setup_logging(log_format, log_level, verbose)
    from connector.lookup import history_report, render_history  # noqa: PLC0415

    with open_state(state, env_file, as_json=as_json) as store:
        loaded = _mapping(mapping, env_file, as_json, store)
        found = _find(store, loaded, record, datetime.now(UTC).date(), as_json)
        report = history_report(store, found)
    if not as_json and sys.stdout.isatty():
        _history_tables(report)
    else:
        _print(report, render_history, as_json)


# ---- shared by both ---------------------------------------------------------------------------


def _error(message: str, as_json: bool, **details) -> typer.Exit:
    """Exit 2 with `message` on stderr, and with --json a JSON error object on stdout too."""
    return fail(message, 2, as_json=as_json, **details)


def _date(text: str | None, as_json: bool) -> date:
    if text is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _error(f"--today {text!r} is not a date (YYYY-MM-DD)", as_json) from None


def _mapping(path: Path | None, env_file: Path | None, as_json: bool, store):
    """`--mapping`, else the project file's, else the mapping pinned in the state DB (the one
    the runs use), else the settings': explaining a record under another mapping than the
    runs' would explain changes no run makes."""
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415

    path = from_project(mapping=path)[0]
    pin = store.admin.pinned_mapping()
    if path is None and pin is not None and Path(pin.path).is_file():
        path = Path(pin.path)
    try:
        return load_mapping(path or settings_from(env_file).mapping_path)
    except ConfigurationError as error:
        raise _error(f"configuration error: {error}", as_json) from None


def _find(store, mapping, record: str, today: date, as_json: bool):
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.lookup import candidates, find, render_candidates  # noqa: PLC0415

    try:
        found = find(store, mapping, record, today)
    except ConfigurationError as error:
        raise _error(str(error), as_json) from None
    if found.ambiguous:
        text = render_candidates(found, str(store.path))
        raise _error(text, as_json, candidates=candidates(found))
    return found


def _print(report: dict, render, as_json: bool) -> None:
    from connector.exceptions import scrub  # noqa: PLC0415
    from connector.reporting import dumps  # noqa: PLC0415

    typer.echo(scrub(dumps(report) if as_json else render(report)))


def _history_tables(report: dict) -> None:
    """A table per run, for a terminal: the same facts as `render_history`'s lines."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from connector.exceptions import scrub  # noqa: PLC0415
    from connector.lookup import render_history, run_heading  # noqa: PLC0415

    console = Console()
    if not report["runs"]:
        console.print(Text(scrub(render_history(report))))
        return
    console.print(Text(scrub(f"history of {report['title']}: {', '.join(report['records'])}"),
                       style="bold"))
    for note in report["notes"]:
        console.print(Text(scrub(f"note: {note}")))
    for run in report["runs"]:
        table = Table("record", "field", "before -> after", "outcome", "why (rule)",
                      title=Text(scrub(run_heading(run))), title_justify="left")
        for change in run["changes"]:
            step = f" (step {change['step'] + 1} of 2)" if change["step"] else ""
            why = Text(scrub(change["reason"] or ""))
            why.append("\n" + scrub(change["rule"] or ""), style="dim")
            table.add_row(Text(scrub(change["record"])), Text(scrub(change["field"] + step)),
                          Text(scrub(f"{change['before']!r} -> {change['after']!r}")),
                          Text(scrub(change["outcome"])), why)
        console.print(table)
