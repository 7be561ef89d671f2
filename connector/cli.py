"""The `crmsync` command: parse arguments, call the library, print. No logic lives here."""

from __future__ import annotations

import logging
import signal
import sys
import traceback
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


def _setup_logging(log_format: LogFormat, log_level: LogLevel, verbose: bool) -> None:
    """Every command starts here, so logs look the same and --verbose means the same."""
    from connector.runtime import configure_logging  # noqa: PLC0415 - keep start-up light

    configure_logging(log_format.value, LogLevel.debug.value if verbose else log_level.value)


def _settings(env_file: Path | None):
    """Settings from the environment and `--env-file` (which must then exist) or ./.env."""
    from connector.settings import load_settings  # noqa: PLC0415

    return load_settings(env_file=env_file or Path(".env"), require_env_file=env_file is not None)


def _fail(message: str, code: int) -> typer.Exit:
    """One scrubbed message on stderr and the exit code; `raise _fail(...)`."""
    from connector.exceptions import scrub  # noqa: PLC0415

    typer.echo(scrub(message), err=True)
    return typer.Exit(code)


# ---- mappings (core issue) ---------------------------------------------------------------

mappings_app = typer.Typer(
    help="Check and explain the mapping YAML that admins edit (edit -> validate -> explain).",
    no_args_is_help=True,
)
app.add_typer(mappings_app, name="mappings")


