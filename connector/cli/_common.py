"""What every command shares: the app, the options, logging, settings, printing a run
report, and building the engine. Commands live in the modules beside this one.

Options mean the same and look the same in every command: a file is `PATH` (`--mapping PATH`,
`--state PATH`, `--env-file PATH`), a flag takes no value, and exit codes are the documented
ones (0 ok, 1 rejects, 2 configuration, 3 stopped, 4 failed).
"""

from __future__ import annotations

import inspect
import signal
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import typer
from typer.core import TyperGroup

# ---- the app: one look for every command's options ---------------------------------------


class CrmsyncGroup(TyperGroup):
    """The `crmsync` group. It gives every command's options the same metavars, whoever
    declared them: a flag shows no value (typer would show `<bool>`), a file shows `PATH`,
    an argument its name in capitals (`RUN_ID`). And it reflows the paragraphs of every
    command's help, so `--help` wraps at the terminal's width, not at the docstring's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in _commands(self):
            _consistent_metavars(command)
            command.help = _reflowed(command.help)


def _commands(group: Any) -> list[Any]:
    found = [group]
    for command in getattr(group, "commands", {}).values():
        found += _commands(command)
    return found


def _reflowed(text: str | None) -> str | None:
    """A docstring's paragraphs each on one line (typer keeps the docstring's own line breaks
    and then wraps again: ragged lines). A paragraph with an indented line is kept as it is:
    it is an example or a list laid out by hand."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        paragraph if any(line.startswith((" ", "\b")) for line in paragraph.splitlines())
        else " ".join(line.strip() for line in paragraph.splitlines())
        for paragraph in paragraphs)


def _consistent_metavars(command: Any) -> None:
    for param in command.params:
        if param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
        elif getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.type_descriptor.is_path:
            param.metavar = "PATH"
    # `--help` too is a flag; made now (and kept by click), with the names click would use
    help_option = command.get_help_option(SimpleNamespace(help_option_names=["--help"]))
    if help_option is not None:
        help_option.metavar = ""


app = typer.Typer(
    name="crmsync",
    cls=CrmsyncGroup,
    help="Keep HubSpot and Salesforce telling the same story about people and organisations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            number = version("crmsync")
        except PackageNotFoundError:  # run from a checkout that was never installed
            number = "unknown (not installed)"
        typer.echo(f"crmsync {number}")
        raise typer.Exit(0)


@app.callback()
def _crmsync(
    show_version: bool = typer.Option(False, "--version", is_eager=True,
                                      callback=_print_version,
                                      help="Print crmsync's version and exit."),
) -> None:
    """Keep HubSpot and Salesforce telling the same story about people and organisations."""


# ---- options every command shares --------------------------------------------------------


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


LOG_FORMAT_OPTION = typer.Option(
    LogFormat.text, "--log-format", case_sensitive=True,
    help="Log lines (and a failing command's error line) on stderr as plain text or as JSON "
         "objects, one per line, for log shippers.",
)
LOG_LEVEL_OPTION = typer.Option(
    LogLevel.info, "--log-level", case_sensitive=True,
    help="Least severe log messages shown on stderr. warning: only retries and problems; "
         "debug: everything, and a traceback when crmsync fails unexpectedly.",
)
VERBOSE_OPTION = typer.Option(
    False, "--verbose", "-v", help="Same as --log-level debug.", show_default=False,
)


def setup_logging(log_format: LogFormat, log_level: LogLevel, verbose: bool) -> None:
    """Every command starts here, so logs look the same and --verbose means the same."""
    from connector.runtime import configure_logging  # noqa: PLC0415 - keep start-up light

    configure_logging(log_format.value, LogLevel.debug.value if verbose else log_level.value)


def project():
    """The working directory's project file (crmsync.toml), or None; a file crmsync cannot
    use raises ProjectFileError (exit 2) naming the file, the line and the key."""
    from connector.project import find_project  # noqa: PLC0415

    return find_project()


def from_project(mapping: Path | None = None, state: Path | None = None
                 ) -> tuple[Path | None, Path | None]:
    """`--mapping` and `--state` as given, else as the project file names them (else None:
    the settings decide)."""
    found = project()
    if found is None:
        return mapping, state
    return mapping or found.mapping, state or found.state


def settings_from(env_file: Path | None):
    """Settings from the environment and `--env-file` (which must then exist), else the
    project file's `env_file` (which must exist too), else ./.env if there is one."""
    from connector.settings import load_settings  # noqa: PLC0415

    if env_file is None and (found := project()) is not None:
        env_file = found.env_file
    return load_settings(env_file=env_file or Path(".env"), require_env_file=env_file is not None)


def settings_for(tenant: str | None, env_file: Path | None):
    """`--tenant NAME`'s settings (its own files, mapping and state: connector/tenants.py),
    else `settings_from(env_file)`. Naming both would leave unclear whose settings count."""
    if tenant is None:
        return settings_from(env_file)
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.tenants import load_tenant  # noqa: PLC0415

    if env_file is not None:
        raise ConfigurationError("--tenant and --env-file both name the settings to use; a "
                                 "tenant's settings are its own (see `crmsync tenants list`)")
    return load_tenant(tenant).settings()


# The status a failure's exit code stands for, as runs record it (connector/sync/report.py).
_STATUS_OF_CODE = {2: "config_error", 3: "stopped", 4: "failed", 130: "interrupted"}


def fail(message: str, code: int, *, as_json: bool = False, **details: Any) -> typer.Exit:
    """`raise fail(...)`: one scrubbed line on stderr (a JSON log line when logs are JSON),
    and with `as_json` a JSON error object on stdout, so a caller reading stdout always gets
    JSON: {"error": ..., "exit_code": ..., "status": ..., **details}."""
    report_failure(message, code, as_json=as_json, **details)
    return typer.Exit(code)


def report_failure(message: str, code: int, *, as_json: bool = False, **details: Any) -> None:
    """What `fail` prints; also the last line of defence's (connector/cli/__init__.py).
    `details` go into the JSON error object (e.g. the candidates of an ambiguous record)."""
    import logging  # noqa: PLC0415

    from connector.exceptions import scrub, scrubbed_json  # noqa: PLC0415
    from connector.runtime import log_format  # noqa: PLC0415

    message = scrub(message)
    status = _STATUS_OF_CODE.get(code, "failed")
    if as_json:
        typer.echo(scrubbed_json({"error": message, "exit_code": code, "status": status,
                                  **details}))
    if log_format() == "json":
        logging.getLogger("crmsync").error(
            message, extra={"fields": {"exit_code": code, "status": status}})
    else:
        typer.echo(message, err=True)


# ---- options of the commands that read settings and state -------------------------------

MAPPING_OPTION = typer.Option(None, "--mapping", metavar="PATH",
                              help="Mapping YAML (default: `mapping` in ./crmsync.toml, else "
                                   "CRMSYNC_MAPPING_PATH, else the shipped "
                                   "mappings/default.yaml).")
STATE_OPTION = typer.Option(None, "--state", metavar="PATH", help="State DB (default: `state` in "
                            "./crmsync.toml, else CRMSYNC_STATE_PATH, else ./crmsync.db).")
ENV_FILE_OPTION = typer.Option(
    None, "--env-file", metavar="PATH", show_default=False,
    help="Settings file to read (KEY=VALUE lines, UTF-8). Default: `env_file` in "
         "./crmsync.toml, else ./.env when it exists; a file named here must exist.",
)
JSON_OPTION = typer.Option(False, "--json", help="Print a machine-readable JSON report on "
                           "stdout (on a failure, a JSON object with the error and exit code).")
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Do everything but write to the CRMs; "
                              "the report says what would apply.")
