"""The journal: runs and the audit log of every change they intended and made.

An audit row holds the change's rule and its reason ("stage sql: hubspot:contacts:1 says
sql"), which `crmsync history` shows; rows from before migration 8 have no reason.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.model import Change, SourceRef, System
from connector.state._sql import dict_rows, insert_ids, iso, now, parse, scrubbed
from connector.state.lock import RunLock

_RUN_COLUMNS = "id, kind, started_at, ended_at, status, dry_run, counts, api_calls, message"
_AUDIT_COLUMNS = ("id, run_id, system, object_type, record_id, field, before, after, rule, at, "
                  "status, step, batch, reason")
_INSERT_AUDIT = ("INSERT INTO audit (run_id, system, object_type, record_id, field, before, "
                 "after, rule, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


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

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        return cls(row["id"], row["kind"], parse(row["started_at"]), parse(row["ended_at"]),
                   row["status"], bool(row["dry_run"]), json.loads(row["counts"]),
                   json.loads(row["api_calls"]), row["message"])


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
    reason: str | None = None  # why the plan made the change; None in rows from before

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AuditEntry:
        ref = SourceRef(system=System(row["system"]), object_type=row["object_type"],
                        record_id=row["record_id"])
        return cls(row["id"], row["run_id"], ref, row["field"], json.loads(row["before"]),
                   json.loads(row["after"]), row["rule"], parse(row["at"]), row["status"],
                   row["step"], row["batch"], row["reason"])


def _audit_row(run_id: int, ref: SourceRef, field: str, before: Any, after: Any,
               rule: str | None, at: str | None, reason: str | None = None) -> tuple:
    return (run_id, ref.system.value, ref.object_type, ref.record_id, field,
            json.dumps(before, default=str), json.dumps(after, default=str), scrubbed(rule), at,
            scrubbed(reason))


class Journal:
    """Runs (started, finished, their counts) and the audit log of their changes."""

    def __init__(self, db: sqlite3.Connection, lock: RunLock) -> None:
        self.db, self._lock = db, lock

    def _rows(self, query: str, args: tuple) -> list[dict[str, Any]]:
        return dict_rows(self.db.execute(query, args))

    # ---- runs ------------------------------------------------------------------------------

    def start_run(self, kind: str, *, dry_run: bool = False) -> int:
        """Record a run; the lock remembers it, so a killed run is marked interrupted later."""
        [run_id] = insert_ids(
            self.db,
            "INSERT INTO runs (kind, started_at, status, dry_run) VALUES (?, ?, 'running', ?)",
            [(kind, iso(now()), int(dry_run))],
        )
        self._lock.attach_run(run_id)
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
            (iso(now()), status, json.dumps(counts), json.dumps(api_calls), scrubbed(message),
             run_id),
        )

    def runs(self, limit: int = 10) -> list[RunRecord]:
        """The latest `limit` runs, newest first."""
        return [RunRecord.from_row(row) for row in self._rows(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?", (limit,))]

    def runs_up_to(self, run_id: int, *, since: datetime | None = None,
                   limit: int = 30) -> list[RunRecord]:
        """Runs up to `run_id`, newest first: those started at or after `since`, else the
        latest `limit`; never more than `limit`."""
        if since is None:
            return [RunRecord.from_row(row) for row in self._rows(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id <= ? ORDER BY id DESC LIMIT ?",
                (run_id, limit))]
        return [RunRecord.from_row(row) for row in self._rows(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE id <= ? AND started_at >= ? "
            "ORDER BY id DESC LIMIT ?", (run_id, iso(since), limit))]

    def run(self, run_id: int) -> RunRecord | None:
        rows = self._rows(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return RunRecord.from_row(rows[0]) if rows else None

    # ---- audit -----------------------------------------------------------------------------

    def audit(
        self, run_id: int, ref: SourceRef, field: str, before: Any, after: Any, rule: str | None
    ) -> None:
        """One change made, audited as applied."""
        self.audit_many(run_id, [(ref, field, before, after, rule)])

    def audit_many(
        self, run_id: int, entries: Iterable[tuple[SourceRef, str, Any, Any, str | None]]
    ) -> None:
        """`audit` for many (ref, field, before, after, rule) at once: one statement per batch
        of writes instead of one per field."""
        at = iso(now())
        self.db.executemany(_INSERT_AUDIT, [_audit_row(run_id, *entry, at) for entry in entries])

    def record_intents(self, run_id: int, batch: int, changes: list[Change]) -> list[int]:
        """Record `changes` as intended writes of `run_id`'s `batch`, before it is sent (inside
        the caller's transaction, which must commit before the send); returns their audit ids,
        in order, for `resolve_intents`."""
        at = iso(now())
        return insert_ids(
            self.db,
            "INSERT INTO audit (run_id, system, object_type, record_id, field, before, after, "
            "rule, at, reason, status, step, batch) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?)",
            [(*_audit_row(run_id, c.ref, c.field, c.before, c.after, c.rule, at, c.reason),
              c.step, batch) for c in changes],
        )

    def resolve_intents(self, outcomes: Iterable[tuple[int, str]]) -> None:
        """(audit id, status) for intended writes whose outcome is now known."""
        at = iso(now())
        self.db.executemany("UPDATE audit SET status = ?, resolved_at = ? WHERE id = ?",
                            [(status, at, audit_id) for audit_id, status in outcomes])

    def entries(self, run_id: int, status: str = "applied") -> list[AuditEntry]:
        """The run's audit rows with `status`: by default the changes it made."""
        return self._audit_rows("run_id = ? AND status = ?", (run_id, status))

    def intents(self, run_id: int | None = None, *,
                not_run: int | None = None) -> list[AuditEntry]:
        """Intended writes without an outcome: of `run_id`, or of every run but `not_run`."""
        if run_id is not None:
            return self._audit_rows("status = 'intent' AND run_id = ?", (run_id,))
        return self._audit_rows("status = 'intent' AND run_id != ?", (not_run or 0,))

    def history(self, refs: Iterable[SourceRef]) -> list[AuditEntry]:
        """Every audit row of these records, of every run and status, oldest first.

        One indexed look-up per record (`audit_record`, migration 7): a record's history
        reads its own rows, however long the audit log has grown."""
        found: list[AuditEntry] = []
        for ref in set(refs):
            found += self._audit_rows("system = ? AND object_type = ? AND record_id = ?",
                                      (ref.system.value, ref.object_type, ref.record_id))
        return sorted(found, key=lambda entry: entry.id)

    def _audit_rows(self, where: str, args: tuple) -> list[AuditEntry]:
        return [AuditEntry.from_row(row) for row in self._rows(
            f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE {where} ORDER BY id", args)]

    def applied_count(self) -> int:
        """How many changes the audit log holds as made."""
        return int(self.db.execute("SELECT COUNT(*) FROM audit WHERE status = 'applied'")
                   .fetchone()[0])