@mappings_app.command("validate")
def mappings_validate(
    files: list[Path] = typer.Argument(
        None, help="Mapping files to check (default: the shipped mappings/default.yaml)."
    ),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Check mapping files; print every problem as FILE:LINE:COL: message.

    Exit 0 when every file is valid, 2 when any has a problem. Nothing is loaded from a file
    with problems.
    """
    _setup_logging(log_format, log_level, verbose)
    from connector.exceptions import MappingError  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415

    failed = False
    for file in files or [None]:
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
    _setup_logging(log_format, log_level, verbose)
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
    mapping: Path | None = typer.Option(None, "--mapping", help="Mapping YAML to use."),
    today: str | None = typer.Option(
        None, "--today", help="Evaluate trigger windows as of this date (YYYY-MM-DD)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Show the canonical view of the given records and the rule behind every value."""
    _setup_logging(log_format, log_level, verbose)
    import json  # noqa: PLC0415
    from datetime import date  # noqa: PLC0415

    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.explain import explain, read_records, render_text  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415

    if not hubspot and not salesforce:
        raise typer.BadParameter("give at least one --hubspot or --salesforce record file")
    try:
        as_of = date.fromisoformat(today) if today else date.today()
    except ValueError:
        raise typer.BadParameter(f"--today {today!r} is not a date (YYYY-MM-DD)") from None
    try:
        loaded = load_mapping(mapping)
        records = [("hubspot", obj, raw) for path in hubspot
                   for obj, raw in read_records(path, "hubspot")]
        records += [("salesforce", obj, raw) for path in salesforce
                    for obj, raw in read_records(path, "salesforce")]
    except ConfigurationError as error:
        raise _fail(str(error), 2) from None
    report = explain(loaded, records, as_of)
    typer.echo(json.dumps(report, indent=2) if as_json else render_text(report))


# ---- sandbox (sandbox issue) -------------------------------------------------------------

sandbox_app = typer.Typer(
    help="A local HubSpot + Salesforce emulator (HTTPS on 127.0.0.1) for demos and tests.",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox")

_FAULTS_HELP = (
    "Fault injection: comma-separated TARGET:KIND=RATE entries (spaces allowed), e.g. "
    "'hubspot.search:429=0.1, salesforce.query:503=0.05, *:drop=0.02, "
    "salesforce.composite:lock=0.1, seed=7'. "
    "KIND: 429 (HubSpot 429 TEN_SECONDLY_ROLLING; Salesforce 403 REQUEST_LIMIT_EXCEEDED), "
    "500, 503, slow (answer after delay seconds), drop (close without answer), "
    "session (Salesforce token expires), partial (per record in batch writes), "
    "lock (per record UNABLE_TO_LOCK_ROW). TARGET: hubspot.list, hubspot.read, hubspot.search, "
    "hubspot.batch_read, hubspot.batch_update, hubspot.associations, hubspot.properties, "
    "salesforce.token, salesforce.query, salesforce.sobject, salesforce.describe, "
    "salesforce.limits, salesforce.composite, hubspot.*, salesforce.* or *. "
    "seed=N seeds the draws; delay=SECONDS sets how long slow waits (default 3)."
)


@sandbox_app.command("serve")
def sandbox_serve(
    port: int = typer.Option(0, "--port", help="TCP port on 127.0.0.1 (0: any free port)."),
    seed: int | None = typer.Option(
        None, "--seed", help="Generate data: N organisations (~3N persons), seeded with N."
    ),
    organisations: int | None = typer.Option(
        None, "--organisations", help="With --seed: this many organisations instead of N."
    ),
    fixture: Path | None = typer.Option(
        None, "--fixture", help="Load an exact scenario from a JSON fixture (sandbox dump format)."
    ),
    faults: str | None = typer.Option(None, "--faults", help=_FAULTS_HELP),
    churn: str | None = typer.Option(
        None, "--churn", metavar="RATE",
        help="Behave like a busy CRM: change records in both systems at RATE (e.g. 20/s, "
        "300/min) while clients read: edits, creates, deletes, merges, associations. Seeded "
        "by --seed (or 0)."
    ),
    search_lag: float = typer.Option(
        0.0, "--search-lag", metavar="SECONDS", min=0,
        help="HubSpot search shows a record only this long after its last change (list and "
        "read at once), as HubSpot's search index lags."
    ),
    env_file: Path | None = typer.Option(
        None, "--env-file", help="Also write the settings as KEY=VALUE lines here (0600; removed "
        "on exit)."
    ),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Serve HubSpot CRM v3 and Salesforce REST v59.0 on one HTTPS port until Ctrl-C.

    Prints the connection settings as KEY=VALUE lines (and writes them to --env-file):
    CRMSYNC_HUBSPOT_ACCESS_TOKEN, CRMSYNC_HUBSPOT_BASE_URL, CRMSYNC_SALESFORCE_INSTANCE_URL,
    CRMSYNC_SALESFORCE_CLIENT_ID, CRMSYNC_SALESFORCE_CLIENT_SECRET, CRMSYNC_CA_BUNDLE.
    Load them into crmsync with: set -a; . ENV_FILE; set +a

    hubspot-api-client: HubSpot(access_token=CRMSYNC_HUBSPOT_ACCESS_TOKEN,
    host=CRMSYNC_HUBSPOT_BASE_URL, ssl_ca_cert=CRMSYNC_CA_BUNDLE, retry=False).

    simple-salesforce: s = requests.Session(); s.verify = CRMSYNC_CA_BUNDLE;
    s.trust_env = False; token = s.post(CRMSYNC_SALESFORCE_INSTANCE_URL +
    "/services/oauth2/token", data=dict(grant_type="client_credentials",
    client_id=CRMSYNC_SALESFORCE_CLIENT_ID, client_secret=CRMSYNC_SALESFORCE_CLIENT_SECRET)
    ).json()["access_token"]; sf = Salesforce(instance_url=CRMSYNC_SALESFORCE_INSTANCE_URL,
    session_id=token, session=s, version="59.0").

    Admin (no token): GET /__sandbox/counters, /__sandbox/dump,
    /__sandbox/records/hubspot/TYPE/ID, /__sandbox/records/salesforce/SOBJECT/ID;
    POST /__sandbox/faults (body: a fault spec), /__sandbox/expire-sessions.
    """
    from connector.sandbox.churn import parse_rate  # noqa: PLC0415
    from connector.sandbox.faults import FaultSpecError, parse_faults  # noqa: PLC0415
    from connector.sandbox.serve import serve  # noqa: PLC0415

    _setup_logging(log_format, log_level, verbose)

    if seed is not None and fixture is not None:
        raise typer.BadParameter("give --seed or --fixture, not both")
    try:
        if faults:
            parse_faults(faults)
    except FaultSpecError as error:
        raise typer.BadParameter(str(error), param_hint="--faults") from None
    try:
        churn_rate = parse_rate(churn) if churn else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--churn") from None
    serve(port=port, seed=seed, organisations=organisations, fixture=fixture, faults=faults,
          env_file=env_file, echo=typer.echo, notice=lambda text: typer.echo(text, err=True),
          churn=churn_rate, search_lag=search_lag)

# ---- check (adapters issue) --------------------------------------------------------------


# ---- shared by the commands below --------------------------------------------------------

MAPPING_OPTION = typer.Option(None, "--mapping", help="Mapping YAML (default: "
                              "CRMSYNC_MAPPING_PATH, else the shipped mappings/default.yaml).")
STATE_OPTION = typer.Option(None, "--state", help="State DB (default: CRMSYNC_STATE_PATH, "
                            "else ./crmsync.db).")
ENV_FILE_OPTION = typer.Option(
    None, "--env-file", show_default=False,
    help="Settings file to read (KEY=VALUE lines, UTF-8). Default: ./.env when it exists; a "
         "file named here must exist.",
)
JSON_OPTION = typer.Option(False, "--json", help="Print a machine-readable JSON report.")
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Do everything but write to the CRMs.")

# SQLite stores integers in 8 bytes; a larger run id cannot name a run.
_LARGEST_RUN_ID = 2**63 - 1


# ---- check (adapters issue) --------------------------------------------------------------


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

    _setup_logging(log_format, log_level, verbose)
    try:
        settings = _settings(env_file)
        report = run_check(settings, load_mapping(mapping or settings.mapping_path))
    except ConfigurationError as error:
        raise _fail(f"configuration error: {error}", 2) from None
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


# ---- runs (engine issue) -----------------------------------------------------------------


def _finish(report, as_json: bool) -> None:
    """Print a run report; exit with its code (0 ok, 1 rejects, 2 config, 3 stopped, 4 failed)."""
    from rich.console import Console  # noqa: PLC0415

    from connector.reporting import dumps, print_report  # noqa: PLC0415

    if as_json:
        typer.echo(dumps(report.to_dict()))
    else:
        print_report(report, Console())
    raise typer.Exit(report.exit_code)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _engine_run(action, *, mapping, state, env_file, progress=False, as_json=False):
    """Build the engine and run `action(engine)`; configuration errors exit 2 before any read."""
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.runtime import RichProgress, open_engine  # noqa: PLC0415

    # systemd and orchestrators stop a job with SIGTERM: stop as cleanly as on Ctrl-C
    signal.signal(signal.SIGTERM, _interrupt)
    bars = RichProgress() if progress and not as_json and sys.stderr.isatty() else None
    try:
        with open_engine(settings=_settings(env_file), mapping_path=mapping, state_path=state,
                         progress=bars) as engine:
            if bars is None:
                return action(engine)
            with bars:
                return action(engine)
    except ConfigurationError as error:
        raise _fail(f"configuration error: {error}", 2) from None


@app.command("sync")
def sync_command(
    dry_run: bool = DRY_RUN_OPTION,
    replan_all: bool = typer.Option(
        False, "--replan-all",
        help="Plan every mirrored record, not only those changed since they were last planned "
             "(the first run after a mapping change does this anyway).",
    ),
    as_json: bool = JSON_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """One incremental run: read changes since the last run, reconcile, write the differences.

    Made for cron, systemd timers and orchestrators: no prompts, logs on stderr. Exit codes:
    0 ok, 1 finished with rejected records or writes pending retry, 2 configuration error,
    3 stopped early and resumable (rate budget, lock held or lost, SIGTERM), 4 failed
    (also an unusable state DB).
    """
    _setup_logging(log_format, log_level, verbose)
    report = _engine_run(lambda e: e.sync(dry_run=dry_run, replan_all=replan_all),
                         mapping=mapping, state=state, env_file=env_file, as_json=as_json)
    _finish(report, as_json)


@app.command("backfill")
def backfill_command(
    since: datetime | None = typer.Option(None, help="Only records modified at or after this."),
    until: datetime | None = typer.Option(None, help="Only records modified before this."),
    objects: str | None = typer.Option(
        None, help="Comma-separated objects, e.g. hubspot.contacts,salesforce.Lead (default all)."
    ),
    dry_run: bool = DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Read everything (a full backfill), then reconcile and write the differences.

    Resumable: after Ctrl-C or a kill, run it again and objects already read are skipped.
    Shows a progress bar per object on a terminal. Exit codes as for `sync`.
    """
    from connector.sync import parse_objects  # noqa: PLC0415

    _setup_logging(log_format, log_level, verbose)

    def action(engine):
        return engine.backfill(since=_utc(since), until=_utc(until),
                               objects=parse_objects(objects), dry_run=dry_run)

    report = _engine_run(action, mapping=mapping, state=state, env_file=env_file,
                         progress=True, as_json=as_json)
    _finish(report, as_json)


@app.command("plan")
def plan_command(
    output: Path | None = typer.Option(None, "-o", "--output", help="Save the plan as JSON."),
    as_json: bool = JSON_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Read and reconcile, then show field-level changes with the rule behind each; write nothing.

    Save with -o plan.json and apply later with `crmsync apply plan.json`.
    """
    _setup_logging(log_format, log_level, verbose)
    report, document = _engine_run(lambda e: e.plan(), mapping=mapping, state=state,
                                   env_file=env_file, as_json=as_json)
    if output is not None and report.exit_code in (0, 1):
        _write_private(output, document.to_json())
        typer.echo(f"plan with {len(document.changes)} change(s) saved to {output}", err=True)
    _finish(report, as_json)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600): a plan holds names and e-mail addresses."""
    import os  # noqa: PLC0415

    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


@app.command("apply")
def apply_command(
    plan_file: Path = typer.Argument(..., help="A plan saved by `crmsync plan -o`."),
    dry_run: bool = DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Apply a saved plan; refused when a record it touches changed since it was made."""
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.sync import PlanDocument  # noqa: PLC0415

    _setup_logging(log_format, log_level, verbose)
    try:
        document = PlanDocument.from_json(plan_file.read_text(encoding="utf-8"), str(plan_file))
    except OSError as error:
        raise _fail(f"cannot read {plan_file}: {error.strerror}", 2) from None
    except UnicodeDecodeError as error:
        raise _fail(f"cannot read {plan_file}: not UTF-8 (byte offset {error.start}); "
                    "not a crmsync plan", 2) from None
    except ConfigurationError as error:
        raise _fail(str(error), 2) from None
    report = _engine_run(lambda e: e.apply(document, dry_run=dry_run), mapping=mapping,
                         state=state, env_file=env_file, as_json=as_json)
    _finish(report, as_json)


@app.command("rollback")
def rollback_command(
    run_id: int = typer.Argument(..., help="The run whose changes to undo (see `crmsync status`)."),
    dry_run: bool = DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
    mapping: Path | None = MAPPING_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Restore the before-values of a run, where fields still hold what that run wrote.

    Fields someone changed since are skipped and listed.
    """
    from connector.exceptions import ConfigurationError  # noqa: PLC0415

    _setup_logging(log_format, log_level, verbose)

    def action(engine):
        if not 1 <= run_id <= _LARGEST_RUN_ID:
            raise ConfigurationError(f"no run {run_id} in {engine.store.path}")
        return engine.rollback(run_id, dry_run=dry_run)

    report = _engine_run(action, mapping=mapping, state=state, env_file=env_file,
                         as_json=as_json)
    _finish(report, as_json)


def _open_state(state: Path | None, env_file: Path | None):
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.state import StateStore  # noqa: PLC0415

    try:
        path = state or _settings(env_file).state_path
        if not Path(path).exists():
            raise ConfigurationError(f"no state DB at {path}: run `crmsync sync` or "
                                     "`crmsync backfill` first (or pass --state)")
        return StateStore(path)
    except ConfigurationError as error:
        raise _fail(str(error), 2) from None


@app.command("status")
def status_command(
    runs: int = typer.Option(10, help="How many recent runs to show."),
    as_json: bool = JSON_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Last runs, watermarks, open rejects and API usage, from the state DB (no API calls)."""
    from rich.console import Console  # noqa: PLC0415

    from connector.reporting import dumps, print_status, status_data  # noqa: PLC0415

    _setup_logging(log_format, log_level, verbose)
    with _open_state(state, env_file) as store:
        data = status_data(store, runs)
    if as_json:
        typer.echo(dumps(data))
    else:
        print_status(data, Console())


@app.command("rejects")
def rejects_command(
    run: int | None = typer.Option(None, "--run", help="Only rejects seen in this run."),
    as_json: bool = JSON_OPTION,
    state: Path | None = STATE_OPTION,
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """The reject ledger with reasons. Rejected records are retried on the next run."""
    from rich.console import Console  # noqa: PLC0415

    from connector.reporting import dumps, print_rejects  # noqa: PLC0415

    _setup_logging(log_format, log_level, verbose)
    if run is not None and not 1 <= run <= _LARGEST_RUN_ID:
        raise _fail(f"no run {run}", 2)
    with _open_state(state, env_file) as store:
        entries = store.ledger.open(run)
    rows = [{"record": e.ref, "stage": e.stage, "field": e.field, "reason": e.reason,
             "code": e.code, "attempts": e.attempts, "first_seen": e.first_seen,
             "last_seen": e.last_seen, "last_run": e.last_run} for e in entries]
    if as_json:
        typer.echo(dumps(rows))
    elif rows:
        print_rejects(rows, Console())
    else:
        typer.echo("no open rejects")


@app.command("demo")
def demo_command(
    seed: int = typer.Option(200, help="Sandbox size: organisations (about 3x as many people)."),
    state: Path = typer.Option(Path("crmsync-demo.db"), "--state",
                               help="State DB for the demo (recreated on every run)."),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """See crmsync work, offline: sandbox, backfill, a few CRM edits, an incremental sync.

    Starts the built-in HubSpot + Salesforce sandbox on 127.0.0.1 with seeded data, backfills,
    changes some records as people would, syncs, and prints what changed and why.
    """
    from rich.console import Console  # noqa: PLC0415

    from connector.demo import run_demo  # noqa: PLC0415
    from connector.reporting import print_report  # noqa: PLC0415
    from connector.runtime import RichProgress  # noqa: PLC0415

    _setup_logging(log_format, log_level, verbose)
    console = Console()

    def show(report, with_changes: bool) -> None:
        print_report(report, console, show_changes=with_changes)

    bars = RichProgress() if sys.stderr.isatty() else None
    if bars is None:
        _, sync, _ = run_demo(seed=seed, state_path=state, say=console.print, show=show)
    else:
        with bars:
            _, sync, _ = run_demo(seed=seed, state_path=state, say=console.print, show=show,
                                  progress=bars)
    raise typer.Exit(0 if sync.exit_code in (0, 1) else sync.exit_code)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---- the last line of defence ------------------------------------------------------------

# The codes of RunReport.exit_code (connector/sync/report.py), kept here so that printing a failure
# cannot itself fail on importing the engine.
EXIT_CONFIG, EXIT_STOPPED, EXIT_FAILED = 2, 3, 4


def _failure(error: Exception) -> tuple[int, str]:
    """The exit code and the one line to print for an exception no command handled.

    By recovery class (see connector/exceptions.py), so an error class added later still
    gets the right code; anything else is a bug and says so.
    """
    from connector.exceptions import (  # noqa: PLC0415
        ConfigurationError,
        CrmsyncError,
        RunStoppedEarly,
    )

    if isinstance(error, ConfigurationError):
        return EXIT_CONFIG, f"configuration error: {error}"
    if isinstance(error, RunStoppedEarly):
        return EXIT_STOPPED, f"stopped: {error}"
    if isinstance(error, CrmsyncError):
        return EXIT_FAILED, f"crmsync failed: {error}"
    return EXIT_FAILED, (f"crmsync failed unexpectedly: {type(error).__name__}: {error}; "
                         "rerun with --log-level debug for details")


def main() -> None:
    """The `crmsync` command. Whatever goes wrong ends with a documented exit code and one
    line on stderr: an uncaught exception would exit 1, which schedulers read as "finished
    with rejects". The traceback is shown only at --log-level debug (or --verbose)."""
    # systemd and orchestrators stop a job with SIGTERM: inside a run it stops cleanly as on
    # Ctrl-C (exit 3); before a run has started it exits 130, as Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except Exception as error:  # the point of a last line of defence
        from connector.exceptions import scrub  # noqa: PLC0415

        code, message = _failure(error)
        if logging.getLogger("crmsync").isEnabledFor(logging.DEBUG):
            sys.stderr.write(scrub("".join(traceback.format_exception(error))))
        sys.stderr.write(scrub(message) + "\n")
        sys.exit(code)
