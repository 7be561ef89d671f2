"""`python -m bench --only bulk`: a Salesforce backfill through query batches and sObject
Collections against the same backfill through Bulk API 2.0 (query jobs for the reads, ingest
jobs for the writes), in one run, each against a fresh sandbox of the same seed and clock.

What it reports, per path: Salesforce API calls (by operation, split at the end of the reads),
wall time (the reads; then planning and writing, with the time spent inside the adapters'
write and re-read calls), the share of a 100,000-call daily allocation the writes used, and
whether the two paths left the same final CRM state and the same audit log (digests over
every Salesforce record but its modification stamps, and over every audit row but its run
and time). Then the per-record cost model both paths follow, from the measured figures,
carried to 1M and 5M records.

The backfill reads the four Salesforce objects only (`--objects salesforce.*`): the HubSpot
side would add the same reads, planning and HubSpot writes to both paths, and nothing to what
is compared. The sandbox runs in a process of its own (bench/_remote.py), so it does not share
the engine's interpreter; both still share this machine's cores, and loopback hides the
latency a real org adds to every call (Bulk jobs also wait in a real org's queue).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._engine import engine_for
from bench._remote import NO_LIMITS, RemoteSandbox, SandboxSpec
from bench._sizes import show_size
from bench.report import table
from connector.sync import Progress, parse_objects

__all__ = ["BulkComparison", "measure_bulk", "render_bulk", "salesforce_digest"]

DAILY_ALLOCATION = 100_000  # an Enterprise org's daily API requests, as the issue counts
GOAL_SHARE = 0.01
# Salesforce records the generator makes per organisation (8,594 per 2,000: Accounts, Leads,
# Contacts, Opportunities).
SALESFORCE_RECORDS_PER_ORGANISATION = 4.3
SALESFORCE_OBJECTS = "salesforce.Account,salesforce.Contact,salesforce.Lead,salesforce.Opportunity"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # one clock for both sandboxes
PATHS: dict[str, dict[str, Any]] = {
    "collections": {"salesforce_bulk_min_records": 0, "salesforce_bulk_query_min_records": 0},
    # Bulk for every write and backfill read, at the default job size and polling
    "bulk": {"salesforce_bulk_min_records": 1, "salesforce_bulk_query_min_records": 1},
}
STAMPS = ("SystemModstamp", "LastModifiedDate")
MODEL_SIZES = (1_000_000, 5_000_000)
JOB_RECORDS = 50_000  # the default CRMSYNC_SALESFORCE_BULK_JOB_RECORDS


def salesforce_digest(sandbox: Any) -> dict[str, Any]:
    """Runs in the sandbox's process: every Salesforce record, stamps aside, as one digest."""
    digest = hashlib.sha256()
    count = 0
    for sobject in ("Account", "Contact", "Lead", "Opportunity"):
        for record in sorted(sandbox.salesforce_records(sobject), key=lambda r: r["Id"]):
            kept = {k: v for k, v in record.items() if k not in STAMPS}
            digest.update(json.dumps(kept, sort_keys=True, default=str).encode())
            count += 1
    return {"sha256": digest.hexdigest(), "records": count}


def written_by_object(state: Path) -> dict[str, int]:
    with closing(sqlite3.connect(state)) as db:
        return dict(db.execute("SELECT object_type, count(DISTINCT record_id) FROM audit WHERE "
                               "status = 'applied' GROUP BY object_type").fetchall())


def audit_digest(state: Path) -> tuple[str, int]:
    """The audit log (record, field, before, after, status, step), run ids and times aside."""
    digest = hashlib.sha256()
    with closing(sqlite3.connect(state)) as db:
        rows = db.execute("SELECT system, object_type, record_id, field, before, after, status, "
                          "step FROM audit ORDER BY system, object_type, record_id, field, step"
                          ).fetchall()
    for row in rows:
        digest.update(json.dumps(row).encode())
    return digest.hexdigest(), len(rows)


class _ReadEnd(Progress):
    """Notes when each object is read to its end: the reads' share of time and calls."""

    def __init__(self, calls: Callable[[], dict[str, int]]) -> None:
        self.calls = calls
        self.read_at = 0.0
        self.read_calls: dict[str, int] = {}
        self.jobs: dict[str, int] = {}

    def start(self, key: str, total: int | None = None) -> None:
        if " Bulk job " in key:
            self.jobs[key] = 0

    def status(self, key: str, text: str) -> None:
        if key in self.jobs:
            self.jobs[key] += 1  # one per poll, plus Open at creation

    def finish(self, key: str) -> None:
        if " Bulk job " not in key:
            self.read_at = time.monotonic()
            self.read_calls = self.calls()


