"""The state store: SQLite in WAL mode, one file, safe to kill at any point; or, for many
tenants, one PostgreSQL database (postgres.py, dialect.py, location.py) through the same
repositories.

`StateStore` (store.py) owns the connection, schema and transactions, and exposes the data as
repositories: `lock` (lock.py), `journal` (runs and audit, journal.py), `cursors`
(watermarks, cursors.py), `mirror` (records, identity index, links, dirty flags, mirror.py),
`ledger` (rejects, ledger.py), `admin` (the pinned mapping and a pause, admin.py),
`snapshots` (the report's tally and each run's totals, snapshots.py) and `jobs` (Salesforce
Bulk API jobs, jobs.py); `new_spool()` gives a run's `ChangeSpool` (spool.py).
`StateStoreProtocol` (protocol.py) is the interface both backends satisfy.
"""

from __future__ import annotations

from connector.state.admin import MappingPin, Pause, operator
from connector.state.jobs import BulkJob
from connector.state.journal import AuditEntry, RunRecord
from connector.state.ledger import RejectEntry
from connector.state.lock import STALE_LOCK_SECONDS
from connector.state.mirror import mirror_text, parse_ref
from connector.state.protocol import StateStoreProtocol
from connector.state.schema import MIGRATIONS, SCHEMA_VERSION
from connector.state.snapshots import Snapshot, Snapshots, TallyRow
from connector.state.spool import ChangeSpool
from connector.state.store import PageCheckpoint, StateStore, WriteOutcome, state_db_problem

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STALE_LOCK_SECONDS",
    "AuditEntry",
    "BulkJob",
    "ChangeSpool",
    "MappingPin",
    "PageCheckpoint",
    "Pause",
    "RejectEntry",
    "RunRecord",
    "Snapshot",
    "Snapshots",
    "StateStore",
    "StateStoreProtocol",
    "TallyRow",
    "WriteOutcome",
    "mirror_text",
    "operator",
    "parse_ref",
    "state_db_problem",
]
