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
    seed: int = typer.Option(200, metavar="N",
                             help="Sandbox size: organisations (about 3x as many people)."),
    state: Path | None = typer.Option(
        None, "--state", metavar="PATH", show_default=False,
        help="State DB for the demo, recreated on every run. Default: crmsync-demo.db in a "
             "folder of your own under the system's temporary directory (the demo prints "
             "where), never in the current directory. The HTML report is written beside it, "
             "ending in .html."),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """See crmsync work, offline: sandbox, backfill, a few CRM edits, an incremental sync.

    Starts the built-in HubSpot + Salesforce sandbox on 127.0.0.1 with seeded data, backfills,
    changes some records as people would, syncs, and prints what changed and why. Ends by
    writing the sync's HTML report (as `crmsync report` does) and printing its path.
    """
    from connector.demo import run_demo  # noqa: PLC0415
    from connector.reporting import print_report, stdout_console  # noqa: PLC0415
    from connector.runtime import RichProgress  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    console = stdout_console()
    state = state or _demo_state()
    # Bars are drawn only while a run reads (RichProgress); the story and the reports are
    # printed between reads, after stopping any bars a failed read left drawn.
    bars = RichProgress() if sys.stderr.isatty() else None

    def say(text: str) -> None:
        if bars is not None:
            bars.stop()
        console.print(text, markup=False, highlight=False)

    def show(report, with_changes: bool) -> None:
        if bars is not None:
            bars.stop()
        print_report(report, console, show_changes=with_changes)

    if bars is None:
        _, sync, _ = run_demo(seed=seed, state_path=state, say=say, show=show)
    else:
        with bars:
            _, sync, _ = run_demo(seed=seed, state_path=state, say=say, show=show,
                                  progress=bars)
    raise typer.Exit(0 if sync.exit_code in (0, 1) else sync.exit_code)


def _demo_state() -> Path:
    """crmsync-demo.db in a private folder under the temporary directory (TMPDIR, else /tmp):
    a demo leaves nothing in a checkout, and another user's demo is not in the way."""
    import getpass  # noqa: PLC0415
    import os  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from connector.cli._common import fail  # noqa: PLC0415

    folder = Path(tempfile.gettempdir()) / f"crmsync-demo-{getpass.getuser()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
        raise fail(f"{folder} belongs to another user: pass --state PATH", 2)
    return folder / "crmsync-demo.db"
