"""The Celery app: broker, queue, delivery guarantees, and the beat schedule per tenant."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery

from connector.tenants import list_tenants

log = logging.getLogger("crmsync.orchestration")

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_QUEUE = "crmsync"


def tenant_schedule() -> dict[str, dict[str, Any]]:
    """One beat entry per tenant with a `sync_every`: a sync task every that often. A tick
    expires when the next one is due: a tenant whose runs take longer than its interval, or
    workers too busy to keep up, skip ticks instead of piling them up in the queue. A tenant
    file that cannot be read is left out, with a warning (the others keep their schedule)."""
    tenants, problems = list_tenants()
    for problem in problems:
        log.warning("tenant left out of the schedule: %s", problem)
    return {
        f"sync {tenant.name}": {
            "task": "crmsync.sync",
            "schedule": tenant.sync_every,
            "args": (tenant.name,),
            "options": {"expires": tenant.sync_every.total_seconds()},
        }
        for tenant in tenants if tenant.sync_every is not None
    }


def make_app(*, broker: str | None = None, backend: str | None = None,
             queue: str | None = None) -> Celery:
    """The app, configured from the worker's environment (see the package docstring) or the
    arguments.

    - `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged when its run
      ends, so a run whose worker dies is delivered again (RabbitMQ does so as soon as the
      dead worker's connection closes);
    - `worker_prefetch_multiplier=1`: a worker holds one message beyond the one it runs, not
      four: a run can take minutes, and prefetched tenants would wait behind it;
    - `worker_cancel_long_running_tasks_on_connection_loss`: a worker cut off from the broker
      stops its run (the broker gives the message to another worker; the tenant lock keeps
      the two from overlapping meanwhile);
    - JSON only: a task's arguments are a tenant name and flags, never pickled objects.
    """
    backend = backend or os.environ.get("CRMSYNC_RESULT_BACKEND") or None
    queue = queue or os.environ.get("CRMSYNC_QUEUE") or DEFAULT_QUEUE
    broker = broker or os.environ.get("CRMSYNC_BROKER_URL") or DEFAULT_BROKER
    celery = Celery("crmsync", broker=broker, backend=backend,
                    include=["connector.orchestration.tasks"])
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        task_ignore_result=backend is None,
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
        beat_schedule=tenant_schedule(),
    )
    return celery


app = make_app()
