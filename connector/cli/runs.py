"""The commands that run the engine: sync, backfill, plan, apply, rollback."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from connector.cli._common import (
    ALL_OPTION,
    DRY_RUN_OPTION,
    ENV_FILE_OPTION,
    JSON_OPTION,
    LARGEST_RUN_ID,
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    MAPPING_OPTION,
    STATE_OPTION,
    TENANT_OPTION,
    VERBOSE_OPTION,
    LogFormat,
    LogLevel,
    app,
    as_utc,
    fail,
    finish,
    run_engine,
    setup_logging,
    write_private,
)

# ---- the guards' flags (connector/sync/guards.py) ------------------------------------------

OBJECTS_OPTION = typer.Option(
    None, "--objects", metavar="SYSTEM.OBJECT,...",
    help="Only these objects, comma-separated (e.g. hubspot.companies,salesforce.Lead): only "
         "they are read, and only changes to them are written. What the records read change "
         "in other objects is left for the next run without --objects. Default: all.",
)
ACCEPT_MAPPING_CHANGE_OPTION = typer.Option(
    False, "--accept-mapping-change",
    help="Run with a mapping other than the one pinned in the state DB, and pin it. Without "
         "it such a run stops before reading (exit 2) and shows what the change would write.",
)
CONFIRM_LARGE_OPTION = typer.Option(
    False, "--confirm-large",
    help="Write even beyond the blast-radius limits (CRMSYNC_MAX_RECORDS_WRITTEN, "
         "CRMSYNC_MAX_SHARE_WRITTEN, CRMSYNC_MAX_DOWNGRADES). Without it such a run stops "
         "before writing (exit 2) and lists what it would change.",
)


def _objects(text: str | None):
    """--objects as (system, object) pairs, checked before anything is opened or read."""
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.sync import parse_objects  # noqa: PLC0415

    try:
        return parse_objects(text)
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None


@app.command("sync")
def sync_command(
    dry_run: bool = DRY_RUN_OPTION,
    replan_all: bool = typer.Option(
        False, "--replan-all",
        help="Plan every mirrored record, not only those changed since they were last planned "
             "(the first run after a mapping change does this anyway).",
    ),
    objects: str | None = OBJECTS_OPTION,
    accept_mapping_change: bool = ACCEPT_MAPPING_CHANGE_OPTION,
    confirm_large: bool = CONFIRM_LARGE_OPTION,
    allow_empty_state: bool = typer.Option(
        False, "--allow-empty-state",
        help="Sync a state DB nothing was written from yet (a first sync reads and writes "
             "everything). Without it such a sync stops before reading (exit 2): run "
             "`crmsync backfill` instead.",
    ),
    as_json: bool = JSON_OPTION,
    show_all: bool = ALL_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    tenant: str | None = TENANT_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """One incremental run: read changes since the last run, reconcile, write the differences.

    Made for cron, systemd timers and orchestrators: no prompts, logs on stderr. Exit codes:
    0 ok (or paused by `crmsync pause`: nothing written), 1 finished with rejected records or
    writes pending retry, 2 configuration error or a guard stopped it before writing (a
    mapping other than the pinned one, an empty state DB, more than the blast-radius
    limits: the message names the flag), 3 stopped early and resumable (rate budget, lock
    held or lost, SIGTERM), 4 failed (also an unusable state DB).
    """
    from connector.sync import Guards  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    guards = Guards(accept_mapping_change=accept_mapping_change, confirm_large=confirm_large,
                    allow_empty_state=allow_empty_state)
    chosen = _objects(objects)

    def action(engine):
        return engine.sync(dry_run=dry_run, replan_all=replan_all, objects=chosen,
                           guards=guards)

    report = run_engine(action, mapping=mapping, state=state, env_file=env_file,
                         tenant=tenant, as_json=as_json)
    finish(report, as_json, show_all)


@app.command("backfill")
def backfill_command(
    since: datetime | None = typer.Option(None, metavar="DATE",
                                          help="Only records modified at or after this."),
    until: datetime | None = typer.Option(None, metavar="DATE",
                                          help="Only records modified before this."),
    objects: str | None = OBJECTS_OPTION,
    accept_mapping_change: bool = ACCEPT_MAPPING_CHANGE_OPTION,
    confirm_large: bool = CONFIRM_LARGE_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
    show_all: bool = ALL_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    tenant: str | None = TENANT_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Read everything (a full backfill), then reconcile and write the differences.

    Resumable: after Ctrl-C or a kill, run it again and objects already read are skipped.
    Shows a progress bar per object on a terminal. The first backfill of a state DB pins its
    mapping and may write to every record (the blast-radius record limits start once a run
    has planned and written everything). Exit codes as for `sync`.
    """
    from connector.sync import Guards  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    guards = Guards(accept_mapping_change=accept_mapping_change, confirm_large=confirm_large)
    chosen = _objects(objects)

    def action(engine):
        return engine.backfill(since=as_utc(since), until=as_utc(until),
                               objects=chosen, dry_run=dry_run, guards=guards)

    report = run_engine(action, mapping=mapping, state=state, env_file=env_file, tenant=tenant,
                         progress=True, as_json=as_json)
    finish(report, as_json, show_all)


