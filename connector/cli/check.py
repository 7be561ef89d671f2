"""`crmsync check`: connectivity, authentication, every mapped field and the state DB, before a
first run."""

from __future__ import annotations

from pathlib import Path

import typer

from connector.cli._common import (
    ENV_FILE_OPTION,
    JSON_OPTION,
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    MAPPING_OPTION,
    STATE_OPTION,
    VERBOSE_OPTION,
    LogFormat,
    LogLevel,
    app,
    fail,
    from_project,
    settings_from,
    setup_logging,
)

# Findings that say a CRM (or the state DB) could not be used at all: the failures a run
# exits 4 on. Every other error is something to fix in a setting, the mapping or a CRM's
# set-up (a login, a scope, a field), which a run exits 2 on.
FAILURES = {"connectivity", "describe", "state DB"}


@app.command("check")
def check_command(
    mapping: Path | None = MAPPING_OPTION,
    as_json: bool = JSON_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Check connectivity, authentication and every mapped field in both CRMs: that it
    exists, takes the values and type the mapping writes, HubSpot's lifecycle stage order,
    and picklist values the mapping does not know. Also checks that the state DB can be used.

    Exit codes mean what they mean for a run: 0 all is well (warnings allowed), 2 something
    to fix (a setting, the mapping, a login, a scope or a field), 4 a CRM could not be
    reached or the state DB cannot be used.
    """
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415
    from connector.reporting import dumps, print_check, stdout_console  # noqa: PLC0415
    from connector.systems.check import run_check  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    try:
        settings = settings_from(env_file)
        mapping = from_project(mapping)[0]
        report = run_check(settings, load_mapping(mapping or settings.mapping_path))
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2, as_json=as_json) from None
    report.findings.append(_state_finding(state or settings.state_path))
    code = _exit_code(report.errors)
    if as_json:
        typer.echo(dumps({**report.to_dict(), "exit_code": code}))
    else:
        print_check(report.findings, stdout_console())
    raise typer.Exit(code)


def _exit_code(errors: list) -> int:
    if any(f.what not in FAILURES for f in errors):
        return 2
    return 4 if errors else 0


def _state_finding(path: Path):
    """Whether runs can use the state DB at `path`: open it (it is created by the first
    run if missing, so a missing one is fine when its folder can be written)."""
    import os  # noqa: PLC0415

    from connector.exceptions import CrmsyncError  # noqa: PLC0415
    from connector.state import StateStore  # noqa: PLC0415
    from connector.systems.check import CheckFinding  # noqa: PLC0415

    path = Path(path)
    if not path.exists():
        folder = next((p for p in path.absolute().parents if p.exists()), Path("/"))
        if os.access(folder, os.W_OK):
            return CheckFinding("crmsync", "state DB", "ok",
                                f"{path} does not exist yet: the first backfill creates it")
        return CheckFinding("crmsync", "state DB", "error", f"{path} cannot be created: "
                            f"{folder} is not writable", "pass --state with a writable place, "
                            "or set CRMSYNC_STATE_PATH")
    try:
        with StateStore(path) as store:
            runs = store.journal.runs(1)
            mirrored = store.mirror.count()
    except CrmsyncError as error:
        return CheckFinding("crmsync", "state DB", "error", str(error),
                            "fix or move the file named, or pass --state")
    last = f"; last run {runs[0].id} ({runs[0].kind}, {runs[0].status})" if runs else ""
    return CheckFinding("crmsync", "state DB", "ok", f"{path}: {mirrored} records mirrored{last}")
