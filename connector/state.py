"""The state store: SQLite in WAL mode, one file, safe to kill at any point.

It holds what a run needs to be incremental, idempotent and auditable: runs, watermarks,
links between the two systems' records, a mirror of last-seen mapped values (so a run reads
only what changed and our own writes do not echo back), the audit log, the reject ledger and
the run lock. Every multi-row change is one transaction, so a crash leaves either the old or
the new state, never half of one.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.exceptions import ConfigurationError, RunLockHeld
from connector.model import SourceRef, System

__all__ = ["SCHEMA_VERSION", "AuditEntry", "RejectEntry", "RunRecord", "StateStore"]

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
]
SCHEMA_VERSION = len(MIGRATIONS)
_UPSERT_MIRROR = (
    "INSERT INTO mirror (ref, system, object_type, record_id, record, modified_at, seen_run) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ref) DO UPDATE SET record = excluded.record, "
    "modified_at = excluded.modified_at, seen_run = excluded.seen_run"
)
STALE_LOCK_SECONDS = 15 * 60


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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(f"cannot open state DB {self.path}: {exc}") from None
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
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
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: committed on success, rolled back on any error or kill."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---- run lock --------------------------------------------------------------------------

    def acquire_lock(self, owner: str, stale_after: float = STALE_LOCK_SECONDS) -> None:
        """Take the run lock, or raise RunLockHeld naming who holds it.

        A lock whose holder process is gone (same host) or whose heartbeat is older than
        `stale_after` seconds is stale: a killed run must not block the schedule forever.
        """
        host, pid = socket.gethostname(), os.getpid()
        with self.transaction() as db:
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
                "INSERT INTO lock (id, owner, pid, host, acquired_at, heartbeat) "
                "VALUES (1, ?, ?, ?, ?, ?)",
                (owner, pid, host, _iso(now()), time.time()),
            )

    def heartbeat(self) -> None:
        self.db.execute("UPDATE lock SET heartbeat = ? WHERE pid = ?", (time.time(), os.getpid()))

    def release_lock(self) -> None:
        self.db.execute("DELETE FROM lock WHERE pid = ?", (os.getpid(),))

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
        self.db.execute("UPDATE lock SET run_id = ? WHERE pid = ?", (run_id, os.getpid()))
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
            (_iso(now()), status, json.dumps(counts), json.dumps(api_calls), message, run_id),
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
        """Pairs of records found to be the same entity, as refs or their text."""
        self.db.executemany(
            "INSERT OR IGNORE INTO links (a, b, first_seen_run) VALUES (?, ?, ?)",
            [(str(a), str(b), run_id) for a, b in pairs],
        )

    def links(self) -> list[tuple[SourceRef, SourceRef]]:
        return [(parse_ref(a), parse_ref(b)) for a, b in self.link_texts()]

    def link_texts(self) -> list[tuple[str, str]]:
        """`links()` as the refs' text: planning only compares them, parsing costs 2 models each."""
        return self.db.execute("SELECT a, b FROM links ORDER BY a, b").fetchall()

    # ---- mirror ----------------------------------------------------------------------------

    def mirror_page(
        self,
        system: str,
        object_type: str,
        records: Iterable[tuple[str, dict[str, Any]]],
        modified: datetime | None,
        run_id: int,
    ) -> None:
        """`mirror_records` for one page of one object: (record id, record) pairs that share a
        modified time. The engine mirrors every record it reads; this skips building a
        SourceRef per record only to take it apart again."""
        modified_at = _iso(modified)
        self.db.executemany(
            _UPSERT_MIRROR,
            [
                (f"{system}:{object_type}:{record_id}", system, object_type, record_id,
                 json.dumps(record, sort_keys=True, default=str), modified_at, run_id)
                for record_id, record in records
            ],
        )

    def mirror_records(
        self, records: Iterable[tuple[SourceRef, dict[str, Any], datetime | None]], run_id: int
    ) -> None:
        self.db.executemany(
            _UPSERT_MIRROR,
            [
                (str(ref), ref.system.value, ref.object_type, ref.record_id,
                 json.dumps(record, sort_keys=True, default=str), _iso(modified), run_id)
                for ref, record, modified in records
            ],
        )

    def mirrored(self, refs: Iterable[SourceRef] | None = None) -> dict[str, dict[str, Any]]:
        """Last-seen raw records, keyed by ref string (all of them when `refs` is None)."""
        if refs is None:
            rows = self.db.execute("SELECT ref, record FROM mirror").fetchall()
        else:
            keys = [str(r) for r in refs]
            rows = []
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows += self.db.execute(
                    f"SELECT ref, record FROM mirror WHERE ref IN ({marks})", chunk
                ).fetchall()
        return {ref: json.loads(record) for ref, record in rows}

    def iter_mirrored(self, batch: int = 2_000) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every last-seen raw record as (ref string, record), decoded a batch at a time.

        Planning reads the whole mirror each run; streaming it keeps only the canonical views
        in memory, not a decoded copy of every raw record as well (`mirrored()` does that).
        """
        cursor = self.db.execute("SELECT ref, record FROM mirror")
        while rows := cursor.fetchmany(batch):
            for ref, record in rows:
                yield ref, json.loads(record)

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
            "JOIN mirror AS m ON m.ref = g.ref ORDER BY g.grp, g.position"
        )
        try:
            current, rows = None, []
            while fetched := cursor.fetchmany(batch):
                for group, position, ref, record in fetched:
                    if group != current and rows:
                        yield rows
                        rows = []
                    current = group
                    rows.append((position, ref, json.loads(record)))
            if rows:
                yield rows
        finally:
            cursor.close()
            db.execute("DROP TABLE IF EXISTS temp.plan_group")

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
             json.dumps(before, default=str), json.dumps(after, default=str), rule, _iso(now())),
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
                 json.dumps(before, default=str), json.dumps(after, default=str), rule, at)
                for ref, field, before, after, rule in entries
            ],
        )

    def audit_entries(self, run_id: int) -> list[AuditEntry]:
        rows = self.db.execute(
            "SELECT id, run_id, system, object_type, record_id, field, before, after, rule, at "
            "FROM audit WHERE run_id = ? ORDER BY id",
            (run_id,),
        ).fetchall()
        return [
            AuditEntry(
                r[0], r[1],
                SourceRef(system=System(r[2]), object_type=r[3], record_id=r[4]),
                r[5], json.loads(r[6]), json.loads(r[7]), r[8], _parse(r[9]),
            )
            for r in rows
        ]

    def audit_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])

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
            (ref, field or "", stage, reason, code, at, at, run_id),
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


def parse_ref(text: str) -> SourceRef:
    system, object_type, record_id = text.split(":", 2)
    return SourceRef(system=System(system), object_type=object_type, record_id=record_id)


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
