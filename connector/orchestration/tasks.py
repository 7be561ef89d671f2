"""The tasks: one run of one tenant each. What a run does is the engine's; what a task adds
is finding the tenant, waiting out a dead worker's lock when redelivered, and a summary."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from connector.exceptions import ConfigurationError, CrmsyncError
from connector.orchestration.celery_app import app

log = logging.getLogger("crmsync.orchestration")

ALREADY_RUNNING = "already running"


class TenantRunFailed(Exception):
    """A tenant's run failed (exit 2 or 4: its settings or mapping, a CRM, its state). The
    task fails, visibly, and is not delivered again: rerunning cannot fix it by itself."""


@app.task(name="crmsync.sync", bind=True)
def sync(self: Any, tenant: str, dry_run: bool = False,
         replan_all: bool = False) -> dict[str, Any]:
    """One incremental run of `tenant`."""
    return run_tenant(tenant, "sync", redelivered=_redelivered(self),
                      dry_run=dry_run, replan_all=replan_all)


@app.task(name="crmsync.backfill", bind=True)
def backfill(self: Any, tenant: str, dry_run: bool = False) -> dict[str, Any]:
    """A backfill of `tenant` (resumable: a redelivered one continues where it stopped)."""
    return run_tenant(tenant, "backfill", redelivered=_redelivered(self), dry_run=dry_run)


def _redelivered(task: Any) -> bool:
    return bool((task.request.delivery_info or {}).get("redelivered"))


# A scheduled tenant run meets the guards a `crmsync sync` meets (connector/sync/guards.py):
# the pinned mapping, the blast radius, the pause. A new tenant's first scheduled run may start
# from an empty state DB (nobody is there to run its backfill by hand); being its first full
# run, it is exempt from the record limits as a first backfill is. Accepting a mapping change
# or a large write is an admin's decision: `crmsync sync --tenant NAME --accept-mapping-change`.
SCHEDULED_GUARDS = {"allow_empty_state": True}


def run_tenant(name: str, kind: str, *, redelivered: bool = False,
               **options: Any) -> dict[str, Any]:
    """Run `kind` ("sync" or "backfill") for the tenant `name`; a summary of the run.

    A tenant locked by a live run: a summary with status "already running", at once. A
    redelivered task (its first worker died mid-run) waits up to
    CRMSYNC_REDELIVERED_WAIT_SECONDS for the lock first: the dead worker's session, and its
    lock, may take a moment to end.
    """
    from connector.runtime import open_engine  # noqa: PLC0415 - the SDKs load per run
    from connector.sync import Guards  # noqa: PLC0415
    from connector.tenants import load_tenant  # noqa: PLC0415

    started = time.monotonic()
    try:
        settings = load_tenant(name).settings()
        wait = float(os.environ.get("CRMSYNC_REDELIVERED_WAIT_SECONDS", "60"))
        holder = _wait_for_lock(settings, name, wait if redelivered else 0)
        if holder is not None:
            return _already_running(name, kind, holder, started)
        with open_engine(settings=settings, tenant=name) as engine:
            report = getattr(engine, kind)(guards=Guards(**SCHEDULED_GUARDS), **options)
    except CrmsyncError as exc:  # before a run could start: settings, mapping, state
        log.error("tenant %s: %s failed: %s", name, kind, exc,
                  extra={"fields": {"tenant": name, "kind": kind}})
        kind_of = "configuration error: " if isinstance(exc, ConfigurationError) else ""
        raise TenantRunFailed(f"tenant {name}: {kind}: {kind_of}{exc}") from None
    if report.status == "stopped" and report.run_id is None:  # lost a race for the lock
        return _already_running(name, kind, None, started, report.message)
    summary = {"tenant": name, "kind": kind, "status": report.status,
               "exit_code": report.exit_code, "run_id": report.run_id,
               "planned": report.planned, "applied": report.applied,
               "message": report.message, "redelivered": redelivered,
               "pid": os.getpid(), "seconds": round(time.monotonic() - started, 3)}
    log.info("tenant %s: %s %s (run %s)", name, kind, report.status, report.run_id,
             extra={"fields": summary})
    if report.exit_code in (2, 4):
        raise TenantRunFailed(f"tenant {name}: {kind} {report.status}: {report.message}")
    return summary


def _wait_for_lock(settings: Any, name: str, seconds: float) -> dict[str, Any] | None:
    """Who holds the tenant's lock after waiting up to `seconds` for it to go; None: free."""
    from connector.state import StateStore  # noqa: PLC0415
    from connector.state.location import parse_location  # noqa: PLC0415

    location = parse_location(settings.state_location(), name)
    if not location.is_postgres and not (location.path and location.path.exists()):
        return None  # a new SQLite store: nobody can hold it
    deadline = time.monotonic() + seconds
    with StateStore(settings.state_location(), tenant=name) as store:
        while (holder := store.lock.holder()) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
    return holder


def _already_running(name: str, kind: str, holder: dict[str, Any] | None, started: float,
                     message: str | None = None) -> dict[str, Any]:
    who = (f" ({holder['owner']}, pid {holder['pid']} on {holder['host']})" if holder else "")
    text = message or f"{ALREADY_RUNNING}: another run of tenant {name}{who} holds its lock"
    log.warning("tenant %s: %s not started: %s", name, kind, text,
                extra={"fields": {"tenant": name, "kind": kind, "status": ALREADY_RUNNING}})
    return {"tenant": name, "kind": kind, "status": ALREADY_RUNNING, "exit_code": 3,
            "run_id": None, "message": text, "pid": os.getpid(),
            "seconds": round(time.monotonic() - started, 3)}
