"""`crmsync tenants ...`: the registry of HubSpot-Salesforce pairs one installation serves
(connector/tenants.py). Run one with `crmsync sync --tenant NAME`; run them all on workers
with `crmsync worker` (connector/orchestration)."""

from __future__ import annotations

from pathlib import Path

import typer

from connector.cli._common import (
    JSON_OPTION,
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    MAPPING_OPTION,
    VERBOSE_OPTION,
    LogFormat,
    LogLevel,
    app,
    fail,
    setup_logging,
)

tenants_app = typer.Typer(
    help="Many HubSpot-Salesforce pairs: register tenants, list them, check them.",
    no_args_is_help=True,
)
app.add_typer(tenants_app, name="tenants")

TENANTS_DIR_OPTION = typer.Option(
    None, "--tenants-dir", show_default=False,
    help="The tenant registry folder, one NAME.toml per tenant (default: "
         "CRMSYNC_TENANTS_DIR, else ./tenants).",
)


@tenants_app.command("list")
def tenants_list(
    folder: Path | None = TENANTS_DIR_OPTION,
    as_json: bool = JSON_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Every tenant: its settings, mapping, state and sync schedule.

    A tenant file that cannot be read is reported on stderr (exit 2); the others are still
    listed.
    """
    from rich.console import Console  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from connector.reporting import dumps  # noqa: PLC0415
    from connector.tenants import list_tenants, tenants_dir  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    tenants, problems = list_tenants(folder)
    if as_json:
        typer.echo(dumps([tenant.to_dict() for tenant in tenants]))
    elif tenants:
        table = Table("tenant", "settings", "mapping", "state", "sync every")
        for tenant in tenants:
            every = tenant.sync_every
            table.add_row(escape(tenant.name), escape(str(tenant.env_file or tenant.secrets_dir)),
                          escape(str(tenant.mapping or "(its settings')")),
                          escape(tenant.shown_state()),
                          f"{every.total_seconds():g} s" if every else "off")
        Console().print(table)
    else:
        typer.echo(f"no tenants in {tenants_dir(folder).resolve()}; add one with "
                   "`crmsync tenants add NAME --env-file FILE`")
    for problem in problems:
        typer.echo(f"configuration error: {problem}", err=True)
    raise typer.Exit(2 if problems else 0)


@tenants_app.command("add")
def tenants_add(
    name: str = typer.Argument(..., help="The tenant's name: lower-case letters, digits, - and _."),
    env_file: Path | None = typer.Option(
        None, "--env-file", show_default=False,
        help="The tenant's settings file (CRMSYNC_... lines: its CRM credentials)."),
    secrets_dir: Path | None = typer.Option(
        None, "--secrets-dir", show_default=False,
        help="Or: a folder with one file per setting (Docker/Kubernetes secrets)."),
    mapping: Path | None = MAPPING_OPTION,
    state: str | None = typer.Option(
        None, "--state", metavar="PATH", show_default=False,
        help="Its state: a SQLite path, or postgresql://user@host:port/database shared with "
             "other tenants (default: its settings' CRMSYNC_STATE_URL or _PATH)."),
    sync_every: str | None = typer.Option(
        None, "--sync-every", show_default=False,
        help="How often the worker's beat syncs it: 90s, 15m, 1h, or off (default 15m)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing tenant."),
    tenants_dir: Path | None = TENANTS_DIR_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Register a tenant: one HubSpot portal and Salesforce org.

    A tenant has its own settings (an env file or a secrets folder), mapping and state. Its
    settings must load and its mapping be valid: otherwise nothing is written (exit 2).
    Then `crmsync tenants check NAME --crm` logs in to both CRMs.
    """
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.tenants import add_tenant  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    try:
        tenant = add_tenant(name, env_file=env_file, secrets_dir=secrets_dir, mapping=mapping,
                            state=state, sync_every=sync_every, directory=tenants_dir,
                            replace=replace)
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None
    typer.echo(f"added tenant {tenant.name} ({tenant.source}); check it with "
               f"`crmsync tenants check {tenant.name} --crm`")


@tenants_app.command("check")
def tenants_check(
    names: list[str] = typer.Argument(None, help="Tenants to check (default: all)."),
    crm: bool = typer.Option(
        False, "--crm", help="Also log in to both CRMs and check every mapped field, as "
                             "`crmsync check` does (API calls)."),
    tenants_dir: Path | None = TENANTS_DIR_OPTION,
    as_json: bool = JSON_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Check tenants: settings, mapping, state, who runs them now, their last run.

    Each tenant's settings must load, its mapping be valid and its state store open. Each
    tenant is checked whatever another's problems.

    Exit 0 when all is well, 1 when a CRM check fails (--crm), 2 when a tenant's settings,
    mapping or state is wrong (or a tenant is unknown).
    """
    from rich.console import Console  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from connector.exceptions import ConfigurationError, scrub  # noqa: PLC0415
    from connector.reporting import dumps  # noqa: PLC0415
    from connector.tenants import (  # noqa: PLC0415
        TenantFinding,
        check_tenant,
        list_tenants,
        load_tenant,
    )

    setup_logging(log_format, log_level, verbose)
    findings: list[TenantFinding] = []
    if names:
        tenants = []
        for name in names:
            try:
                tenants.append(load_tenant(name, tenants_dir))
            except ConfigurationError as error:
                findings.append(TenantFinding(name, "tenant", "error", str(error), True))
    else:
        tenants, problems = list_tenants(tenants_dir)
        findings += [TenantFinding("?", "tenant file", "error", p, True) for p in problems]
    for tenant in tenants:
        findings += check_tenant(tenant, crm=crm)
    if as_json:
        typer.echo(dumps([vars(f) for f in findings]))
    else:
        table = Table("tenant", "check", "result", "detail")
        colours = {"ok": "green", "warning": "yellow", "error": "red"}
        for f in findings:
            table.add_row(escape(f.tenant), escape(f.check),
                          f"[{colours[f.level]}]{f.level}[/{colours[f.level]}]",
                          escape(scrub(f.detail)))
        Console().print(table)
    errors = [f for f in findings if f.level == "error"]
    raise typer.Exit(2 if any(f.config for f in errors) else 1 if errors else 0)


@tenants_app.command("run")
def tenants_run(
    names: list[str] = typer.Argument(None, help="Tenants to run (default: all)."),
    backfill: bool = typer.Option(False, "--backfill", help="A backfill instead of a sync."),
    tenants_dir: Path | None = TENANTS_DIR_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Send a run of each tenant to the workers now (`crmsync worker`), as beat does.

    Prints one task id per tenant. A tenant a run already holds ends its task at once with
    "already running". Exit 2 for an unknown tenant (nothing is sent), 4 when the broker
    (CRMSYNC_BROKER_URL) cannot be reached.
    """
    import os  # noqa: PLC0415

    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.tenants import list_tenants, load_tenant  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    try:
        if names:
            tenants = [load_tenant(name, tenants_dir) for name in names]
        else:
            tenants, problems = list_tenants(tenants_dir)
            for problem in problems:
                typer.echo(f"configuration error: {problem}", err=True)
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None
    if tenants_dir is not None:
        os.environ["CRMSYNC_TENANTS_DIR"] = str(tenants_dir.resolve())
    from kombu.exceptions import OperationalError  # noqa: PLC0415

    from connector.orchestration import app as celery_app  # noqa: PLC0415

    task = "crmsync.backfill" if backfill else "crmsync.sync"
    try:
        for tenant in tenants:
            sent = celery_app.send_task(task, args=(tenant.name,))
            typer.echo(f"{tenant.name}\t{task}\t{sent.id}")
    except OperationalError as error:
        raise fail(f"crmsync failed: the broker {celery_app.conf.broker_url} cannot be "
                   f"reached: {error}", 4) from None
