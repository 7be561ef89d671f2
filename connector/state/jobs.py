"""Bulk jobs: the Salesforce Bulk API 2.0 ingest jobs runs started, until their results are in.

A job is saved (`opened`) before its data is uploaded, with the run and the audit batch whose
intended writes it carries, so a run killed, stopped or out of patience while the CRM still
processes it leaves an open row. The next run finds it (`open`), asks the CRM about the job
and records its results for those intents, instead of sending the same records a second time.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from connector.state._sql import iso, now, parse

_COLUMNS = ("job_id, system, object_type, run_id, batch, step, records, state, processed, "
            "failed, created_at, updated_at, collected_at")


@dataclass(frozen=True)
class BulkJob:
    """One job as last seen: `state` is the CRM's (Open, UploadComplete, InProgress,
    JobComplete, Failed, Aborted); `collected_at` is None while its results are not recorded."""

    job_id: str
    system: str
    object_type: str
    run_id: int
    batch: int
    step: int
    records: int
    state: str
    processed: int
    failed: int
    created_at: datetime
    updated_at: datetime
    collected_at: datetime | None

    @classmethod
    def from_row(cls, row: tuple) -> BulkJob:
        return cls(*row[:10], parse(row[10]), parse(row[11]), parse(row[12]))


class BulkJobs:
    """The `bulk_jobs` table; each method is one statement, inside the caller's transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def opened(self, job_id: str, system: str, object_type: str, run_id: int, batch: int,
               records: int, step: int = 0) -> None:
        """A job just created, before its data goes up: it carries `records` of the intended
        writes of `run_id`'s audit `batch` (those of `step`)."""
        at = iso(now())
        self.db.execute(
            f"INSERT INTO bulk_jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 'Open', 0, 0, ?, "
            "?, NULL)", (job_id, system, object_type, run_id, batch, step, records, at, at))

    def seen(self, job_id: str, state: str, processed: int = 0, failed: int = 0) -> None:
        """The job's state and counts as the CRM last reported them."""
        self.db.execute("UPDATE bulk_jobs SET state = ?, processed = ?, failed = ?, "
                        "updated_at = ? WHERE job_id = ?",
                        (state, processed, failed, iso(now()), job_id))

    def collected(self, job_id: str, state: str) -> None:
        """The job's outcome is recorded (in the transaction that records it)."""
        at = iso(now())
        self.db.execute("UPDATE bulk_jobs SET state = ?, collected_at = ?, updated_at = ? "
                        "WHERE job_id = ?", (state, at, at, job_id))

    def open(self, *, not_run: int | None = None) -> list[BulkJob]:
        """Jobs whose results are not recorded yet, oldest first; without those of `not_run`
        (the run asking: its own jobs are still under way)."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM bulk_jobs WHERE collected_at IS NULL AND run_id != ? "
            "ORDER BY created_at, job_id", (not_run or 0,)).fetchall()
        return [BulkJob.from_row(row) for row in rows]

    def get(self, job_id: str) -> BulkJob | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM bulk_jobs WHERE job_id = ?",
                              (job_id,)).fetchone()
        return BulkJob.from_row(row) if row else None
