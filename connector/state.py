"""The state store: SQLite in WAL mode, one file, safe to kill at any point.

It holds what a run needs to be incremental, idempotent and auditable: runs, watermarks,
links between the two systems' records, a mirror of last-seen mapped values (so a run reads
only what changed and our own writes do not echo back), the audit log, the reject ledger and
the run lock. Every multi-row change is one transaction, so a crash leaves either the old or
the new state, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from connector.catalog import CATALOG, identity_keys
from connector.exceptions import ConfigurationError, RunLockHeld, StateStoreError, scrub
from connector.model import Change, SourceRef, System

__all__ = [
    "SCHEMA_VERSION",
    "AuditEntry",
    "ChangeSpool",
    "RejectEntry",
    "RunRecord",
    "StateStore",
    "mirror_text",
    "state_db_problem",
]

# Each migration moves the schema from version N-1 to N; never edit one that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL,
        dry_run INTEGER NOT NULL DEFAULT 0,
        counts TEXT NOT NULL DEFAULT '{}',
        api_calls TEXT NOT NULL DEFAULT '{}',
        message TEXT
    );
    CREATE TABLE watermarks (
        system TEXT NOT NULL,
        object_type TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT,
        cursor TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (system, object_type, kind)
    );
    CREATE TABLE links (
        a TEXT NOT NULL,
        b TEXT NOT NULL,
        first_seen_run INTEGER,
        PRIMARY KEY (a, b)
    );
    CREATE TABLE mirror (
        ref TEXT PRIMARY KEY,
        system TEXT NOT NULL,
        object_type TEXT NOT NULL,
        record_id TEXT NOT NULL,
        record TEXT NOT NULL,
        modified_at TEXT,
        seen_run INTEGER
    );
    CREATE INDEX mirror_object ON mirror (system, object_type);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL,
        system TEXT NOT NULL,
        object_type TEXT NOT NULL,
        record_id TEXT NOT NULL,
        field TEXT NOT NULL,
        before TEXT,
        after TEXT,
        rule TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX audit_run ON audit (run_id);
    CREATE TABLE rejects (
        ref TEXT NOT NULL,
        field TEXT NOT NULL DEFAULT '',
        stage TEXT NOT NULL,
        reason TEXT NOT NULL,
        code TEXT,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        last_run INTEGER,
        resolved INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ref, field, stage)
    );
    CREATE TABLE lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        run_id INTEGER,
        owner TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        acquired_at TEXT NOT NULL,
        heartbeat REAL NOT NULL
    );
    """,
    # 2: incremental planning. `digest` fingerprints what planning reads of a record (all but
    # its modification time), `dirty` marks records changed since a run last planned them,
    # `identity` indexes the keys that tie records into one planning group, and `plan_dates`
    # holds the days a record's plan changes by itself (a trigger starts or expires).
    """
    ALTER TABLE mirror ADD COLUMN digest TEXT;
    ALTER TABLE mirror ADD COLUMN dirty INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX mirror_dirty ON mirror (dirty) WHERE dirty = 1;
    CREATE TABLE identity (
        key TEXT NOT NULL,
        ref TEXT NOT NULL,
        PRIMARY KEY (key, ref)
    ) WITHOUT ROWID;
    CREATE INDEX identity_ref ON identity (ref);
    CREATE INDEX links_b ON links (b);
    CREATE TABLE plan_dates (
        on_date TEXT NOT NULL,
        ref TEXT NOT NULL,
        PRIMARY KEY (on_date, ref)
    ) WITHOUT ROWID;
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (name, value)
        SELECT 'identity_complete', '1' WHERE NOT EXISTS (SELECT 1 FROM mirror);
    """,
    # 3: deletions and merges keep the mirror row, flagged, so a merge can name its survivor and
    # a record read again is revived; `token` tells a run its own lock from one taken over.
    """
    ALTER TABLE mirror ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mirror ADD COLUMN deleted_at TEXT;
    ALTER TABLE mirror ADD COLUMN merged_into TEXT;
    ALTER TABLE lock ADD COLUMN token TEXT;
    """,
    # 4: links derived from data (a shared e-mail or domain, a CRM id) were saved here and
    # re-applied by every later run, so a merge outlived the data that made it. Reconcile
    # now derives them afresh each run; this table keeps only links a person asserts, and
    # every row so far was derived. Identity keys no longer hold placeholder, free-mail or
    # role keys: a mirrored DB is re-indexed (and so planned whole) by its next plan.
    """
    DELETE FROM links;
    DELETE FROM meta WHERE name = 'identity_complete' AND EXISTS (SELECT 1 FROM mirror);
    """,
    # 5: audit before write. A run records each batch's changes as `intent` rows, committed
    # before the batch is sent, and gives each its outcome (applied, rejected, retry_later)
    # once the CRM answers. A run killed in between leaves intents, which the next run
    # resolves against the CRM (applied, or not_applied), so every change that reached a CRM
    # is audited under the run that made it, and that run can be rolled back. Rows from
    # before were written only once applied.
    """
    ALTER TABLE audit ADD COLUMN status TEXT NOT NULL DEFAULT 'applied';
    ALTER TABLE audit ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE audit ADD COLUMN batch INTEGER;
    ALTER TABLE audit ADD COLUMN resolved_at TEXT;
    CREATE INDEX audit_intent ON audit (run_id) WHERE status = 'intent';
    """,
    # 6: duplicates, two or more records of one system linked into one person or
    # organisation: one row per record, `grp` the group's first record. A run replaces the
    # rows of the records it plans, so the table holds every group found, however few
    # records the latest run planned.
    """
    CREATE TABLE duplicates (
        ref TEXT PRIMARY KEY,
        grp TEXT NOT NULL,
        entity TEXT NOT NULL,
        system TEXT NOT NULL,
        linked_by TEXT NOT NULL,
        found_run INTEGER
    );
    CREATE INDEX duplicates_grp ON duplicates (grp);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
_UPSERT_MIRROR = (
    "INSERT INTO mirror (ref, system, object_type, record_id, record, modified_at, seen_run, "
    "digest, dirty) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (ref) DO UPDATE SET "
    "record = excluded.record, modified_at = coalesce(excluded.modified_at, mirror.modified_at), "
    "seen_run = excluded.seen_run, digest = excluded.digest, "
    "dirty = CASE WHEN ? OR mirror.deleted THEN 1 ELSE mirror.dirty END, "
    "deleted = 0, deleted_at = NULL, merged_into = NULL"
)
_IN_CHUNK = 500  # bound variables per `IN (...)` query
STALE_LOCK_SECONDS = 15 * 60
PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700  # the mirror holds people's names and e-mails


def now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class RunRecord:
    id: int
    kind: str
    started_at: datetime
    ended_at: datetime | None
    status: str
    dry_run: bool
    counts: dict[str, Any]
    api_calls: dict[str, Any]
    message: str | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    run_id: int
    ref: SourceRef
    field: str
    before: Any
    after: Any
    rule: str | None
    at: datetime
    status: str = "applied"  # or intent, rejected, retry_later, not_applied (see migration 5)
    step: int = 0
    batch: int | None = None


@dataclass(frozen=True)
class RejectEntry:
    ref: str
    field: str
    stage: str
    reason: str
    code: str | None
    first_seen: datetime
    last_seen: datetime
    attempts: int
    last_run: int | None


class StateStore:
    """All persistent state of crmsync. One instance per process; not shared across threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._token: str | None = None
        self._heartbeat: LockHeartbeat | None = None
        # records marked dirty because a record they shared a key with lost it; a run that
        # clears every dirty mark after its plan marks again those found after the plan
        self.left_behind: set[str] = set()
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
        self.stop_heartbeat()
        self.db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- schema ----------------------------------------------------------------------------

    def schema_version(self) -> int:
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
                for statement in _statements(MIGRATIONS[version]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {version + 1}")

    @contextmanager
    def transaction(self, *, busy_means_a_run: bool = False) -> Iterator[sqlite3.Connection]:
        """One atomic unit: committed on success, rolled back on any error or kill.

        SQLite's own errors (disk full, read-only, corrupt, locked) leave as StateStoreError.
        `busy_means_a_run`: a DB kept busy by another writer for the whole timeout is another
        run at work (a run keeps the write lock through long steps such as planning).
        """
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if busy_means_a_run and "locked" in str(exc):
                raise RunLockHeld(f"the state DB {self.path} stayed busy with another process's "
                                  "writes for 30 s (another crmsync run?); this run wrote "
                                  "nothing.") from None
            raise self.problem(exc) from None
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

    # ---- run lock --------------------------------------------------------------------------

    def acquire_lock(self, owner: str, stale_after: float = STALE_LOCK_SECONDS) -> None:
        """Take the run lock, or raise RunLockHeld naming who holds it.

        A lock whose holder process is gone (same host) or whose heartbeat is older than
        `stale_after` seconds is stale: a killed run must not block the schedule forever.
        """
        host, pid = socket.gethostname(), os.getpid()
        token = uuid.uuid4().hex
        with self.transaction(busy_means_a_run=True) as db:
            row = db.execute("SELECT owner, pid, host, acquired_at, heartbeat FROM lock").fetchone()
            if row is not None:
                held_owner, held_pid, held_host, acquired, heartbeat = row
                alive = held_host != host or _process_alive(held_pid)
                fresh = time.time() - heartbeat < stale_after
                if alive and fresh:
                    raise RunLockHeld(
                        f"another crmsync run ({held_owner}, pid {held_pid} on {held_host}, "
                        f"since {acquired}) holds the lock in {self.path}; this run wrote "
                        "nothing. It is released when that run ends, or considered stale after "
                        f"{int(stale_after)} s without a heartbeat."
                    )
                db.execute("UPDATE runs SET status = 'interrupted', ended_at = ? WHERE id = "
                           "(SELECT run_id FROM lock) AND status = 'running'", (_iso(now()),))
                db.execute("DELETE FROM lock")
            db.execute(
                "INSERT INTO lock (id, owner, pid, host, acquired_at, heartbeat, token) "
                "VALUES (1, ?, ?, ?, ?, ?, ?)",
                (owner, pid, host, _iso(now()), time.time(), token),
            )
        self._token = token

    def heartbeat(self) -> None:
        self.db.execute("UPDATE lock SET heartbeat = ? WHERE token = ?", (time.time(), self._token))

    def start_heartbeat(self, interval: float) -> None:
        """Keep the lock fresh every `interval` seconds from a thread of its own, whatever the
        run is doing: a long write phase must not look like a dead run to the next one."""
        self.stop_heartbeat()
        if self._token is not None:
            self._heartbeat = LockHeartbeat(self.path, self._token, interval)
            self._heartbeat.start()

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def holds_lock(self) -> bool:
        """Whether the lock is still this store's: another run takes it over when it finds
        the heartbeat stale (a suspended VM, a stalled disk)."""
        if self._heartbeat is not None and self._heartbeat.lost.is_set():
            return False
        row = self.db.execute("SELECT token FROM lock").fetchone()
        return row is not None and row[0] == self._token

    def release_lock(self) -> None:
        """Release the lock if it is still ours; one taken over stays with its new holder."""
        self.stop_heartbeat()
        if self._token is not None:
            self.db.execute("DELETE FROM lock WHERE token = ?", (self._token,))
            self._token = None

    def lock_holder(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT owner, pid, host, acquired_at FROM lock").fetchone()
        return dict(zip(("owner", "pid", "host", "acquired_at"), row, strict=True)) if row else None

    # ---- runs ------------------------------------------------------------------------------

    def start_run(self, kind: str, *, dry_run: bool = False) -> int:
        """Record a run; the lock remembers it, so a killed run is marked interrupted later."""
        cursor = self.db.execute(
            "INSERT INTO runs (kind, started_at, status, dry_run) VALUES (?, ?, 'running', ?)",
            (kind, _iso(now()), int(dry_run)),
        )
        run_id = int(cursor.lastrowid)
        self.db.execute("UPDATE lock SET run_id = ? WHERE token = ?", (run_id, self._token))
        return run_id

    def finish_run(
        self,
        run_id: int,
        status: str,
        counts: dict[str, Any],
        api_calls: dict[str, Any],
        message: str | None = None,
    ) -> None:
        self.db.execute(
            "UPDATE runs SET ended_at = ?, status = ?, counts = ?, api_calls = ?, message = ? "
            "WHERE id = ?",
            (_iso(now()), status, json.dumps(counts), json.dumps(api_calls), _scrubbed(message),
             run_id),
        )

    def runs(self, limit: int = 10) -> list[RunRecord]:
        rows = self.db.execute(
            "SELECT id, kind, started_at, ended_at, status, dry_run, counts, api_calls, message "
            "FROM runs ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            RunRecord(r[0], r[1], _parse(r[2]), _parse(r[3]), r[4], bool(r[5]), json.loads(r[6]),
                      json.loads(r[7]), r[8])
            for r in rows
        ]

    def run(self, run_id: int) -> RunRecord | None:
        found = [r for r in self.runs(limit=1_000_000) if r.id == run_id]
        return found[0] if found else None

    # ---- watermarks ------------------------------------------------------------------------

    def watermark(self, system: str, object_type: str, kind: str = "sync") -> datetime | None:
        row = self.db.execute(
            "SELECT value FROM watermarks WHERE system = ? AND object_type = ? AND kind = ?",
            (system, object_type, kind),
        ).fetchone()
        return _parse(row[0]) if row else None

    def cursor(self, system: str, object_type: str, kind: str) -> str | None:
        row = self.db.execute(
            "SELECT cursor FROM watermarks WHERE system = ? AND object_type = ? AND kind = ?",
            (system, object_type, kind),
        ).fetchone()
        return row[0] if row else None

    def set_watermark(
        self,
        system: str,
        object_type: str,
        value: datetime | None,
        kind: str = "sync",
        cursor: str | None = None,
    ) -> None:
        self.db.execute(
            "INSERT INTO watermarks (system, object_type, kind, value, cursor, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (system, object_type, kind) DO UPDATE SET "
            "value = excluded.value, cursor = excluded.cursor, updated_at = excluded.updated_at",
            (system, object_type, kind, _iso(value), cursor, _iso(now())),
        )

    def clear_watermark(self, system: str, object_type: str, kind: str) -> None:
        self.db.execute(
            "DELETE FROM watermarks WHERE system = ? AND object_type = ? AND kind = ?",
            (system, object_type, kind),
        )

    def watermarks(self) -> list[tuple[str, str, str, datetime | None, str | None]]:
        rows = self.db.execute(
            "SELECT system, object_type, kind, value, cursor FROM watermarks ORDER BY 1, 2, 3"
        ).fetchall()
        return [(r[0], r[1], r[2], _parse(r[3]), r[4]) for r in rows]

    # ---- links -----------------------------------------------------------------------------

    def save_links(
        self, pairs: Iterable[tuple[SourceRef | str, SourceRef | str]], run_id: int
    ) -> None:
        """Pairs of records a person asserts are the same entity, as refs or their text.

        Never pairs derived from data (an e-mail, a domain, a CRM id): reconcile derives
        those afresh from the records each run, so fixing the data undoes the link."""
        self.db.executemany(
            "INSERT OR IGNORE INTO links (a, b, first_seen_run) VALUES (?, ?, ?)",
            [(str(a), str(b), run_id) for a, b in pairs],
        )

    def links(self) -> list[tuple[SourceRef, SourceRef]]:
        return [(parse_ref(a), parse_ref(b)) for a, b in self.link_texts()]

    def link_texts(self, refs: Collection[str] | None = None) -> list[tuple[str, str]]:
        """`links()` as the refs' text (planning only compares them), all of them or those
        with both ends in `refs`."""
        if refs is None:
            return self.db.execute("SELECT a, b FROM links ORDER BY a, b").fetchall()
        found = self._run_in("SELECT a, b FROM links WHERE a IN ({})", refs)
        return sorted({(a, b) for a, b in found if b in refs})

    # ---- mirror ----------------------------------------------------------------------------

    def mirror_page(
        self,
        system: str,
        object_type: str,
        records: Iterable[tuple[str, dict[str, Any]]],
        modified: datetime | None,
        run_id: int,
    ) -> int:
        """Mirror one page of one object, given as (record id, record) pairs sharing a modified
        time. Returns how many records are new or changed in anything planning reads; only
        those are written and marked dirty, so re-reading a record costs no planning."""
        modified_at = _iso(modified)
        return self._mirror(
            [(f"{system}:{object_type}:{rid}", system, object_type, rid, record, modified_at)
             for rid, record in records],
            run_id, mark_dirty=True,
        )

    def mirror_records(
        self,
        records: Iterable[tuple[SourceRef, dict[str, Any], datetime | None]],
        run_id: int,
        *,
        mark_dirty: bool = True,
    ) -> int:
        """`mirror_page` for records of any object. `mark_dirty=False` mirrors values a run
        has just written from its own plan: the plan already accounts for them."""
        return self._mirror(
            [(str(ref), ref.system.value, ref.object_type, ref.record_id, record, _iso(modified))
             for ref, record, modified in records],
            run_id, mark_dirty=mark_dirty,
        )

    def mirror_changed(self, system: str, object_type: str,
                       records: Iterable[tuple[str, dict[str, Any]]], run_id: int) -> list[str]:
        """`mirror_page` for records read by id (no modified time), returning the refs of those
        new or changed in anything planning reads."""
        return self._mirror_rows(
            [(f"{system}:{object_type}:{rid}", system, object_type, rid, record, None)
             for rid, record in records],
            run_id, mark_dirty=True,
        )

    def _mirror(self, rows: list[tuple[str, str, str, str, dict[str, Any], str | None]],
                run_id: int, *, mark_dirty: bool) -> int:
        return len(self._mirror_rows(rows, run_id, mark_dirty=mark_dirty))

    def _mirror_rows(self, rows: list[tuple[str, str, str, str, dict[str, Any], str | None]],
                     run_id: int, *, mark_dirty: bool) -> list[str]:
        texts = [mirror_text(system, record) for _, system, _, _, record, _ in rows]
        known = self._digests([row[0] for row in rows])
        changed = []
        for row, text in zip(rows, texts, strict=True):
            digest = hashlib.blake2b(text, digest_size=16).hexdigest()
            if known.get(row[0]) != digest:
                changed.append((row, text, digest))
        if not changed:
            return []
        self.db.executemany(_UPSERT_MIRROR, [
            (ref, system, obj, rid, text, modified_at, run_id, digest, mark_dirty)
            for (ref, system, obj, rid, _, modified_at), text, digest in changed
        ])
        refs = [row[0] for row, _, _ in changed]
        old_keys = self._run_in("SELECT ref, key FROM identity WHERE ref IN ({})", refs)
        self._run_in("DELETE FROM identity WHERE ref IN ({})", refs)
        new_keys = [(key, ref) for (ref, system, obj, _, record, _), _, _ in changed
                    for key in identity_keys(system, obj, record)]
        self.db.executemany("INSERT OR IGNORE INTO identity (key, ref) VALUES (?, ?)", new_keys)
        self._mark_left_behind(old_keys, new_keys)
        return refs

    def _mark_left_behind(self, old_keys: list[tuple[str, str]],
                          new_keys: list[tuple[str, str]]) -> None:
        """Mark dirty the records that shared a key a changed record no longer has (its
        e-mail fixed, its account changed): they were planned in its group and must be planned
        without it. Those that share its new keys are found from it (`group_closure`)."""
        kept = {(ref, key) for key, ref in new_keys}
        lost = {key for ref, key in old_keys if (ref, key) not in kept}
        if lost:
            behind = self._values_in("SELECT ref FROM identity WHERE key IN ({})", lost)
            self.mark_dirty(behind)
            self.left_behind |= behind

    def _digests(self, refs: list[str]) -> dict[str, str | None]:
        """Each mirrored record's digest; none for a deleted one, so reading it again revives
        it even when its content is unchanged (restored from the recycle bin)."""
        return dict(self._run_in("SELECT ref, CASE WHEN deleted THEN NULL ELSE digest END "
                                 "FROM mirror WHERE ref IN ({})", refs))

    def mirrored(self, refs: Iterable[SourceRef] | None = None) -> dict[str, dict[str, Any]]:
        """Last-seen raw records, keyed by ref string (all of them when `refs` is None)."""
        if refs is None:
            rows = self.db.execute("SELECT ref, record FROM mirror").fetchall()
        else:
            rows = self._run_in("SELECT ref, record FROM mirror WHERE ref IN ({})",
                                 [str(r) for r in refs])
        return {ref: orjson.loads(record) for ref, record in rows}

    def iter_mirrored(self, batch: int = 2_000) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every last-seen raw record as (ref string, record), decoded a batch at a time."""
        cursor = self.db.execute("SELECT ref, record FROM mirror")
        while rows := cursor.fetchmany(batch):
            for ref, record in rows:
                yield ref, orjson.loads(record)

    def mirror_by_group(
        self, groups: Iterable[tuple[str, str]], batch: int = 2_000
    ) -> Iterator[list[tuple[int, str, dict[str, Any]]]]:
        """Mirrored records one group at a time, each as (position, ref, record).

        `groups` gives (ref, group) for the records wanted; `position` counts them in that
        order. The grouping goes to a temporary table, so only the current group is decoded.
        """
        db = self.db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS plan_group "
                   "(position INTEGER PRIMARY KEY, grp TEXT NOT NULL, ref TEXT NOT NULL)")
        db.execute("DELETE FROM temp.plan_group")
        db.executemany("INSERT INTO temp.plan_group (ref, grp) VALUES (?, ?)", groups)
        db.execute("CREATE INDEX IF NOT EXISTS temp.plan_group_order ON plan_group (grp, position)")
        cursor = db.execute(
            "SELECT g.grp, g.position, m.ref, m.record FROM temp.plan_group AS g "
            "JOIN mirror AS m ON m.ref = g.ref WHERE NOT m.deleted ORDER BY g.grp, g.position"
        )
        try:
            current, rows = None, []
            while fetched := cursor.fetchmany(batch):
                for group, position, ref, record in fetched:
                    if group != current and rows:
                        yield rows
                        rows = []
                    current = group
                    rows.append((position, ref, orjson.loads(record)))
            if rows:
                yield rows
        finally:
            cursor.close()
            db.execute("DROP TABLE IF EXISTS temp.plan_group")

    # ---- planning groups -------------------------------------------------------------------

    def identity_pairs(self, refs: Collection[str] | None = None) -> Iterator[tuple[str, str]]:
        """(ref, key) for every live mirrored record, or those in `refs`, in mirror order.

        Every live record appears, keyed or not (a record without keys pairs with itself), so
        planning sees all of them; deleted and merged-away records take no part.
        """
        if refs is None:
            cursor = self.db.execute(
                "SELECT m.ref, coalesce(i.key, m.ref) FROM mirror AS m "
                "LEFT JOIN identity AS i ON i.ref = m.ref WHERE NOT m.deleted ORDER BY m.rowid")
            while rows := cursor.fetchmany(5_000):
                yield from rows
            return
        yield from self._run_in(
            "SELECT m.ref, coalesce(i.key, m.ref) FROM mirror AS m LEFT JOIN identity AS i "
            "ON i.ref = m.ref WHERE m.ref IN ({}) AND NOT m.deleted", sorted(refs))

    def group_closure(self, seeds: Iterable[str]) -> set[str]:
        """The mirrored records tied to `seeds`, directly or through others, by a shared
        identity key or a stored link: every record whose plan a change to a seed can touch."""
        refs: set[str] = set()
        keys: set[str] = set()
        frontier = set(seeds)
        while frontier:
            refs |= frontier
            new_keys = self._values_in("SELECT key FROM identity WHERE ref IN ({})",
                                       frontier) - keys
            keys |= new_keys
            found = self._values_in("SELECT ref FROM identity WHERE key IN ({})", new_keys)
            found |= self._values_in("SELECT b FROM links WHERE a IN ({})", frontier)
            found |= self._values_in("SELECT a FROM links WHERE b IN ({})", frontier)
            frontier = found - refs
        return self._values_in("SELECT ref FROM mirror WHERE ref IN ({}) AND NOT deleted", refs)

    def _values_in(self, query: str, values: Collection[str]) -> set[str]:
        return {row[0] for row in self._run_in(query, values)}

    def _run_in(self, query: str, values: Collection[str]) -> list[tuple]:
        """`query` run for `values` a bounded number at a time (its `{}` becomes `?, ?, ...`),
        and the rows it gave."""
        listed, rows = list(values), []
        for start in range(0, len(listed), _IN_CHUNK):
            chunk = listed[start:start + _IN_CHUNK]
            rows += self.db.execute(query.format(_marks(chunk)), chunk).fetchall()
        return rows

    def dirty_refs(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT ref FROM mirror WHERE dirty = 1")]

    def mark_dirty(self, refs: Collection[str]) -> None:
        """Plan these records' groups again next run (a re-read found them changed)."""
        self._run_in("UPDATE mirror SET dirty = 1 WHERE ref IN ({})", refs)

    def live_refs(self, refs: Collection[str]) -> set[str]:
        """Those of `refs` that are mirrored and not deleted: the only possible write targets."""
        return self._values_in("SELECT ref FROM mirror WHERE ref IN ({}) AND NOT deleted", refs)

    # ---- deletions and merges --------------------------------------------------------------

    def apply_tombstones(self, system: str, object_type: str,
                         tombstones: Iterable[Any]) -> tuple[int, int]:
        """Mark mirrored records deleted (or merged into a survivor): (deleted, merged) counts.

        The row stays, flagged, and leaves planning: its identity keys go, its open rejects
        are resolved, links to it move to the survivor of a merge (or go with a deletion), and
        every record tied to it is marked dirty, so its group is planned without it. A
        tombstone older than the mirrored copy is ignored: the record was restored since.
        """
        deleted = merged = 0
        for tombstone in tombstones:
            ref = f"{system}:{object_type}:{tombstone.record_id}"
            row = self.db.execute("SELECT modified_at FROM mirror WHERE ref = ? AND NOT deleted",
                                  (ref,)).fetchone()
            when = tombstone.deleted_at
            if row is None or (when is not None and row[0] and _parse(row[0]) > when):
                continue
            survivor = (f"{system}:{object_type}:{tombstone.merged_into}"
                        if tombstone.merged_into else None)
            self.mark_dirty(self.group_closure([ref]) | ({survivor} if survivor else set()))
            self.db.execute("UPDATE mirror SET deleted = 1, deleted_at = ?, merged_into = ?, "
                            "dirty = 0 WHERE ref = ?",
                            (_iso(when or now()), tombstone.merged_into, ref))
            self.db.execute("DELETE FROM identity WHERE ref = ?", (ref,))
            self.db.execute("DELETE FROM duplicates WHERE ref = ?", (ref,))
            self.db.execute("UPDATE rejects SET resolved = 1 WHERE ref = ?", (ref,))
            self._move_links(ref, survivor)
            if survivor:
                merged += 1
            else:
                deleted += 1
        return deleted, merged

    def _move_links(self, ref: str, survivor: str | None) -> None:
        """Links to `ref` now join `survivor` instead (a merge), or go (a deletion)."""
        if survivor is not None:
            self.db.execute("INSERT OR IGNORE INTO links (a, b, first_seen_run) SELECT ?, b, "
                            "first_seen_run FROM links WHERE a = ? AND b != ?",
                            (survivor, ref, survivor))
            self.db.execute("INSERT OR IGNORE INTO links (a, b, first_seen_run) SELECT a, ?, "
                            "first_seen_run FROM links WHERE b = ? AND a != ?",
                            (survivor, ref, survivor))
        self.db.execute("DELETE FROM links WHERE a = ? OR b = ?", (ref, ref))

    def replace_duplicates(self, planned: Collection[str], found: Iterable[Any],
                           run_id: int | None) -> None:
        """The duplicates (`reconcile.Duplicate`) found among the `planned` records, in place
        of those recorded for them before."""
        self._run_in("DELETE FROM duplicates WHERE ref IN ({})", planned)
        self.db.executemany(
            "INSERT OR REPLACE INTO duplicates (ref, grp, entity, system, linked_by, found_run) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(ref, group.records[0], group.entity, group.system, json.dumps(group.linked_by),
              run_id) for group in found for ref in group.records])

    def duplicate_groups(self, limit: int = 10) -> tuple[int, list[dict[str, Any]]]:
        """How many duplicate groups are recorded, and the first `limit` (by first record)."""
        count = int(self.db.execute("SELECT count(DISTINCT grp) FROM duplicates").fetchone()[0])
        rows = self.db.execute(
            "SELECT grp, entity, system, linked_by, group_concat(ref, ' ') FROM "
            "(SELECT * FROM duplicates WHERE grp IN (SELECT DISTINCT grp FROM duplicates "
            "ORDER BY grp LIMIT ?) ORDER BY ref) GROUP BY grp ORDER BY grp", (limit,)).fetchall()
        return count, [{"entity": entity, "system": system, "records": refs.split(" "),
                        "linked_by": json.loads(linked_by)}
                       for _, entity, system, linked_by, refs in rows]

    def add_plan_dates(self, rows: Iterable[tuple[str, str]]) -> None:
        """(ref, ISO day) pairs: on that day the record's plan may change by itself."""
        self.db.executemany("INSERT OR IGNORE INTO plan_dates (ref, on_date) VALUES (?, ?)", rows)

    def mark_due(self, today: str) -> None:
        """Mark dirty the records whose plan date has come, and forget those dates."""
        self.db.execute("UPDATE mirror SET dirty = 1 WHERE ref IN "
                        "(SELECT ref FROM plan_dates WHERE on_date <= ?)", (today,))
        self.db.execute("DELETE FROM plan_dates WHERE on_date <= ?", (today,))

    def clear_dirty(self) -> None:
        """After a run planned every dirty record and applied its plan."""
        self.db.execute("UPDATE mirror SET dirty = 0 WHERE dirty = 1")

    def rebuild_identity(self) -> None:
        """Index the identity keys of every mirrored record (state DBs from before the index)."""
        self.db.execute("DELETE FROM identity")
        for ref, record in self.iter_mirrored():
            system, obj, _ = ref.split(":", 2)
            self.db.executemany("INSERT OR IGNORE INTO identity (key, ref) VALUES (?, ?)",
                                [(key, ref) for key in identity_keys(system, obj, record)])
        self.set_meta("identity_complete", "1")

    def meta(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
                        "DO UPDATE SET value = excluded.value", (name, value))

    def mirror_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM mirror").fetchone()[0])

    # ---- audit -----------------------------------------------------------------------------

    def audit(
        self, run_id: int, ref: SourceRef, field: str, before: Any, after: Any, rule: str | None
    ) -> None:
        self.db.execute(
            "INSERT INTO audit (run_id, system, object_type, record_id, field, before, after, "
            "rule, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, ref.system.value, ref.object_type, ref.record_id, field,
             json.dumps(before, default=str), json.dumps(after, default=str), _scrubbed(rule),
             _iso(now())),
        )

    def audit_many(
        self, run_id: int, entries: Iterable[tuple[SourceRef, str, Any, Any, str | None]]
    ) -> None:
        """`audit` for many (ref, field, before, after, rule) at once: one statement per batch
        of writes instead of one per field."""
        at = _iso(now())
        self.db.executemany(
            "INSERT INTO audit (run_id, system, object_type, record_id, field, before, after, "
            "rule, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (run_id, ref.system.value, ref.object_type, ref.record_id, field,
                 json.dumps(before, default=str), json.dumps(after, default=str), _scrubbed(rule),
                 at)
                for ref, field, before, after, rule in entries
            ],
        )

    def record_intents(self, run_id: int, batch: int, changes: list[Change]) -> list[int]:
        """Record `changes` as intended writes of `run_id`'s `batch`, before it is sent (inside
        the caller's transaction, which must commit before the send); returns their audit ids,
        in order, for `resolve_audit`."""
        at = _iso(now())
        self.db.executemany(
            "INSERT INTO audit (run_id, system, object_type, record_id, field, before, after, "
            "rule, at, status, step, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?)",
            [(run_id, c.system.value, c.object_type, c.record_id, c.field,
              json.dumps(c.before, default=str), json.dumps(c.after, default=str),
              _scrubbed(c.rule), at, c.step, batch) for c in changes],
        )
        # one writer (the transaction), so AUTOINCREMENT gave them consecutive ids
        last = int(self.db.execute("SELECT last_insert_rowid()").fetchone()[0])
        return list(range(last - len(changes) + 1, last + 1))

    def resolve_audit(self, outcomes: Iterable[tuple[int, str]]) -> None:
        """(audit id, status) for intended writes whose outcome is now known."""
        at = _iso(now())
        self.db.executemany("UPDATE audit SET status = ?, resolved_at = ? WHERE id = ?",
                            [(status, at, audit_id) for audit_id, status in outcomes])

    def audit_entries(self, run_id: int, status: str = "applied") -> list[AuditEntry]:
        """The run's audit rows with `status`: by default the changes it made."""
        return self._audit_rows("run_id = ? AND status = ?", (run_id, status))

    def audit_intents(self, run_id: int | None = None, *,
                      not_run: int | None = None) -> list[AuditEntry]:
        """Intended writes without an outcome: of `run_id`, or of every run but `not_run`."""
        if run_id is not None:
            return self._audit_rows("status = 'intent' AND run_id = ?", (run_id,))
        return self._audit_rows("status = 'intent' AND run_id != ?", (not_run or 0,))

    def _audit_rows(self, where: str, args: tuple) -> list[AuditEntry]:
        rows = self.db.execute(
            "SELECT id, run_id, system, object_type, record_id, field, before, after, rule, at, "
            f"status, step, batch FROM audit WHERE {where} ORDER BY id", args,
        ).fetchall()
        return [
            AuditEntry(
                r[0], r[1],
                SourceRef(system=System(r[2]), object_type=r[3], record_id=r[4]),
                r[5], json.loads(r[6]), json.loads(r[7]), r[8], _parse(r[9]), r[10], r[11],
                r[12],
            )
            for r in rows
        ]

    def audit_count(self) -> int:
        """How many changes the audit log holds as made."""
        return int(self.db.execute("SELECT COUNT(*) FROM audit WHERE status = 'applied'")
                   .fetchone()[0])

    # ---- rejects ---------------------------------------------------------------------------

    def reject(
        self,
        ref: str,
        stage: str,
        reason: str,
        run_id: int,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        at = _iso(now())
        self.db.execute(
            "INSERT INTO rejects (ref, field, stage, reason, code, first_seen, last_seen, "
            "attempts, last_run, resolved) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, 0) "
            "ON CONFLICT (ref, field, stage) DO UPDATE SET reason = excluded.reason, "
            "code = excluded.code, last_seen = excluded.last_seen, "
            "attempts = rejects.attempts + 1, last_run = excluded.last_run, resolved = 0",
            (ref, field or "", stage, scrub(reason), code, at, at, run_id),
        )

    def resolve_rejects(self, refs: Iterable[str], stage: str) -> None:
        self.db.executemany(
            "UPDATE rejects SET resolved = 1 WHERE ref = ? AND stage = ?",
            [(ref, stage) for ref in refs],
        )

    def open_rejects(self, run_id: int | None = None) -> list[RejectEntry]:
        query = ("SELECT ref, field, stage, reason, code, first_seen, last_seen, attempts, "
                 "last_run FROM rejects WHERE resolved = 0")
        args: tuple = ()
        if run_id is not None:
            query += " AND last_run = ?"
            args = (run_id,)
        rows = self.db.execute(query + " ORDER BY ref, field", args).fetchall()
        return [
            RejectEntry(r[0], r[1], r[2], r[3], r[4], _parse(r[5]), _parse(r[6]), r[7], r[8])
            for r in rows
        ]


class ChangeSpool:
    """The changes of one run, kept in a temporary table instead of memory, with their outcomes.

    A first backfill plans about two changes per record: held as objects, a million records
    needed gigabytes. Here they cost disk; the engine reads them back a batch at a time, in
    the order it sends them, and the report lists the first rows in plan order.
    """

    _COLUMNS = "system, object_type, record_id, field, step, before, after, rule, reason"
    _C_COLUMNS = ", ".join(f"c.{column}" for column in _COLUMNS.split(", "))
    _PLAN_ORDER = "c.system, c.object_type, c.record_id, c.field, c.step"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute("DROP TABLE IF EXISTS temp.spool_change")
        db.execute("DROP TABLE IF EXISTS temp.spool_result")
        db.execute(f"CREATE TEMP TABLE spool_change (id INTEGER PRIMARY KEY, {self._COLUMNS})")
        db.execute("CREATE TEMP TABLE spool_result "
                   "(id INTEGER PRIMARY KEY, status TEXT NOT NULL, code TEXT, message TEXT)")
        self.count = 0

    def add(self, changes: Iterable[Change]) -> None:
        rows = [(c.system.value, c.object_type, c.record_id, c.field, c.step,
                 _spooled_value(c.before), _spooled_value(c.after), c.rule, c.reason)
                for c in changes]
        self.db.executemany(f"INSERT INTO temp.spool_change ({self._COLUMNS}) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.count += len(rows)

    def add_late(self, changes: list[Change]) -> list[tuple[int, Change]]:
        """Add changes while batches are being sent (a record planned again), as (spool id,
        change) to send now: `record_batches` under way does not yield them again."""
        if not changes:
            return []
        first = int(self.db.execute("SELECT coalesce(max(id), 0) FROM temp.spool_change")
                    .fetchone()[0]) + 1
        self.add(changes)
        return list(zip(range(first, first + len(changes)), changes, strict=True))

    def objects(self) -> list[tuple[str, str]]:
        return self.db.execute("SELECT DISTINCT system, object_type FROM temp.spool_change "
                               "ORDER BY system, object_type").fetchall()

    def changes(self) -> Iterator[Change]:
        """Every change, in plan order."""
        cursor = self.db.execute(f"SELECT c.id, {self._C_COLUMNS} FROM temp.spool_change AS c "
                                 f"ORDER BY {self._PLAN_ORDER}")
        while rows := cursor.fetchmany(2_000):
            for row in rows:
                yield _spooled_change(row)[1]

    def record_batches(self, system: str, object_type: str, size: int,
                       confirm: Collection[str] = ()) -> Iterator[list[tuple[int, Change]]]:
        """(spool id, change) lists of up to `size` whole records of one object.

        Records that need a second step (HubSpot lifecycle: clear, then set) go first, then
        those whose writes are read back to confirm them, each in plan order: the adapter sends
        a batch's later step and its read-back as requests of their own, so packing such
        records together saves a request per batch that would otherwise hold a few of them.
        """
        confirm = sorted(confirm)
        last = self.db.execute("SELECT coalesce(max(id), 0) FROM temp.spool_change").fetchone()[0]
        cursor = self.db.execute(self.batches_query(len(confirm)),
                                 (*confirm, system, object_type, system, object_type, last))
        batch: list[tuple[int, Change]] = []
        records = 0
        while rows := cursor.fetchmany(2_000):
            for row in rows:
                spooled = _spooled_change(row)
                if not batch or batch[-1][1].record_id != spooled[1].record_id:
                    if records == size:
                        yield batch
                        batch, records = [], 0
                    records += 1
                batch.append(spooled)
        if batch:
            yield batch

    @classmethod
    def batches_query(cls, confirmed_fields: int) -> str:
        """The query behind `record_batches`, for `confirmed_fields` confirm parameters.

        `+c.id`: the unary plus keeps SQLite from driving the join by the rowid range (it
        would then scan every record's `kind` once per change: quadratic, and a 100k-person
        backfill stalled for over a quarter of an hour); the plan must scan the spool once and
        look `kind` up through an automatic index (tests/test_state.py checks the plan)."""
        confirmed = f"field IN ({_marks(['?'] * confirmed_fields)})" if confirmed_fields else "0"
        return (
            f"WITH kind AS (SELECT record_id, CASE WHEN max(step) > 0 THEN 0 "
            f"WHEN max({confirmed}) THEN 1 ELSE 2 END AS k FROM temp.spool_change "
            f"WHERE system = ? AND object_type = ? GROUP BY record_id) "
            f"SELECT c.id, {cls._C_COLUMNS} "
            f"FROM temp.spool_change AS c JOIN kind USING (record_id) "
            f"WHERE c.system = ? AND c.object_type = ? AND +c.id <= ? "
            f"ORDER BY kind.k, c.record_id, c.field, c.step"
        )

    def record_results(self, results: Iterable[tuple[int, str, str | None, str | None]]) -> None:
        """(spool id, status, code, message) of changes sent or skipped."""
        self.db.executemany("INSERT OR REPLACE INTO temp.spool_result (id, status, code, message) "
                            "VALUES (?, ?, ?, ?)", results)

    def sent(self) -> int:
        """How many changes have an outcome."""
        return int(self.db.execute("SELECT count(*) FROM temp.spool_result").fetchone()[0])

    def report_rows(self, limit: int, *, sent_only: bool = True) -> list[dict[str, Any]]:
        """The first `limit` changes in plan order, as report rows with their outcome: those
        sent (or skipped by a dry run), or with `sent_only=False` every one, unsent ones as
        "planned"."""
        join = "JOIN" if sent_only else "LEFT JOIN"
        rows = self.db.execute(
            f"SELECT c.id, {self._C_COLUMNS}, "
            f"r.status, r.code, r.message FROM temp.spool_change AS c "
            f"{join} temp.spool_result AS r USING (id) "
            f"ORDER BY {self._PLAN_ORDER} LIMIT ?",
            (limit,)).fetchall()
        out = []
        for row in rows:
            _, change = _spooled_change(row[:10])
            status, code, message = row[10:]
            entry = {"system": change.system.value, "object_type": change.object_type,
                     "record_id": change.record_id, "field": change.field,
                     "before": change.before, "after": change.after, "rule": change.rule,
                     "reason": change.reason, "step": change.step,
                     "status": status or "planned"}
            if status and status != "applied":
                entry["code"], entry["message"] = code, message
            out.append(entry)
        return out


_NATIVE = (str, int, float, type(None))  # SQLite keeps these types; a bool would become 1


def _spooled_value(value: Any) -> Any:
    """A value as SQLite keeps it exactly: itself, or JSON as bytes (a BLOB comes back as bytes,
    so it cannot be mistaken for a text value)."""
    return value if type(value) in _NATIVE else json.dumps(value, default=str).encode()


def _unspooled(value: Any) -> Any:
    return json.loads(value) if type(value) is bytes else value


def _spooled_change(row: tuple) -> tuple[int, Change]:
    spool_id, system, obj, record_id, field, step, before, after, rule, reason = row
    return spool_id, Change(system=System(system), object_type=obj, record_id=record_id,
                            field=field, before=_unspooled(before), after=_unspooled(after),
                            rule=rule, reason=reason, step=step)


def parse_ref(text: str) -> SourceRef:
    system, object_type, record_id = text.split(":", 2)
    return SourceRef(system=System(system), object_type=object_type, record_id=record_id)


def mirror_text(system: str, record: dict[str, Any]) -> bytes:
    """What the mirror keeps of a record (the catalog's rule: all but its modification time)."""
    return CATALOG[system].mirror_text(record)


def _scrubbed(text: str | None) -> str | None:
    return None if text is None else scrub(text)


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


class LockHeartbeat:
    """Moves the lock's heartbeat from a thread with its own SQLite connection (a connection
    is not shared across threads), every `interval` seconds until stopped. `lost` is set when
    the lock is no longer ours: the run checks it before each write."""

    def __init__(self, path: Path, token: str, interval: float) -> None:
        self.path, self.token, self.interval = path, token, interval
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crmsync-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        except sqlite3.Error:
            return  # the run's own statements report an unusable DB
        try:
            while not self._stop.wait(self.interval):
                try:
                    moved = db.execute("UPDATE lock SET heartbeat = ? WHERE token = ?",
                                       (time.time(), self.token)).rowcount
                except sqlite3.Error:
                    continue  # busy or full for a moment: the next beat tries again
                if moved == 0:
                    self.lost.set()
                    return
        finally:
            db.close()


def _marks(values: list[str]) -> str:
    return ",".join("?" * len(values))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