@dataclass
class PathRun:
    """One path's backfill."""

    path: str
    seconds: float
    read_seconds: float
    write_call_seconds: float  # inside the adapter's write calls (collections or Bulk jobs)
    reread_seconds: float  # inside the re-reads before writing
    calls: dict[str, int]
    read_calls: dict[str, int]
    records_read: int
    changes: int
    applied: int
    rejected: int
    retry_later: int
    records_written: int  # Salesforce records the sandbox saw written
    bulk_jobs: int
    polls: int
    state: dict[str, Any]
    audit: tuple[str, int]
    reread_records: int
    reread_calls: int
    written_by_object: dict[str, int]  # records with an applied change, per object

    @property
    def write_calls(self) -> int:
        """Calls after the reads: pre-flight describes, re-reads, writes, Bulk polls."""
        return sum(self.calls.values()) - sum(self.read_calls.values())

    @property
    def write_share(self) -> float:
        return self.write_calls / DAILY_ALLOCATION

    @property
    def read_call_count(self) -> int:
        return sum(self.read_calls.values())


@dataclass
class BulkComparison:
    records: int
    organisations: int
    runs: dict[str, PathRun] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def organisations_for_salesforce_records(records: int) -> int:
    return max(1, round(records / SALESFORCE_RECORDS_PER_ORGANISATION))


def measure_bulk(records: int, workdir: Path, say: Callable[[str], None]) -> BulkComparison:
    """Both paths against a fresh sandbox each, the same seed and clock."""
    organisations = organisations_for_salesforce_records(records)
    result = BulkComparison(records, organisations)
    for path, settings in PATHS.items():
        say(f"[bench] bulk: {show_size(records)} Salesforce records, {path}: sandbox")
        spec = SandboxSpec(organisations, seed=1, limits=(*NO_LIMITS.items(), ("now", NOW)))
        with RemoteSandbox(spec) as sandbox:
            say(f"[bench] bulk: {path}: backfill")
            result.runs[path] = _backfill(path, settings, sandbox, workdir / f"bulk-{path}.db")
            run = result.runs[path]
            say(f"[bench] bulk: {path}: {run.seconds:.0f} s, {run.write_calls} calls after the "
                f"reads, {sum(run.calls.values())} in all")
    return result


def _backfill(path: str, settings: dict[str, Any], sandbox: RemoteSandbox,
              state: Path) -> PathRun:
    with engine_for(sandbox.env, state, **settings) as engine:
        adapter = engine.adapters["salesforce"]
        spent = {"write": 0.0, "reread": 0.0}
        _time_calls(adapter, spent)
        progress = _ReadEnd(lambda: dict(adapter.usage().by_operation))
        engine.progress = progress
        sandbox.reset_counters()
        started = time.monotonic()
        report = engine.backfill(objects=parse_objects(SALESFORCE_OBJECTS))
        seconds = time.monotonic() - started
        if not report.succeeded:
            raise RuntimeError(f"the {path} backfill failed: {report.message}")
        calls = dict(adapter.usage().by_operation)
    counters = sandbox.counters()
    written = counters["records_written"]
    return PathRun(
        path=path, seconds=seconds, read_seconds=progress.read_at - started,
        write_call_seconds=spent["write"], reread_seconds=spent["reread"], calls=calls,
        read_calls=progress.read_calls, records_read=sum(report.read.values()),
        changes=report.planned, applied=report.applied, rejected=report.write_rejected,
        retry_later=report.retry_later,
        records_written=written.get("salesforce.composite", 0)
        + written.get("salesforce.bulk_ingest", 0),
        bulk_jobs=report.bulk_jobs, polls=sum(n - 1 for n in progress.jobs.values()),
        state=sandbox.call("bench.bulk:salesforce_digest"), audit=audit_digest(state),
        reread_records=report.reread_records, reread_calls=report.reread_calls,
        written_by_object=written_by_object(state))