ALL_OPTION = typer.Option(
    False, "--all",
    help="List every change the report holds (the first 10,000; --json holds them too), "
         "every transition of the summary and every rejected record, not only the first 25 "
         "changes.",
)
TENANT_OPTION = typer.Option(
    None, "--tenant", metavar="NAME", show_default=False,
    help="Run for this tenant of the registry (CRMSYNC_TENANTS_DIR, default ./tenants): its "
         "settings, mapping and state. See `crmsync tenants list`.",
)

# SQLite stores integers in 8 bytes; a larger run id cannot name a run.
LARGEST_RUN_ID = 2**63 - 1


# ---- runs

def finish(report, as_json: bool, show_all: bool = False) -> None:
    """Print a run report; exit with its code (0 ok, 1 rejects, 2 config, 3 stopped, 4 failed)."""
    from connector.reporting import dumps, print_report, stdout_console  # noqa: PLC0415

    if as_json:
        typer.echo(dumps(report.to_dict()))
    else:
        print_report(report, stdout_console(), show_all=show_all)
    raise typer.Exit(report.exit_code)


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_engine(action, *, mapping, state, env_file, progress=False, as_json=False, tenant=None):
    """Build the engine (for `tenant`, when named) and run `action(engine)`; configuration
    errors exit 2 before any read."""
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.runtime import RichProgress, open_engine  # noqa: PLC0415

    # systemd and orchestrators stop a job with SIGTERM: stop as cleanly as on Ctrl-C
    signal.signal(signal.SIGTERM, interrupt)
    bars = RichProgress() if progress and not as_json and sys.stderr.isatty() else None
    try:
        if tenant is None:  # a tenant's mapping and state are its own, not the project's
            mapping, state = from_project(mapping, state)
        with open_engine(settings=settings_for(tenant, env_file), mapping_path=mapping,
                         state_path=state, progress=bars) as engine:
            if bars is None:
                return action(engine)
            with bars:
                return action(engine)
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2, as_json=as_json) from None


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600): a plan holds names and e-mail addresses."""
    import os  # noqa: PLC0415

    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def open_state(state: Path | None, env_file: Path | None, tenant: str | None = None, *,
               as_json: bool = False):
    """The state store to read: `--state` (a path or URL), else the project file's, else the
    settings' (or the tenant's, with `--tenant`). A SQLite file must exist: reading must not
    create one."""
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.state import StateStore  # noqa: PLC0415
    from connector.state.location import is_postgres_url  # noqa: PLC0415

    try:
        if tenant is None:
            state = from_project(state=state)[1]
        settings = None if state and not tenant else settings_for(tenant, env_file)
        path = state or settings.state_location()
        if not is_postgres_url(path) and not Path(path).exists():
            raise ConfigurationError(f"no state DB at {path}: run `crmsync sync` or "
                                     "`crmsync backfill` first (or pass --state)")
        return StateStore(path, tenant=tenant or (settings.tenant if settings else None))
    except ConfigurationError as error:
        raise fail(str(error), 2, as_json=as_json) from None


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
