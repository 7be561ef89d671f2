"""The reject ledger: records that could not be read or written, until they can."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from connector.exceptions import scrub
from connector.state._sql import iso, now, parse


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


class Ledger:
    """One open reject per (record, field, stage), counting its attempts across runs."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def reject(
        self,
        ref: str,
        stage: str,
        reason: str,
        run_id: int,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        at = iso(now())
        self.db.execute(
            "INSERT INTO rejects (ref, field, stage, reason, code, first_seen, last_seen, "
            "attempts, last_run, resolved) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, 0) "
            "ON CONFLICT (ref, field, stage) DO UPDATE SET reason = excluded.reason, "
            "code = excluded.code, last_seen = excluded.last_seen, "
            "attempts = rejects.attempts + 1, last_run = excluded.last_run, resolved = 0",
            (ref, field or "", stage, scrub(reason), code, at, at, run_id),
        )

    def resolve(self, refs: Iterable[str], stage: str) -> None:
        self.db.executemany(
            "UPDATE rejects SET resolved = 1 WHERE ref = ? AND stage = ?",
            [(ref, stage) for ref in refs],
        )

    def open(self, run_id: int | None = None) -> list[RejectEntry]:
        query = ("SELECT ref, field, stage, reason, code, first_seen, last_seen, attempts, "
                 "last_run FROM rejects WHERE resolved = 0")
        args: tuple = ()
        if run_id is not None:
            query += " AND last_run = ?"
            args = (run_id,)
        rows = self.db.execute(query + " ORDER BY ref, field", args).fetchall()
        return [
            RejectEntry(r[0], r[1], r[2], r[3], r[4], parse(r[5]), parse(r[6]), r[7], r[8])
            for r in rows
        ]

    def resolve_record(self, ref: str) -> None:
        """Every reject of a record that is gone (deleted or merged away)."""
        self.db.execute("UPDATE rejects SET resolved = 1 WHERE ref = ?", (ref,))