def _time_calls(adapter: Any, spent: dict[str, float]) -> None:
    """Time spent inside the adapter's writes (either path) and re-reads, on the instance."""

    def timed(owner: Any, name: str, bucket: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.monotonic()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[bucket] += time.monotonic() - began

        setattr(owner, name, wrapper)

    timed(adapter, "write", "write")
    timed(adapter.bulk, "write", "write")
    timed(adapter, "read_by_ids", "reread")
    timed(adapter, "read_changed_between", "reread")


# ---- the tables ----------------------------------------------------------------------------


def _calls_of(run: PathRun, *operations: str) -> int:
    return sum(run.calls.get(op, 0) - run.read_calls.get(op, 0) for op in operations)


def render_bulk(result: BulkComparison) -> str:
    runs = [result.runs[p] for p in ("collections", "bulk") if p in result.runs]
    parts = [
        f"{result.records:,} Salesforce records asked for ({result.organisations:,} "
        f"organisations; read: {runs[0].records_read:,}), one backfill per path, each against "
        "a fresh sandbox of the same seed and clock.",
        table(["path", "calls, all", "calls to read", "calls after the reads",
               "of which writes", "share of 100,000/day (after reads)", "goal < 1%"],
              [[r.path, f"{sum(r.calls.values()):,}", f"{r.read_call_count:,}",
                f"{r.write_calls:,}",
                f"{_calls_of(r, 'composite', 'bulk', 'limits'):,}",
                f"{r.write_share:.3%}", "yes" if r.write_share < GOAL_SHARE else "**no**"]
               for r in runs]),
        table(["path", "backfill s", "reads s", "plan + write s", "in write calls s",
               "in re-reads s", "changes applied", "records written", "Bulk jobs",
               "job polls"],
              [[r.path, f"{r.seconds:.0f}", f"{r.read_seconds:.0f}",
                f"{r.seconds - r.read_seconds:.0f}", f"{r.write_call_seconds:.0f}",
                f"{r.reread_seconds:.0f}", f"{r.applied:,}", f"{r.records_written:,}",
                r.bulk_jobs, r.polls] for r in runs]),
        table(["path", "calls by operation (whole backfill)"],
              [[r.path, ", ".join(f"{k} {v:,}" for k, v in sorted(r.calls.items()))]
               for r in runs]),
    ]
    if len(runs) == 2:
        same_state = runs[0].state == runs[1].state
        same_audit = runs[0].audit == runs[1].audit
        parts.append(table(["compared", "collections", "bulk", "identical"], [
            ["final Salesforce state (sha256 of every record, stamps aside)",
             f"{runs[0].state['sha256'][:12]}… ({runs[0].state['records']:,} records)",
             f"{runs[1].state['sha256'][:12]}… ({runs[1].state['records']:,} records)",
             "yes" if same_state else "**no**"],
            ["audit log (sha256 of every row, run and time aside)",
             f"{runs[0].audit[0][:12]}… ({runs[0].audit[1]:,} rows)",
             f"{runs[1].audit[0][:12]}… ({runs[1].audit[1]:,} rows)",
             "yes" if same_audit else "**no**"],
        ]))
        parts.append(cost_model(runs[0], runs[1]))
    parts.append(
        "Time, read with care: the sandbox answers each `Id IN (...)` re-read by scanning the "
        "whole object (a real org uses its Id index), so the collections path's re-read "
        "seconds grow with the object's size here; a real org instead adds its network and "
        "save latency to each of the collections path's calls, and its queue time to each "
        "Bulk job.")
    if result.notes:
        parts.append("\n".join(f"- {n}" for n in result.notes))
    return "\n\n".join(parts)


def cost_model(collections: PathRun, bulk: PathRun) -> str:
    """Calls each path needs, per record, from this run's figures, carried to larger sizes."""
    by_object = collections.written_by_object
    written = max(1, sum(by_object.values()))
    per_read = written / max(1, collections.records_read)
    jobs = max(1, bulk.bulk_jobs)
    per_job = _calls_of(bulk, "bulk") / jobs
    rereads_per_job = _calls_of(bulk, "query") / jobs
    resent_per_record = _calls_of(bulk, "composite") / max(1, bulk.records_written)
    reread_per_record = collections.reread_calls / max(1, collections.reread_records)
    rows = []
    for size in (collections.records_read, *MODEL_SIZES):
        to_write = round(size * per_read)
        coll = math.ceil(to_write / 200) + math.ceil(to_write * reread_per_record)
        bulk_jobs = sum(math.ceil(to_write * n / written / JOB_RECORDS)
                        for n in by_object.values())
        bulk_calls = math.ceil(bulk_jobs * (per_job + rereads_per_job)
                               + to_write * resent_per_record) + 1
        query_jobs = len(by_object) * (3 + math.ceil(size / len(by_object) / 100_000))
        rows.append([show_size(size) if size in MODEL_SIZES else f"{size:,} (measured)",
                     f"{to_write:,}", f"{coll:,} ({coll / DAILY_ALLOCATION:.2%})",
                     f"{bulk_calls:,} ({bulk_calls / DAILY_ALLOCATION:.3%})",
                     f"{math.ceil(size / 2_000):,}", f"about {query_jobs:,}"])
    shares = ", ".join(f"{obj} {n / written:.0%}" for obj, n in sorted(by_object.items()))
    return "\n\n".join([
        f"Cost model, from this run: {per_read:.2f} record(s) written per record read "
        f"(by object: {shares}). Collections write ceil(records/200) and re-read by id "
        f"{reread_per_record:.4f} call per record; a Bulk job cost {per_job:.1f} calls here "
        f"(create, upload, close, {bulk.polls / jobs:.1f} polls, two results) and "
        f"{rereads_per_job:.1f} re-read query, in jobs of up to {JOB_RECORDS:,} records of "
        f"one object, and {resent_per_record * 200:.3f} collections call per 200 records for "
        "what a job failed and collections get past (duplicate alerts: the sandbox's standard "
        "duplicate rules are on, as in new orgs); a run asks /limits once. Reads: query "
        "batches of 2,000, or a query job "
        "per object (create, a few polls, a results set per 100,000 records). Polls depend "
        "on how long a real org takes over a job: each extra poll is one call per job.",
        table(["Salesforce records read", "records to write", "collections: calls (share)",
               "Bulk: calls (share)", "reads: query batches", "reads: query jobs"], rows),
    ])