@app.command("plan")
def plan_command(
    output: Path | None = typer.Option(None, "-o", "--output", help="Save the plan as JSON."),
    objects: str | None = OBJECTS_OPTION,
    as_json: bool = JSON_OPTION,
    show_all: bool = ALL_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    tenant: str | None = TENANT_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Read and reconcile, then show field-level changes with the rule behind each; write nothing.

    Save with -o plan.json and apply later with `crmsync apply plan.json`. This is how to
    review a mapping change: plan with the new mapping, then apply (which pins it). Runs
    while crmsync is paused.
    """
    setup_logging(log_format, log_level, verbose)
    chosen = _objects(objects)
    report, document = run_engine(lambda e: e.plan(objects=chosen), mapping=mapping,
                                   state=state, env_file=env_file, tenant=tenant,
                                   as_json=as_json)
    if output is not None and report.exit_code in (0, 1):
        write_private(output, document.to_json())
        typer.echo(f"plan with {len(document.changes)} change(s) saved to {output}", err=True)
    finish(report, as_json, show_all)


@app.command("apply")
def apply_command(
    plan_file: Path = typer.Argument(..., help="A plan saved by `crmsync plan -o`."),
    dry_run: bool = DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
    show_all: bool = ALL_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    tenant: str | None = TENANT_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Apply a saved plan; refused when a record it touches changed since it was made.

    Applying pins the plan's mapping as the one in force (a reviewed mapping change). Writes
    nothing while crmsync is paused (exit 0).
    """
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.sync import PlanDocument  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    try:
        document = PlanDocument.from_json(plan_file.read_text(encoding="utf-8"), str(plan_file))
    except OSError as error:
        raise fail(f"cannot read {plan_file}: {error.strerror}", 2, as_json=as_json) from None
    except UnicodeDecodeError as error:
        raise fail(f"cannot read {plan_file}: not UTF-8 (byte offset {error.start}); "
                    "not a crmsync plan", 2, as_json=as_json) from None
    except ConfigurationError as error:
        raise fail(str(error), 2, as_json=as_json) from None
    report = run_engine(lambda e: e.apply(document, dry_run=dry_run), mapping=mapping,
                         state=state, env_file=env_file, tenant=tenant, as_json=as_json)
    finish(report, as_json, show_all)


@app.command("rollback")
def rollback_command(
    run_id: int = typer.Argument(..., help="The run whose changes to undo (see `crmsync status`)."),
    dry_run: bool = DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
    show_all: bool = ALL_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    tenant: str | None = TENANT_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Restore the before-values of a run, where fields still hold what that run wrote.

    Fields someone changed since are skipped and listed. Runs while crmsync is paused. The
    next sync writes the same values again unless the mapping or the data changes: `crmsync
    pause` stops scheduled runs meanwhile.
    """
    from connector.exceptions import ConfigurationError  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)

    def action(engine):
        if not 1 <= run_id <= LARGEST_RUN_ID:
            raise ConfigurationError(f"no run {run_id} in {engine.store.path}")
        return engine.rollback(run_id, dry_run=dry_run)

    report = run_engine(action, mapping=mapping, state=state, env_file=env_file, tenant=tenant,
                         as_json=as_json)
    finish(report, as_json, show_all)


