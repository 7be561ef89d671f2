"""What every command shares: the app, the options, logging, settings, printing a run
report, and building the engine. Commands live in the modules beside this one."""

from __future__ import annotations

import signal
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer

app = typer.Typer(
    name="crmsync",
    help="Keep HubSpot and Salesforce telling the same story about people and organisations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
    LogFormat.text, "--log-format",
    help="Log lines on stderr as plain text or as JSON objects (one per line, for log shippers).",
)
LOG_LEVEL_OPTION = typer.Option(
    LogLevel.info, "--log-level",
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


def settings_from(env_file: Path | None):
    """Settings from the environment and `--env-file` (which must then exist) or ./.env."""
    from connector.settings import load_settings  # noqa: PLC0415

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


def fail(message: str, code: int) -> typer.Exit:
    """One scrubbed message on stderr and the exit code; `raise fail(...)`."""
    from connector.exceptions import scrub  # noqa: PLC0415

    typer.echo(scrub(message), err=True)
    return typer.Exit(code)


# ---- options of the commands that read settings and state -------------------------------

MAPPING_OPTION = typer.Option(None, "--mapping", help="Mapping YAML (default: "
                              "CRMSYNC_MAPPING_PATH, else the shipped mappings/default.yaml).")
STATE_OPTION = typer.Option(None, "--state", help="State DB (default: CRMSYNC_STATE_PATH, "
                            "else ./crmsync.db).")
ENV_FILE_OPTION = typer.Option(
    None, "--env-file", show_default=False,
    help="Settings file to read (KEY=VALUE lines, UTF-8). Default: ./.env when it exists; a "
         "file named here must exist.",
)
TENANT_OPTION = typer.Option(
    None, "--tenant", show_default=False,
    help="Run for this tenant of the registry (CRMSYNC_TENANTS_DIR, default ./tenants): its "
         "settings, mapping and state. See `crmsync tenants list`.",
)
JSON_OPTION = typer.Option(False, "--json", help="Print a machine-readable JSON report.")
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Do everything but write to the CRMs.")

# SQLite stores integers in 8 bytes; a larger run id cannot name a run.
LARGEST_RUN_ID = 2**63 - 1



# ---- runs

def finish(report, as_json: bool) -> None:
    """Print a run report; exit with its code (0 ok, 1 rejects, 2 config, 3 stopped, 4 failed)."""
    from rich.console import Console  # noqa: PLC0415

    from connector.reporting import dumps, print_report  # noqa: PLC0415

    if as_json:
        typer.echo(dumps(report.to_dict()))
    else:
        print_report(report, Console())
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
        with open_engine(settings=settings_for(tenant, env_file), mapping_path=mapping,
                         state_path=state, progress=bars) as engine:
            if bars is None:
                return action(engine)
            with bars:
                return action(engine)
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600): a plan holds names and e-mail addresses."""
    import os  # noqa: PLC0415

    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def open_state(state: Path | None, env_file: Path | None, tenant: str | None = None):
    """The state store to read: `--state` (a path or URL), else the settings' (or the
    tenant's, with `--tenant`). A SQLite file must exist: reading must not create one."""
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.state import StateStore  # noqa: PLC0415
    from connector.state.location import is_postgres_url  # noqa: PLC0415

    try:
        settings = None if state and not tenant else settings_for(tenant, env_file)
        path = state or settings.state_location()
        if not is_postgres_url(path) and not Path(path).exists():
            raise ConfigurationError(f"no state DB at {path}: run `crmsync sync` or "
                                     "`crmsync backfill` first (or pass --state)")
        return StateStore(path, tenant=tenant or (settings.tenant if settings else None))
    except ConfigurationError as error:
        raise fail(str(error), 2) from None


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


