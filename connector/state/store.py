"""The state store: SQLite in WAL mode, one file, safe to kill at any point; or a tenant's
rows in a shared PostgreSQL database (postgres.py), through the same repositories.

It holds what a run needs to be incremental, idempotent and auditable: runs, watermarks,
links between the two systems' records, a mirror of last-seen mapped values (so a run reads
only what changed and our own writes do not echo back), the audit log, the reject ledger and
the run lock. Every multi-row change is one transaction, so a crash leaves either the old or
the new state, never half of one.

`StateStore` owns the connection, the schema and transactions; the data lives in small
repositories (`store.lock`, `store.journal`, `store.cursors`, `store.mirror`,
`store.ledger`, `store.admin`: the pinned mapping and a pause, the report's
`store.snapshots`, and `store.jobs`: Salesforce Bulk API jobs). Operations that must change
several of them at once, in one transaction, are the store's own intent-level methods
(`checkpoint_page`, `record_writes`, `planned`, `finish_run`): the persistence rules live
beside the data they protect, not in the engine.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from connector.exceptions import ConfigurationError, RunLockHeld, StateStoreError
from connector.model import Change
from connector.state import _sql
from connector.state.admin import Admin
from connector.state.cursors import Cursors
from connector.state.jobs import BulkJobs
from connector.state.journal import Journal
from connector.state.ledger import Ledger
from connector.state.location import StateLocation, parse_location
from connector.state.lock import STALE_LOCK_SECONDS, RunLock
from connector.state.mirror import Mirror
from connector.state.schema import MIGRATIONS, SCHEMA_VERSION
from connector.state.snapshots import Snapshots
from connector.state.spool import ChangeSpool

PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700  # the mirror holds people's names and e-mails


@dataclass(frozen=True)
class WriteOutcome:
    """What became of one change sent (or, in a dry run, skipped): `spool_id` its row in the
    run's spool, `audit_id` its intent row in the audit (None in a dry run)."""

    spool_id: int
    change: Change
    status: str  # applied, rejected, retry_later (as the adapter's WriteResult)
    code: str | None = None
    message: str | None = None
    audit_id: int | None = None


class PageCheckpoint(NamedTuple):
    """What mirroring one page did: records new or changed, and tombstones applied."""

    changed: int
    deleted: int
    merged: int


