"""`crmsync worker`: a Celery worker that runs tenants' syncs and backfills
(connector/orchestration), with the beat scheduler on request."""

from __future__ import annotations

import os
from enum import StrEnum
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


class Pool(StrEnum):
    prefork = "prefork"
    solo = "solo"
    threads = "threads"


@app.command("worker")
def worker_command(
    concurrency: int = typer.Option(
        1, "--concurrency", "-c", min=1,
        help="Tenant runs at once in this worker. Runs wait on their own CRMs' rate limits "
             "more than on the CPU: a few per core is reasonable."),
    pool: Pool = typer.Option(
        Pool.prefork, "--pool",
        help="prefork: a process per run slot (a crash takes one run); solo: runs one at a "
             "time in this process; threads: a thread per slot."),
    beat: bool = typer.Option(
        False, "--beat",
        help="Also send each tenant's sync on its schedule (`sync_every`). Run exactly one "
             "beat in the whole deployment, or every tick is sent twice."),
    name: str | None = typer.Option(
        None, "--name", show_default=False,
        help="The worker's name (default crmsync-PID@HOST): unique per worker."),
    tenants_dir: Path | None = typer.Option(
        None, "--tenants-dir", show_default=False,
        help="The tenant registry (default: CRMSYNC_TENANTS_DIR, else ./tenants)."),
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Run tenants' syncs and backfills sent through the broker, until stopped.

    The broker is CRMSYNC_BROKER_URL (default amqp://guest:guest@127.0.0.1:5672//, RabbitMQ),
    the queue CRMSYNC_QUEUE (default crmsync). Each tenant's settings come from its own files
    (`crmsync tenants list`), never from this process's environment. SIGTERM lets the runs
    under way finish; a worker killed outright has its runs delivered to another worker.
    The same as `celery -A connector.orchestration worker`.
    """
    import logging  # noqa: PLC0415

    from connector.runtime import LOGGER_ROOTS  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    for root in LOGGER_ROOTS:  # crmsync's lines once, in crmsync's format; Celery's in its own
        logging.getLogger(root).propagate = False
    if tenants_dir is not None:
        os.environ["CRMSYNC_TENANTS_DIR"] = str(tenants_dir.resolve())
    from connector.orchestration import app as celery_app  # noqa: PLC0415 - reads the registry

    argv = ["worker", f"--concurrency={concurrency}", f"--pool={pool.value}",
            f"--hostname={name or f'crmsync-{os.getpid()}@%h'}",
            f"--loglevel={(LogLevel.debug if verbose else log_level).value.upper()}",
            f"--queues={celery_app.conf.task_default_queue}",
            "--without-gossip", "--without-mingle"]
    celery_app.conf.worker_redirect_stdouts = False
    if beat:
        argv.append("--beat")
    celery_app.worker_main(argv)
