"""`crmsync demo`: see crmsync work, offline."""

from __future__ import annotations

import sys
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


@app.command("demo")
def demo_command(
    seed: int = typer.Option(200, help="Sandbox size: organisations (about 3x as many people)."),
    state: Path = typer.Option(Path("crmsync-demo.db"), "--state",
                               help="State DB for the demo (recreated on every run); the "
                                    "HTML report is written beside it, ending in .html."),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """See crmsync work, offline: sandbox, backfill, a few CRM edits, an incremental sync.

    Starts the built-in HubSpot + Salesforce sandbox on 127.0.0.1 with seeded data, backfills,
    changes some records as people would, syncs, and prints what changed and why. Ends by
    writing the sync's HTML report (as `crmsync report` does) and printing its path.
    """
    from rich.console import Console  # noqa: PLC0415

    from connector.demo import run_demo  # noqa: PLC0415
    from connector.reporting import print_report  # noqa: PLC0415
    from connector.runtime import RichProgress  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
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