class StateStore:
    """All persistent state of crmsync. One instance per process; not shared across threads.

    `path` is a SQLite file, or a URL (`sqlite:///...`, `postgresql://...`; see
    location.py); `tenant` names the pair whose rows a PostgreSQL store reads and writes."""

    def __init__(self, path: Path | str, *, tenant: str | None = None) -> None:
        self.location: StateLocation = parse_location(path, tenant)
        self._depth = 0  # transactions open: the outermost BEGINs, those inside are SAVEPOINTs
        if self.location.is_postgres:
            self._open_postgres()
        else:
            self._open_sqlite(self.location.path)
        self.journal = Journal(self.db, self.lock)
        self.cursors = Cursors(self.db)
        self.ledger = Ledger(self.db)
        self.mirror = Mirror(self.db, self.ledger)
        self.admin = Admin(self.db)
        self.snapshots = Snapshots(self.db)
        self.jobs = BulkJobs(self.db)

    @property
    def tenant(self) -> str | None:
        """The tenant whose rows this store holds (PostgreSQL); a SQLite file holds one pair."""
        return self.location.tenant if self.location.is_postgres else None

    def _open_postgres(self) -> None:
        from connector.state import postgres  # noqa: PLC0415 - psycopg only when asked for

        self.path = self.location  # messages name it; its str() hides a password
        self.db = postgres.connect(self.location)
        self.lock = postgres.AdvisoryRunLock(self.db, self.location, self.transaction)

    def _open_sqlite(self, path: Path) -> None:
        self.path = Path(path)
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, mode=PRIVATE_FOLDER)
        except OSError as exc:
            raise ConfigurationError(f"cannot open state DB {self.path}: {exc}") from None
        old_umask = os.umask(0o077)  # a new DB, -wal and -shm are created 0600
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise self.problem(exc) from None
        finally:
            os.umask(old_umask)
        self._make_private()
        self.lock = RunLock(self.db, self.path, self.transaction)

    def _make_private(self) -> None:
        """Take group and other access from the DB and its -wal and -shm: SQLite gives those
        the DB's own mode, so a DB made 0644 by an older crmsync would keep leaking them."""
        for suffix in ("", "-wal", "-shm"):
            file = Path(f"{self.path}{suffix}")
            try:
                mode = file.stat().st_mode & 0o777
                if mode & 0o077:
                    file.chmod(mode & PRIVATE_FILE)
            except OSError:
                continue  # absent, or not ours to change: SQLite reports real problems itself

    def problem(self, exc: sqlite3.Error) -> StateStoreError:
        """`exc` as a StateStoreError naming this DB and what to do about it."""
        return state_db_problem(self.path, exc)

    def close(self) -> None:
        self.lock.stop_heartbeat()
        self.db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_spool(self) -> ChangeSpool:
        """An empty spool for one run's changes (temporary tables of this connection)."""
        return ChangeSpool(self.db)

    # ---- schema ----------------------------------------------------------------------------

    def schema_version(self) -> int:
        if self.location.is_postgres:
            from connector.state.postgres import tenant_schema_version  # noqa: PLC0415

            return tenant_schema_version(self.db)
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise ConfigurationError(
                f"state DB {self.path} has schema version {current}, newer than this crmsync "
                f"understands ({SCHEMA_VERSION}); upgrade crmsync or use another --state path"
            )
        for version in range(current, SCHEMA_VERSION):
            with self.transaction():
                for statement in _sql.statements(MIGRATIONS[version]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {version + 1}")

    # ---- transactions ----------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, busy_means_a_run: bool = False) -> Iterator[sqlite3.Connection]:
        """One atomic unit: committed on success, rolled back on any error or kill.

        Inside another transaction it is a SAVEPOINT: its own work is undone on an error, and
        committed only with the outermost one, so an operation that needs a transaction can be
        part of a larger one. SQLite's own errors (disk full, read-only, corrupt, locked) leave
        as StateStoreError. `busy_means_a_run`: a DB kept busy by another writer for the whole
        timeout is another run at work (a run keeps the write lock through long steps such as
        planning).
        """
        if self._depth:
            with self._savepoint():
                yield self.db
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if busy_means_a_run and "locked" in str(exc):
                raise RunLockHeld(f"the state DB {self.path} stayed busy with another process's "
                                  "writes for 30 s (another crmsync run?); this run wrote "
                                  "nothing.") from None
            raise self.problem(exc) from None
        self._depth = 1
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:  # SQLite rolls back by itself on some errors (full)
                with suppress(sqlite3.Error):  # the error that brought us here says more
                    self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self.problem(exc) from None
            raise
        finally:
            self._depth = 0

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        name = f"crmsync_{self._depth}"
        self._depth += 1
        try:
            self.db.execute(f"SAVEPOINT {name}")
            yield
            self.db.execute(f"RELEASE {name}")
        except BaseException as exc:
            if self.db.in_transaction:
                with suppress(sqlite3.Error):  # the error that brought us here says more
                    self.db.execute(f"ROLLBACK TO {name}")
                    self.db.execute(f"RELEASE {name}")
            if isinstance(exc, sqlite3.Error):
                raise self.problem(exc) from None
            raise
        finally:
            self._depth -= 1

    def _run_in(self, query: str, values: Collection[str]) -> list[tuple]:
        """`query` run for `values` a bounded number at a time (its `{}` becomes `?, ?, ...`)."""
        return _sql.run_in(self.db, query, values)

    # ---- meta ------------------------------------------------------------------------------

    def meta(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
                        "DO UPDATE SET value = excluded.value", (name, value))

    def rebuild_identity(self) -> None:
        """Index the identity keys of every mirrored record (state DBs from before the index),
        and remember that the index is complete."""
        with self.transaction():
            self.mirror.rebuild_identity()
            self.set_meta("identity_complete", "1")

    # ---- intent-level operations -----------------------------------------------------------

    def checkpoint_page(
        self,
        system: str,
        object_type: str,
        records: Iterable[tuple[str, dict[str, Any]]],
        max_modified: datetime | None,
        run_id: int,
        *,
        cap: datetime | None,
        tombstones: Iterable[Any] = (),
    ) -> PageCheckpoint:
        """Mirror one page read, (record id, record) pairs, with its tombstones, and move the
        object's sync watermark to the page's newest modified time, in one transaction.

        The watermark never passes `cap` (the run's start less the system's safety lag:
        records indexed late are read again) and never moves back. A crash leaves either the
        page and its watermark, or neither, so the next run reads the page again and loses
        nothing. `cap=None`: a backfill page, which leaves the sync watermark alone.
        """
        with self.transaction():
            changed = self.mirror.save_page(system, object_type, records, max_modified, run_id)
            deleted, merged = self.mirror.apply_tombstones(system, object_type, tombstones)
            if cap is not None and max_modified is not None:
                mark = min(max_modified, cap)
                current = self.cursors.watermark(system, object_type)
                if current is None or mark > current:
                    self.cursors.set_watermark(system, object_type, mark)
        return PageCheckpoint(changed, deleted, merged)

    def record_writes(self, run_id: int, system: str, object_type: str, spool: ChangeSpool,
                      outcomes: list[WriteOutcome], *, dry_run: bool, mark_dirty: bool) -> None:
        """Each change's outcome, in one transaction: in the spool, the audit (its intent row
        resolved), the reject ledger (a change not applied is ledgered as a write reject; a
        record written resolves its write rejects) and the mirror (what was written, as the
        CRM reads it back; `mark_dirty` as in `Mirror.save_writes`). A dry run records only
        the spool."""
        with self.transaction():
            if not dry_run:
                for outcome in outcomes:
                    if outcome.status == "applied":
                        continue
                    reason = f"{outcome.code or outcome.status}: {outcome.message or ''}".strip()
                    self.ledger.reject(str(outcome.change.ref), "write", reason, run_id,
                                       outcome.change.field, outcome.code or outcome.status)
            spool.record_results([(o.spool_id, o.status, o.code, o.message) for o in outcomes])
            if dry_run:
                return
            self.journal.resolve_intents([(o.audit_id, o.status) for o in outcomes
                                          if o.audit_id is not None])
            written: dict[str, dict[str, Any]] = {}
            for outcome in outcomes:
                if outcome.status == "applied":
                    change = outcome.change
                    written.setdefault(change.record_id, {})[change.field] = change.after
            if written:
                self.mirror.save_writes(system, object_type, written, run_id,
                                        mark_dirty=mark_dirty)
                self.ledger.resolve([f"{system}:{object_type}:{rid}" for rid in written],
                                    "write")

    def finish_run(self, run_id: int, status: str, counts: dict[str, Any],
                   api_calls: dict[str, Any], message: str | None = None, *,
                   totals: dict[str, Any] | None = None) -> None:
        """Record a run's end and the `totals` it ended with (`Snapshots.save`), in one
        transaction: a report never sees a finished run without its totals, or totals of a
        run still going. None: the run could not count them; it finishes all the same."""
        with self.transaction():
            self.journal.finish_run(run_id, status, counts, api_calls, message)
            if totals is not None:
                self.snapshots.save(run_id, totals)

    def planned(self, scope: str, mapping_sha: str, *, replan: Collection[str] = ()) -> None:
        """After a run planned every dirty record and applied the plan: clear the dirty flags,
        mark again `replan` (records re-read and found changed while writing) and those a
        changed record left behind (`Mirror.left_behind`), and, when `scope` was "all",
        remember the mapping planned with (`mapping_sha`), so the next run plans only changes.
        One transaction: a crash leaves the flags as they were, and the next run plans again.
        """
        with self.transaction():
            self.mirror.clear_dirty()
            self.mirror.mark_dirty(set(replan) | self.mirror.left_behind)
            if scope == "all":
                self.set_meta("planned_mapping", mapping_sha)


def state_db_problem(path: Path, exc: sqlite3.Error) -> StateStoreError:
    """A SQLite error as a StateStoreError that says what is wrong with the file and what to
    do, instead of `sqlite3.OperationalError: ...` from deep inside a run."""
    text = str(exc)
    lowered = text.lower()
    writable = os.access(path, os.W_OK) if path.exists() else os.access(path.parent, os.W_OK)
    if "not a database" in lowered or "malformed" in lowered:
        message = (f"state DB {path} is not a crmsync database (or is corrupt): {text}. Restore "
                   "it from a backup, or point --state / CRMSYNC_STATE_PATH at another file")
    elif "readonly" in lowered or "read-only" in lowered or (
            "unable to open" in lowered and not (writable and os.access(path.parent, os.W_OK))):
        message = (f"state DB {path} is read-only: {text}. crmsync writes it on every run: "
                   "check the permissions of the file and its folder, and the mount")
    elif "disk is full" in lowered or "database or disk is full" in lowered:
        message = f"state DB {path}: the disk is full ({text}). Free some space, then rerun"
    elif "locked" in lowered or "busy" in lowered:
        message = (f"state DB {path} is locked by another process ({text}); crmsync waited "
                   "30 s. Is another program (a DB browser, a backup) holding it?")
    else:
        message = f"state DB {path}: {type(exc).__name__}: {text}"
    return StateStoreError(message)


__all__ = ["PRIVATE_FILE", "PRIVATE_FOLDER", "STALE_LOCK_SECONDS", "PageCheckpoint",
           "StateStore", "WriteOutcome", "state_db_problem"]
