"""The commands of an admin's safe loop: init (the project file), pause and resume."""

from __future__ import annotations

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
    open_state,
    setup_logging,
)


@app.command("init")
def init_command(
    mapping: Path | None = typer.Option(
        None, "--mapping", help="The mapping YAML the runs here use (default: the shipped "
        "mappings/default.yaml)."),
    state: str = typer.Option("crmsync.db", "--state", metavar="PATH",
                              help="The state DB the runs here use."),
    env_file: Path | None = typer.Option(
        None, "--env-file", help="The settings file the runs here read (default: ./.env)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing crmsync.toml."),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Write crmsync.toml here: the mapping, state DB and settings file the runs here use.

    Every crmsync command started in this directory reads it, so scheduled runs need no
    flags (flags still win). The mapping is checked first: a bad one is reported and nothing
    is written.
    """
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415
    from connector.project import PROJECT_FILE, project_text  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    target = Path.cwd() / PROJECT_FILE
    if target.exists() and not force:
        raise fail(f"{target} exists; edit it, or pass --force to replace it", 2)
    if env_file is not None and not env_file.is_file():
        raise fail(f"settings file {env_file} not found (given with --env-file)", 2)
    try:
        if mapping is not None:
            load_mapping(mapping)
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None
    target.write_text(project_text(str(mapping) if mapping else None, state,
                                   str(env_file) if env_file else None), encoding="utf-8")
    typer.echo(f"wrote {target}: mapping {mapping or 'mappings/default.yaml (shipped)'}, "
               f"state DB {state}, settings {env_file or './.env'}.")
    typer.echo("Next: `crmsync check`, then `crmsync backfill` (it pins the mapping), then "
               "schedule `crmsync sync` in this directory.")


@app.command("pause")
def pause_command(
    reason: str = typer.Option("", "--reason", metavar="TEXT",
                               help="Why, for whoever finds the schedule paused."),
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Pause crmsync: sync, backfill and apply write nothing until `crmsync resume`.

    Paused runs exit 0 and say who paused crmsync, when and why; a run writing now stops
    before its next batch. `plan` and `rollback` still run. Stored in the state DB, so every
    scheduled run against it sees the pause, wherever it starts.
    """
    setup_logging(log_format, log_level, verbose)
    with open_state(state, env_file) as store:
        with store.transaction():
            pause, made = store.admin.pause(reason)
        holder = store.lock.holder()
        where = store.path
    if not made:
        typer.echo(f"already {pause} (state DB {where}); nothing changed. `crmsync resume` "
                   "first to pause with another reason.")
        return
    typer.echo(f"{pause}. sync, backfill and apply write nothing until `crmsync resume` "
               f"(state DB {where}).")
    if holder:
        typer.echo(f"A run is under way ({holder['owner']}, pid {holder['pid']} on "
                   f"{holder['host']}): it stops before its next write batch.")


@app.command("resume")
def resume_command(
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Lift a pause: the next sync, backfill or apply writes again."""
    setup_logging(log_format, log_level, verbose)
    with open_state(state, env_file) as store:
        with store.transaction():
            lifted = store.admin.resume()
        where = store.path
    if lifted is None:
        typer.echo(f"not paused (state DB {where}); nothing changed.")
        return
    typer.echo(f"resumed: crmsync was {lifted}. The next sync, backfill or apply writes "
               f"again (state DB {where}).")


# ---- what `crmsync status` shows of them ---------------------------------------------------


def admin_state(store) -> dict:
    """The pause and the pinned mapping, for `crmsync status` (and its --json)."""
    from dataclasses import asdict  # noqa: PLC0415

    pause, pin = store.admin.paused(), store.admin.pinned_mapping()
    return {"paused": asdict(pause) if pause else None,
            "pinned_mapping": ({"path": pin.path, "sha256": pin.sha256,
                                "pinned_at": pin.pinned_at, "by": pin.by} if pin else None)}


def admin_lines(store) -> list[str]:
    """The same as lines people read: a paused schedule is the first thing to know."""
    pause, pin = store.admin.paused(), store.admin.pinned_mapping()
    lines = []
    if pause is not None:
        lines.append(f"PAUSED: crmsync is {pause}; sync, backfill and apply write nothing "
                     "until `crmsync resume`")
    if pin is not None:
        from connector.state.admin import readable_time  # noqa: PLC0415

        lines.append(f"mapping in force: {pin.path} (sha256 {pin.sha256[:12]}, pinned "
                     f"{readable_time(pin.pinned_at)} by {pin.by})")
    return lines
