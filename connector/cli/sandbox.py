"""`crmsync sandbox serve`: the local HubSpot + Salesforce emulator."""

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
    setup_logging,
)

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

    setup_logging(log_format, log_level, verbose)

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

