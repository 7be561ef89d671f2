"""Fan-out of tenant runs over Celery workers: many HubSpot-Salesforce pairs, many machines.

One task per tenant run (`crmsync.sync`, `crmsync.backfill`: tasks.py), a beat schedule entry
per tenant (its `sync_every`), RabbitMQ as the broker. Workers start with `crmsync worker`
(or `celery -A connector.orchestration worker`); beat with `crmsync worker --beat` on one
machine, or `celery -A connector.orchestration beat` beside the workers.

Why a redelivered task is safe: tasks are acknowledged late (after the run), so a worker
killed mid-run leaves its message to be delivered again, to another worker. The tenant's
run lock (a PostgreSQL advisory lock: connector/state/postgres.py) ended with the dead
worker's connection, so the redelivered run takes it, marks the killed run interrupted,
settles its intended writes against the CRM (audit before write) and continues. A task that
finds its tenant locked by a live run ends at once: "already running".

The worker's own settings (never a tenant's) come from its environment:

| variable | default | what |
|---|---|---|
| CRMSYNC_BROKER_URL | amqp://guest:guest@127.0.0.1:5672// | the broker (RabbitMQ) |
| CRMSYNC_RESULT_BACKEND | none | where task results go (rpc:// to read them back) |
| CRMSYNC_QUEUE | crmsync | the queue workers consume and tasks are sent to |
| CRMSYNC_TENANTS_DIR | ./tenants | the tenant registry (connector/tenants.py) |
| CRMSYNC_REDELIVERED_WAIT_SECONDS | 60 | a redelivered task's wait for a dead worker's lock |
"""

from __future__ import annotations

from connector.orchestration.celery_app import app, make_app, tenant_schedule

__all__ = ["app", "make_app", "tenant_schedule"]
