"""The engine: read -> normalise -> reconcile -> plan -> apply -> checkpoint.

Correctness rests on one idea: the **mirror** in the state DB holds the last-seen raw record
of everything we read, and plans are computed from the mirror, never from one page of reads.
So:

- a page of changed records and the watermark that covers it are saved in one transaction;
  the watermark never passes the run's start less a safety lag (search indexes lag behind
  writes), so records indexed late are read again;
- a record read longer ago than a few seconds is read again right before it is written, and
  planned again if someone changed it meanwhile: neither CRM has conditional batch updates,
  so this bounds the window in which an edit could be overwritten (`Engine._reread`);
- deleted and merged records (tombstones) leave planning; a merge moves links to its survivor;
- each batch's changes are audited as intended, committed, before the batch is sent, and
  given their outcome when the CRM answers; a run killed in between leaves intents that the
  next run resolves by reading those records (`Engine._resolve_intents`), so every change
  that reached a CRM is audited under the run that made it and can be rolled back;
- our own writes update the mirror, so reading them back plans nothing (no echo);
- a run plans only the records that changed since a run last planned and applied them, with
  every record tied to them, and the organisations with a trigger that starts or expires
  today: so an expired trigger is un-flagged though no record changed (`Engine._plan_scope`).

Dry-run takes exactly the same path; only the adapter call and what records its result are
skipped.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from collections.abc import Mapping as TypingMapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from queue import Full, Queue
from typing import Any

from connector.exceptions import (
    ApiError,
    ConfigurationError,
    CrmsyncError,
    RunLockLost,
    RunStoppedEarly,
    StateStoreError,
)
from connector.mapping import Mapping, WriteRule
from connector.model import (
    Change,
    Rejection,
    SourceRef,
    System,
)
from connector.normalize import normalise, record_fields, record_id
from connector.plan import FORWARD_ONLY_FIELDS, make_plan, same_value
from connector.preflight import canonical_values, refuse_unwritable
from connector.reconcile import DisjointSets, Duplicate, Reconciled, duplicates, reconcile
from connector.state import STALE_LOCK_SECONDS, ChangeSpool, StateStore
from connector.systems.base import CrmAdapter, Page, RecordUpdate, WriteResult

__all__ = [
    "OBJECTS",
    "Engine",
    "EngineOptions",
    "PlanDocument",
    "Progress",
    "RunReport",
    "in_chunks",
    "parse_objects",
    "paused_gc",
    "planning_groups",
]

log = logging.getLogger("crmsync.sync")

OBJECTS: dict[str, tuple[str, ...]] = {
    "hubspot": ("companies", "contacts", "deals"),
    "salesforce": ("Account", "Lead", "Contact", "Opportunity"),
}
WRITE_BATCH = {"hubspot": 100, "salesforce": 200}
OVERLAP = timedelta(minutes=2)  # read again before each watermark: clocks and commits skew
MAX_ID_LENGTH = 64  # HubSpot ids are numbers, Salesforce ids 15 or 18 characters
REPORT_CHANGE_ROWS = 10_000  # rows a report lists; the audit log and plan files hold them all
PREFETCH_PAGES = 2
SAVE_EVERY = 5_000  # planned changes held before they go to the spool
PLAN_CHUNK = 2_000  # records planned together: whole groups, a few thousand records at a time
PLAN_FORMAT = 1

EXIT_OK, EXIT_REJECTS, EXIT_CONFIG, EXIT_STOPPED, EXIT_FAILED = 0, 1, 2, 3, 4


class Progress:
    """What the engine reports while it works; the CLI draws bars, tests record calls.

    `wants_totals` asks for one count call per object before a backfill, for an ETA; only
    progress displays set it, so scheduled runs spend no API calls on it.
    """

    wants_totals = False

    def start(self, key: str, total: int | None = None) -> None: ...
    def advance(self, key: str, count: int) -> None: ...
    def finish(self, key: str) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class RunReport:
    """What a run did; `exit_code` tells a scheduler what happened."""

    kind: str
    dry_run: bool
    run_id: int | None = None
    status: str = "running"
    started_at: str = ""
    ended_at: str = ""
    duration_seconds: float = 0.0
    read: dict[str, int] = field(default_factory=dict)
    rejected_records: int = 0
    planned: int = 0
    applied: int = 0
    write_rejected: int = 0
    retry_later: int = 0
    skipped: int = 0
    api_calls: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    plan_scope: str = ""
    records_planned: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    changes_not_listed: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    deleted: int = 0  # mirrored records found deleted in their CRM this run
    merged: int = 0  # ... or merged into another record (their links moved to the survivor)
    reread_records: int = 0  # records read again right before their write (a stale read)
    reread_calls: int = 0  # the API calls that cost
    reread_changed: int = 0  # records found changed by someone since the run read them
    # intended writes of earlier runs that died before hearing the CRM's answer, resolved
    # by reading the records: "applied" (audited under that run) or "not_applied"
    intents_resolved: dict[str, int] = field(
        default_factory=lambda: {"applied": 0, "not_applied": 0})
    # groups of two or more records of one system linked into one person or organisation,
    # among the records this run planned: {entity, system, records, linked_by}, the first
    # REPORT_CHANGE_ROWS listed (`crmsync status` counts every group known)
    duplicate_groups: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {
            "ok": EXIT_OK,
            "rejects": EXIT_REJECTS,
            "config_error": EXIT_CONFIG,
            "stopped": EXIT_STOPPED,
        }.get(self.status, EXIT_FAILED)

    def counts(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "rejected_records": self.rejected_records,
            "planned": self.planned,
            "applied": self.applied,
            "write_rejected": self.write_rejected,
            "retry_later": self.retry_later,
            "skipped": self.skipped,
            "plan_scope": self.plan_scope,
            "records_planned": self.records_planned,
            "deleted": self.deleted,
            "merged": self.merged,
            "reread_records": self.reread_records,
            "reread_calls": self.reread_calls,
            "reread_changed": self.reread_changed,
            "intents_resolved": self.intents_resolved,
            "duplicate_groups": self.duplicate_groups,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


@dataclass(frozen=True)
class PlanDocument:
    """A plan saved by `crmsync plan -o`, applied later by `crmsync apply`."""

    created_at: str
    mapping_sha256: str
    today: str
    changes: list[Change]

    def to_json(self) -> str:
        return json.dumps(
            {
                "crmsync_plan": PLAN_FORMAT,
                "created_at": self.created_at,
                "mapping_sha256": self.mapping_sha256,
                "today": self.today,
                "changes": [c.model_dump(mode="json") for c in self.changes],
            },
            indent=2,
            default=str,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "plan") -> PlanDocument:
        try:
            data = json.loads(text)
            if data.get("crmsync_plan") != PLAN_FORMAT:
                raise ValueError(f"not a crmsync plan (format {PLAN_FORMAT})")
            changes = [Change.model_validate(c) for c in data["changes"]]
            document = cls(data["created_at"], data["mapping_sha256"], data["today"], changes)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"{source}: cannot read plan: {exc}") from None
        problems = [f"change {index}: {problem}" for index, change in enumerate(changes)
                    if (problem := _malformed(change))]
        if problems:
            raise ConfigurationError(f"{source}: not a plan crmsync could have made: "
                                     + _listed(problems))
        return document


def _malformed(change: Change) -> str | None:
    """What makes `change` impossible for crmsync to have planned, whatever the mapping."""
    system, obj = change.system.value, change.object_type
    if obj not in OBJECTS[system]:
        return f"unknown object {system}.{obj}; known: {', '.join(OBJECTS[system])}"
    rid = change.record_id
    if not rid or len(rid) > MAX_ID_LENGTH or not rid.isalnum():
        return (f"record id {rid[:40]!r}{'...' if len(rid) > 40 else ''} is not a {system} "
                f"record id (letters and digits, at most {MAX_ID_LENGTH})")
    if not change.field or len(change.field) > 255:
        return f"field {change.field[:40]!r} is not a field name"
    for name in ("before", "after"):
        if not _is_single_value(getattr(change, name)):
            return f"{change.ref} {change.field}: {name} is not a single value"
    if change.step not in (0, 1):
        return f"{change.ref} {change.field}: step {change.step} (a change has step 0 or 1)"
    return None


def _is_single_value(value: Any) -> bool:
    return value is None or (type(value) in (str, int, float, bool)
                             and len(str(value)) <= 100_000)


def _listed(problems: list[str], shown: int = 20) -> str:
    more = f"\n  ... and {len(problems) - shown} more" if len(problems) > shown else ""
    return "\n  " + "\n  ".join(problems[:shown]) + more


@dataclass(frozen=True)
class EngineOptions:
    """How the engine guards its writes; `from_settings` reads them from crmsync's settings.

    `reread_older_than`: neither CRM offers a conditional batch update (write only if the
    record still holds what we read), so an edit between a run's read and its write would be
    overwritten. A record read longer ago than this is read again just before it is written,
    in batches, and re-planned if someone changed it: the window shrinks to one round trip.
    `safety_lag`: search indexes (HubSpot's especially) show a write some time after it is
    made; the sync watermark stays this far behind the run's start, per system, so a record
    indexed late is still read by a later run (the mirror makes re-reading it cheap).
    `lock_stale_seconds`: a lock whose heartbeat is older is taken over; beats come every
    fifth of it, from a thread of their own.
    """

    reread_older_than: timedelta = timedelta(seconds=5)
    safety_lag: TypingMapping[str, timedelta] = field(default_factory=lambda: {
        "hubspot": timedelta(minutes=10), "salesforce": timedelta(minutes=10)})
    lock_stale_seconds: float = STALE_LOCK_SECONDS

    @property
    def heartbeat_seconds(self) -> float:
        return self.lock_stale_seconds / 5

    @classmethod
    def from_settings(cls, settings: Any) -> EngineOptions:
        return cls(
            reread_older_than=timedelta(seconds=settings.reread_older_than_seconds),
            safety_lag={"hubspot": timedelta(seconds=settings.hubspot_safety_lag_seconds),
                        "salesforce": timedelta(seconds=settings.salesforce_safety_lag_seconds)},
            lock_stale_seconds=settings.lock_stale_seconds,
        )


def mapping_fingerprint(mapping: Mapping) -> str:
    """A hash of every rule that decides what a plan writes: a saved plan made with another
    mapping is refused, and a changed mapping makes the next run plan every record again."""
    decisive = {f.name: _ordered(getattr(mapping, f.name)) for f in fields(mapping)
                if f.name not in ("files", "label_packs")}
    return hashlib.sha256(repr(sorted(decisive.items())).encode()).hexdigest()


def _ordered(value: Any) -> Any:
    """`value` with every set and dict in a fixed order: their reprs vary between processes."""
    if isinstance(value, set | frozenset):
        return sorted((_ordered(v) for v in value), key=repr)
    if isinstance(value, dict):
        return sorted(((repr(k), _ordered(v)) for k, v in value.items()), key=lambda kv: kv[0])
    if isinstance(value, list | tuple):
        return [_ordered(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, [(f.name, _ordered(getattr(value, f.name)))
                                       for f in fields(value)])
    return value


def parse_objects(text: str | None) -> set[tuple[str, str]] | None:
    """`hubspot.contacts,salesforce.Lead` (or bare object names) -> {(system, object)}."""
    if not text:
        return None
    chosen: set[tuple[str, str]] = set()
    for item in (part.strip() for part in text.split(",") if part.strip()):
        system, _, obj = item.rpartition(".")
        matches = [
            (s, o) for s, objs in OBJECTS.items() for o in objs
            if o.casefold() == obj.casefold() and (not system or s == system.casefold())
        ]
        if not matches:
            known = ", ".join(f"{s}.{o}" for s, objs in OBJECTS.items() for o in objs)
            raise ConfigurationError(f"--objects: unknown object {item!r}; known: {known}")
        chosen.update(matches)
    return chosen


class Engine:
    """Runs sync, backfill, plan, apply and rollback over one state store and two adapters."""

    def __init__(
        self,
        store: StateStore,
        mapping: Mapping,
        adapters: TypingMapping[str, CrmAdapter] | Iterable[CrmAdapter],
        *,
        today: date | None = None,
        progress: Progress | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        options: EngineOptions | None = None,
    ) -> None:
        self.store = store
        self.options = options or EngineOptions()
        self.mapping = mapping
        self.adapters: dict[str, CrmAdapter] = (
            dict(adapters) if isinstance(adapters, TypingMapping)
            else {adapter.system: adapter for adapter in adapters}
        )
        self.today = today
        self.progress = progress or Progress()
        self.clock = clock
        self._fingerprinted: Mapping | None = None
        self._fingerprint = ""

    def _mapping_sha256(self) -> str:
        """`mapping_fingerprint`, worked out once per mapping: it walks every rule."""
        if self._fingerprinted is not self.mapping:
            self._fingerprint = mapping_fingerprint(self.mapping)
            self._fingerprinted = self.mapping
        return self._fingerprint

    # ---- public runs -------------------------------------------------------------------------

    def sync(self, *, dry_run: bool = False, replan_all: bool = False) -> RunReport:
        """One incremental run: read what changed since each watermark, then plan and apply.

        Only records that changed, those tied to them and organisations whose trigger starts
        or expires today are planned, unless `replan_all` or the mapping changed since the
        last run (see `_plan_scope`).
        """
        return self._run("sync", dry_run,
                         lambda ctx: self._read_and_apply(ctx, None, replan_all=replan_all))

    def backfill(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        objects: set[tuple[str, str]] | None = None,
        dry_run: bool = False,
    ) -> RunReport:
        """Read everything (optionally within [since, until)); resumable after a kill."""
        window = (since, until, objects)
        return self._run("backfill", dry_run,
                         lambda ctx: self._read_and_apply(ctx, window, replan_all=True))

    def plan(self) -> tuple[RunReport, PlanDocument]:
        """Steps 1-7: read, normalise, reconcile, plan; nothing is written to the CRMs."""
        holder: dict[str, PlanDocument] = {}

        def body(ctx: _Run) -> None:
            self._read_all_changed(ctx)
            spool = self._plan_from_mirror(ctx, self._plan_scope(ctx, replan_all=False))
            holder["doc"] = PlanDocument(
                created_at=ctx.started.isoformat(),
                mapping_sha256=self._mapping_sha256(),
                today=ctx.today.isoformat(),
                changes=list(spool.changes()),
            )
            ctx.report.planned = spool.count
            self._list_changes(ctx, spool, sent_only=False)

        report = self._run("plan", True, body)
        return report, holder.get("doc", PlanDocument("", "", "", []))

    def apply(self, document: PlanDocument, *, dry_run: bool = False) -> RunReport:
        """Apply a saved plan, unless a record it touches changed since the plan was made."""

        def body(ctx: _Run) -> None:
            if document.mapping_sha256 != self._mapping_sha256():
                raise ConfigurationError(
                    "the plan was made with a different mapping; make a new plan with "
                    "`crmsync plan -o plan.json`"
                )
            refused = self._not_plannable(document.changes)
            if refused:
                raise ConfigurationError(
                    f"refusing the whole plan: {len(refused)} change(s) are not what this "
                    "mapping's write-back rules could produce:" + _listed(refused))
            stale = self._changed_since_plan(ctx, document.changes)
            if stale:
                raise ConfigurationError(
                    f"refusing the plan: {len(stale)} field(s) changed since it was made, e.g. "
                    + "; ".join(stale[:5]) + ". Make a new plan."
                )
            ctx.report.planned = len(document.changes)
            ctx.read_at = self.clock()
            self._apply(ctx, self._spooled(document.changes))

        return self._run("apply", dry_run, body)

    def rollback(self, run_id: int, *, dry_run: bool = False) -> RunReport:
        """Write back the before-values of a run where fields still hold its after-values."""

        def body(ctx: _Run) -> None:
            entries = self.store.audit_entries(run_id)
            if self.store.run(run_id) is None:
                raise ConfigurationError(f"no run {run_id} in {self.store.path}")
            latest = {}
            for entry in entries:  # the first before and the last after, per field
                key = (entry.ref, entry.field)
                before = latest[key][0] if key in latest else entry.before
                latest[key] = (before, entry.after)
            changes, skipped = self._rollback_changes(ctx, run_id, latest)
            ctx.report.skipped = len(skipped)
            ctx.report.rejects.extend(skipped)
            ctx.report.planned = len(changes)
            ctx.read_at = self.clock()
            self._apply(ctx, self._spooled(changes))

        return self._run("rollback", dry_run, body)

    # ---- the run frame -----------------------------------------------------------------------

    def _run(self, kind: str, dry_run: bool, body: Callable[[_Run], None]) -> RunReport:
        report = RunReport(kind=kind, dry_run=dry_run)
        started = self.clock()
        report.started_at = started.isoformat()
        try:
            self.store.acquire_lock(f"crmsync {kind}", stale_after=self.options.lock_stale_seconds)
        except RunStoppedEarly as exc:
            report.status, report.message = "stopped", str(exc)
            return report
        except StateStoreError as exc:
            report.status, report.message = "failed", str(exc)
            return report
        try:
            self.store.start_heartbeat(self.options.heartbeat_seconds)
            report.run_id = self.store.start_run(kind, dry_run=dry_run)
            ctx = _Run(report, started, self.today or started.date())
            log.info("run %s (%s%s) started", report.run_id, kind,
                     ", dry run" if dry_run else "",
                     extra={"fields": {"run_id": report.run_id, "kind": kind,
                                       "dry_run": dry_run}})
            self._resolve_intents(ctx)
            body(ctx)
            self._end_status(report)
        except RunStoppedEarly as exc:
            report.status, report.message = "stopped", f"{exc} Rerun to continue."
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from a scheduler (see cli.py)
            report.status = "stopped"
            report.message = ("interrupted; everything read or written so far is saved. "
                              "Rerun to continue.")
        except ConfigurationError as exc:
            report.status, report.message = "config_error", str(exc)
        except (ApiError, CrmsyncError) as exc:  # StateStoreError too
            report.status, report.message = "failed", str(exc)
        except sqlite3.Error as exc:  # a statement outside a transaction
            report.status, report.message = "failed", str(self.store.problem(exc))
        except Exception as exc:  # a bug: the run must still end, recorded, lock released
            log.exception("run %s failed unexpectedly", report.run_id)
            report.status, report.message = "failed", _one_line(f"{type(exc).__name__}: {exc}")
        finally:
            self._end_run(report, started)
        return report

    @staticmethod
    def _end_status(report: RunReport) -> None:
        """"rejects" (exit 1) when records or writes were refused or left for a retry."""
        if report.retry_later:
            report.message = (f"{report.retry_later} write(s) pending retry: the next run "
                              "tries them again")
        failed = report.rejected_records or report.write_rejected or report.retry_later
        report.status = "rejects" if failed else "ok"

    def _end_run(self, report: RunReport, started: datetime) -> None:
        """Record the run's end and release the lock, even when the state DB fails: then the
        run is failed, and the message says the run row could not be written."""
        ended = self.clock()
        report.ended_at = ended.isoformat()
        report.duration_seconds = round((ended - started).total_seconds(), 3)
        report.api_calls = self._usage()
        try:
            if report.run_id is not None:
                self.store.finish_run(report.run_id, report.status, report.counts(),
                                      report.api_calls, report.message)
        except (sqlite3.Error, StateStoreError) as exc:
            problem = exc if isinstance(exc, StateStoreError) else self.store.problem(exc)
            report.status = "failed"
            report.message = "; ".join(filter(None, [
                report.message, f"the run could not be recorded as finished: {problem}"]))
        try:
            self.store.release_lock()
        except sqlite3.Error as exc:
            report.status = "failed"
            report.message = "; ".join(filter(None, [
                report.message, f"the run lock could not be released: {self.store.problem(exc)}"]))
        level = logging.INFO if report.status in ("ok", "rejects") else logging.ERROR
        log.log(level, "run %s %s: planned %s, applied %s, rejected %s/%s, retry later %s%s",
                report.run_id, report.status, report.planned, report.applied,
                report.rejected_records, report.write_rejected, report.retry_later,
                f" ({report.message})" if report.message else "",
                extra={"fields": {"run_id": report.run_id, "status": report.status,
                                  **report.counts(), "api_calls": report.api_calls}})

    def _usage(self) -> dict[str, Any]:
        out = {}
        for system, adapter in self.adapters.items():
            usage = adapter.usage()
            out[system] = {"calls": usage.calls, "retries": usage.retries,
                           "by_operation": dict(usage.by_operation),
                           "daily_used": usage.daily_used,
                           "daily_allocation": usage.daily_allocation}
        return out

    # ---- reading -----------------------------------------------------------------------------

    def _read_and_apply(self, ctx: _Run, backfill: tuple | None, *, replan_all: bool) -> None:
        if backfill is None:
            self._read_all_changed(ctx)
        else:
            self._read_backfill(ctx, *backfill)
        scope = self._plan_scope(ctx, replan_all)
        spool = self._plan_from_mirror(ctx, scope)
        ctx.report.planned = spool.count
        self.store.left_behind.clear()
        self._apply(ctx, spool)
        if not ctx.report.dry_run:  # every dirty record was planned, and its plan applied
            with self.store.transaction():
                self.store.clear_dirty()
                # their groups, and those a re-read record left: next run
                self.store.mark_dirty(ctx.changed_since_read | self.store.left_behind)
                if scope == "all":
                    self.store.set_meta("planned_mapping", self._mapping_sha256())

    def _objects(self, chosen: set[tuple[str, str]] | None = None) -> Iterator[tuple[str, str]]:
        for system, objects in OBJECTS.items():
            if system not in self.adapters:
                continue
            for obj in objects:
                if chosen is None or (system, obj) in chosen:
                    yield system, obj

    def _fields(self, system: str, obj: str) -> list[str]:
        return sorted(self.mapping.fields_read(system).get(obj, set()))

    def _read_all_changed(self, ctx: _Run) -> None:
        reads = []
        for system, obj in self._objects():
            mark = self.store.watermark(system, obj)
            since = mark - OVERLAP if mark else None
            pages = self.adapters[system].read_changed(obj, since, self._fields(system, obj))
            reads.append((system, obj, pages, None))
        self._consume(ctx, reads, watermark_kind="sync")
        self._read_deleted(ctx)

    def _read_deleted(self, ctx: _Run) -> None:
        """Records deleted or merged away since the "deleted" watermark (with the same overlap,
        and never past the run's start), each object's pages with their watermark in one
        transaction: they leave planning, and the records tied to them are planned again."""
        for system, obj in self._objects():
            mark = self.store.watermark(system, obj, "deleted")
            since = mark - OVERLAP if mark else None
            for page in self.adapters[system].read_deleted(obj, since):
                with self.store.transaction():
                    self._bury(ctx, system, obj, page)
                    if page.max_modified is not None:
                        newest = min(page.max_modified, ctx.started)
                        if mark is None or newest > mark:
                            self.store.set_watermark(system, obj, newest, "deleted")
                            mark = newest
                self.store.heartbeat()

    def _bury(self, ctx: _Run, system: str, obj: str, page: Page) -> None:
        """Apply a page's tombstones to the mirror (inside the caller's transaction)."""
        if page.tombstones:
            deleted, merged = self.store.apply_tombstones(system, obj, page.tombstones)
            ctx.report.deleted += deleted
            ctx.report.merged += merged

    def _watermark_cap(self, ctx: _Run, system: str) -> datetime:
        """How far a sync watermark may go: the run's start less the system's safety lag."""
        return ctx.started - self.options.safety_lag.get(system, timedelta())

    def _read_backfill(self, ctx: _Run, since, until, chosen) -> None:
        """Objects finished by an interrupted backfill are skipped; the rest are read again.

        Re-reading a half-done object costs its list calls again, but everything it had
        mirrored stays: a kill loses no work that reached the state DB.
        """
        reads = []
        for system, obj in self._objects(chosen):
            if self.store.cursor(system, obj, "backfill") == "done":
                self.progress.note(f"{system}.{obj}: already backfilled, skipped")
                continue
            adapter = self.adapters[system]
            total = adapter.count(obj, since, until) if self.progress.wants_totals else None
            reads.append((system, obj, adapter.read_all(obj, self._fields(system, obj), since,
                                                        until), total))

        def finished(system: str, obj: str) -> None:
            with self.store.transaction():
                self.store.set_watermark(system, obj, None, "backfill", cursor="done")
                if until is None and self.store.watermark(system, obj) is None:
                    # everything up to the run's start is mirrored: sync continues from there,
                    # less the safety lag (records indexed late are read again)
                    self.store.set_watermark(system, obj, self._watermark_cap(ctx, system))

        self._consume(ctx, reads, watermark_kind="backfill", finished=finished)
        for system, obj in self._objects(chosen):  # the backfill is complete: reset for next time
            self.store.clear_watermark(system, obj, "backfill")

    def _consume(self, ctx: _Run, reads: list[tuple[str, str, Iterable[Page], int | None]],
                 watermark_kind: str,
                 finished: Callable[[str, str], None] | None = None) -> None:
        """Mirror every page of every (system, object, pages, total) read, in order.

        One reader thread runs through all the objects, so the next object's first request
        is under way while the engine mirrors the last page of the one before.
        """
        totals = {(system, obj): total for system, obj, _, total in reads}

        def stream() -> Iterator[tuple[str, str, Page | None]]:
            for system, obj, pages, _ in reads:
                for page in pages:
                    yield system, obj, page
                yield system, obj, None  # the object is read to its end

        for system, obj, page in _prefetched(stream(), PREFETCH_PAGES):
            key = f"{system}.{obj}"
            if key not in ctx.report.read:
                ctx.report.read[key] = 0
                self.progress.start(key, totals[system, obj])
            if page is None:
                self.progress.finish(key)
                log.info("read %s %s record(s)", ctx.report.read[key], key,
                         extra={"fields": {"object": key, "records": ctx.report.read[key]}})
                if finished is not None:
                    finished(system, obj)
                continue
            with self.store.transaction():
                self.store.mirror_page(
                    system, obj, ((record_id(system, r) or "?", r) for r in page.records),
                    page.max_modified, ctx.report.run_id)
                self._bury(ctx, system, obj, page)
                if watermark_kind == "sync" and page.max_modified is not None:
                    mark = min(page.max_modified, self._watermark_cap(ctx, system))
                    current = self.store.watermark(system, obj)
                    if current is None or mark > current:
                        self.store.set_watermark(system, obj, mark)
            self.store.heartbeat()
            ctx.report.read[key] += len(page.records)
            self.progress.advance(key, len(page.records))

    # ---- deciding ----------------------------------------------------------------------------

    def _plan_scope(self, ctx: _Run, replan_all: bool) -> str:
        """"all" records, or only the "changed" ones and those tied to them.

        A record's plan stays the same until the record, a record tied to it or the mapping
        changes, or a day comes on which one of its triggers starts or expires (the only way
        time enters a plan). So a run plans only the groups holding a record that is `dirty`
        (changed, or its trigger day has come, since a run last planned it and applied the
        plan) or has an open reject; and everything when asked to, or after a mapping change.
        """
        if replan_all or self.store.meta("identity_complete") != "1":
            return "all"
        if self.store.meta("planned_mapping") != self._mapping_sha256():
            return "all"
        return "changed"

    def _plan_from_mirror(self, ctx: _Run, scope: str) -> ChangeSpool:
        """Normalise, reconcile and plan the mirrored records in `scope`, in whole groups.

        A group holds the records that can end up in one entity or affect it: they share an
        id, an e-mail, a domain, an organisation or a deal (`identity_keys`, indexed in the
        state DB as records are mirrored), directly or through others, or a stored link.
        Reconciling never looks beyond a group, so planning group by group gives exactly the
        plan a single pass over everything gives (tests/test_plan_groups.py), while memory
        holds a few thousand records' views (`PLAN_CHUNK`), not the whole mirror's (4-5 kB a
        record). The changes go to a spool on disk, not a list.
        """
        with paused_gc():
            with self.store.transaction():
                if self.store.meta("identity_complete") != "1":  # a DB from before the index
                    self.store.rebuild_identity()
                self.store.mark_due(ctx.today.isoformat())
            open_refs = {r.ref: r.stage for r in self.store.open_rejects()}
            pairs, links = self._records_in_scope(scope, open_refs)
            partners: dict[str, list[str]] = {}  # stored links, from either end
            for a, b in links:
                partners.setdefault(a, []).append(b)
                partners.setdefault(b, []).append(a)
            results = _PlanResults(self.store, ctx.report.run_id)
            groups = planning_groups(pairs, links)
            del links
            with self.store.transaction():
                for rows in in_chunks(self.store.mirror_by_group(groups), PLAN_CHUNK):
                    views = []
                    for position, key, raw in rows:
                        system, obj, _ = key.split(":", 2)
                        view = normalise(self.mapping, system, obj, raw)
                        if isinstance(view, Rejection):
                            results.rejected.append((position, view))
                        else:
                            views.append(view)
                        if open_refs.get(key) == "read":
                            results.was_rejected.add(key)
                    group_links = [(key, other) for _, key, _ in rows
                                   for other in partners.get(key, ())]
                    reconciled = reconcile(self.mapping, views, ctx.today, group_links)
                    results.add(len(rows), reconciled,
                                make_plan(self.mapping, reconciled, ctx.today).changes, ctx.today)
                    results.add_duplicates([key for _, key, _ in rows],
                                           duplicates(reconciled, views, group_links))
                results.save()
            rejections = [r for _, r in sorted(results.rejected, key=lambda found: found[0])]
            self._ledger_read_rejects(ctx, rejections, results.was_rejected
                                      - {str(r.source) for r in rejections})
            ctx.report.plan_scope, ctx.report.records_planned = scope, results.records
            self._report_duplicates(ctx, results.duplicates)
            log.info("planned %s record(s) (%s): %s change(s)", results.records, scope,
                     results.spool.count,
                     extra={"fields": {"plan_scope": scope, "records_planned": results.records,
                                       "changes": results.spool.count}})
            return results.spool

    @staticmethod
    def _report_duplicates(ctx: _Run, found: list[Duplicate]) -> None:
        found.sort(key=lambda d: (d.records[0], d.entity))
        ctx.report.duplicate_groups = len(found)
        ctx.report.duplicates = [
            {"entity": d.entity, "system": d.system, "records": list(d.records),
             "linked_by": list(d.linked_by)} for d in found[:REPORT_CHANGE_ROWS]]
        if found:
            log.warning("%s group(s) of duplicate records: two or more records of one system "
                        "linked into one person or organisation (see the report or `crmsync "
                        "status`)", len(found),
                        extra={"fields": {"duplicate_groups": len(found)}})

    def _records_in_scope(self, scope: str, open_refs: Collection[str]
                          ) -> tuple[Iterable[tuple[str, str]], list[tuple[str, str]]]:
        """(ref, identity key) pairs and stored links of the records to plan."""
        if scope == "all":
            return self.store.identity_pairs(), self.store.link_texts()
        wanted = self.store.group_closure([*self.store.dirty_refs(), *open_refs])
        return self.store.identity_pairs(wanted), self.store.link_texts(wanted)

    def _ledger_read_rejects(self, ctx: _Run, rejected: list[Rejection],
                             now_readable: set[str]) -> None:
        """Ledger this run's read rejects; resolve `now_readable`, open rejects that read fine."""
        with self.store.transaction():
            for rejection in rejected:
                self.store.reject(str(rejection.source), "read", rejection.reason,
                                  ctx.report.run_id, rejection.field)
                ctx.report.rejects.append({"record": str(rejection.source), "stage": "read",
                                           "field": rejection.field,
                                           "reason": rejection.reason})
            self.store.resolve_rejects(now_readable, "read")
        ctx.report.rejected_records = len(rejected)

    # ---- writing -----------------------------------------------------------------------------

    def _spooled(self, changes: list[Change]) -> ChangeSpool:
        spool = ChangeSpool(self.store.db)
        spool.add(changes)
        return spool

    def _apply(self, ctx: _Run, spool: ChangeSpool) -> None:
        """Send the changes in batches per object; record each result before the next batch.

        Before each batch: stop if another run took the lock, and read the batch's records
        again if the run read them too long ago (`_reread`). Before the first, dry runs too:
        refuse (exit 2) if a field written is missing, read-only or lacks a value written."""
        refuse_unwritable(self.mapping, self.adapters, spool.objects())
        try:
            for system, obj in spool.objects():
                confirm = {r.field for r in self.mapping.write_back.get((system, obj), ())
                           if r.confirm}
                for planned in spool.record_batches(system, obj, WRITE_BATCH[system], confirm):
                    self._check_lock()
                    batch = self._reread(ctx, system, obj, spool, planned)
                    if not batch:
                        continue
                    updates = _updates([change for _, change in batch])
                    if ctx.report.dry_run:
                        intents: list[int] = []
                        results = [WriteResult(u.record_id, "applied", step=u.step)
                                   for u in updates]
                    else:
                        intents = self._record_intents(ctx, batch)
                        results = self.adapters[system].write(obj, updates,
                                                              confirm_fields=confirm)
                    self._record_results(ctx, system, obj, spool, batch, updates, results,
                                         intents)
        finally:
            self._list_changes(ctx, spool, sent_only=True)

    def _record_intents(self, ctx: _Run, batch: list[tuple[int, Change]]) -> list[int]:
        """Audit the batch as intended, committed before it is sent: a kill after the CRM
        accepts it and before its answer is recorded must not leave changes no audit row
        holds (they could not be rolled back). Returns the rows' ids, in batch order."""
        ctx.batches += 1
        with self.store.transaction():
            return self.store.record_intents(ctx.report.run_id, ctx.batches,
                                             [change for _, change in batch])

    def _resolve_intents(self, ctx: _Run) -> None:
        """Give the intended writes of runs that died before hearing the CRM's answer their
        outcome, by reading just those records: a field that holds the intended value was
        written ("applied", audited under the run that wrote it, so rolling that run back
        undoes it); any other was not ("not_applied"). A lifecycle clear-then-set that holds
        its clear made only its first step. Records of a system not configured this run stay
        unresolved. What is read refreshes the mirror: the dead run never mirrored its writes.
        """
        pending = [e for e in self.store.audit_intents(not_run=ctx.report.run_id)
                   if e.ref.system.value in self.adapters]
        if not pending:
            return
        current = self._current_values(ctx, {e.ref for e in pending})
        fields: dict[tuple[int, str, str], list[Any]] = {}
        for entry in pending:
            fields.setdefault((entry.run_id, str(entry.ref), entry.field), []).append(entry)
        outcomes: list[tuple[int, str]] = []
        for (_, ref, _), entries in fields.items():
            values = current.get(ref)
            entries.sort(key=lambda e: e.step)
            reached = -1  # the last step the field shows was made
            if values is not None:
                now_value = values.get(entries[0].field)
                reached = max((e.step for e in entries if same_value(now_value, e.after)),
                              default=-1)
            outcomes += [(e.id, "applied" if e.step <= reached else "not_applied")
                         for e in entries]
        with self.store.transaction():
            self.store.resolve_audit(outcomes)
        for _, status in outcomes:
            ctx.report.intents_resolved[status] += 1
        log.warning("resolved %s intended write(s) of interrupted run(s) by reading them back: "
                    "%s applied (audited under their run), %s not applied", len(outcomes),
                    ctx.report.intents_resolved["applied"],
                    ctx.report.intents_resolved["not_applied"],
                    extra={"fields": {"intents_resolved": ctx.report.intents_resolved}})

    def _check_lock(self) -> None:
        if not self.store.holds_lock():
            raise RunLockLost(
                f"another run took over this run's lock in {self.store.path} (it found the "
                "heartbeat stale); this run stopped before its next write, so the two never "
                "write at once.")

    def _reread(self, ctx: _Run, system: str, obj: str, spool: ChangeSpool,
                batch: list[tuple[int, Change]]) -> list[tuple[int, Change]]:
        """The batch to send, its records read again first if the run read them more than
        `reread_older_than` ago (see EngineOptions).

        What was read is mirrored. A record someone changed is planned again: a sync replaces
        its changes with the new plan of its group (and plans the group again next run, for
        the records already written); apply and rollback leave it out, as their check no
        longer holds. A record gone since is left out. Changes left out are "superseded".
        """
        if self.clock() - ctx.read_at <= self.options.reread_older_than:
            return batch
        adapter = self.adapters[system]
        ids = sorted({change.record_id for _, change in batch})
        calls = adapter.usage().calls
        records = adapter.read_by_ids(obj, ids, self._fields(system, obj))
        ctx.report.reread_calls += adapter.usage().calls - calls
        ctx.report.reread_records += len(ids)
        with self.store.transaction():
            changed = set(self.store.mirror_changed(
                system, obj, [(record_id(system, r) or "?", r) for r in records],
                ctx.report.run_id))
        found = {f"{system}:{obj}:{record_id(system, r)}" for r in records}
        gone = {f"{system}:{obj}:{rid}" for rid in ids} - found
        if not changed and not gone:
            return batch
        ctx.report.reread_changed += len(changed)
        ctx.changed_since_read |= changed
        log.info("%s record(s) of %s.%s changed since the run read them: planned again",
                 len(changed), system, obj)
        dropped = [(spool_id, c) for spool_id, c in batch if str(c.ref) in changed | gone]
        spool.record_results([(spool_id, "superseded", None, "changed since read")
                              for spool_id, _ in dropped])
        replanned: list[Change] = []
        if changed and ctx.report.kind in ("sync", "backfill"):
            replanned = [c for c in self._plan_records(ctx, changed) if str(c.ref) in changed]
        kept = [(spool_id, c) for spool_id, c in batch if str(c.ref) not in changed | gone]
        ctx.report.planned += len(replanned) - len(dropped)
        return kept + spool.add_late(replanned)

    def _plan_records(self, ctx: _Run, refs: set[str]) -> list[Change]:
        """The plan of the groups of `refs` as the mirror holds them now: a few records, so
        all in memory, with none of the bookkeeping of a run's plan (the next run redoes
        that, as they stay dirty)."""
        wanted = self.store.group_closure(refs)
        views = []
        for key, raw in self.store.mirrored([_ref(text) for text in wanted]).items():
            system, obj, _ = key.split(":", 2)
            view = normalise(self.mapping, system, obj, raw)
            if not isinstance(view, Rejection):
                views.append(view)
        reconciled = reconcile(self.mapping, views, ctx.today, self.store.link_texts(wanted))
        return make_plan(self.mapping, reconciled, ctx.today).changes

    @staticmethod
    def _list_changes(ctx: _Run, spool: ChangeSpool, *, sent_only: bool) -> None:
        """The report lists the first changes in plan order; a backfill can plan millions."""
        ctx.report.changes = spool.report_rows(REPORT_CHANGE_ROWS, sent_only=sent_only)
        listed_from = spool.sent() if sent_only else spool.count
        ctx.report.changes_not_listed = listed_from - len(ctx.report.changes)

    def _record_results(self, ctx, system, obj, spool: ChangeSpool,
                        batch: list[tuple[int, Change]], updates: list[RecordUpdate],
                        results: list[WriteResult], intents: list[int]) -> None:
        """Each change's outcome: in the spool, the audit (the batch's intents, `intents`,
        none in a dry run), the reject ledger and the mirror, in one transaction."""
        by_update = {(u.record_id, u.step): r for u, r in zip(updates, results, strict=True)}
        touched: dict[str, dict[str, Any]] = {}
        outcomes: list[tuple[int, str, str | None, str | None]] = []
        audited = [] if ctx.report.dry_run else [
            (audit_id, by_update[(change.record_id, change.step)].status)
            for audit_id, (_, change) in zip(intents, batch, strict=True)]
        with self.store.transaction():
            for spool_id, change in batch:
                result = by_update[(change.record_id, change.step)]
                status = result.status
                outcomes.append((spool_id, status, result.code, result.message))
                if status == "applied":
                    ctx.report.applied += 1
                    if not ctx.report.dry_run:
                        touched.setdefault(change.record_id, {})[change.field] = change.after
                    continue
                if status == "rejected":
                    ctx.report.write_rejected += 1
                else:
                    ctx.report.retry_later += 1
                if not ctx.report.dry_run:
                    self.store.reject(str(change.ref), "write",
                                      f"{result.code or status}: {result.message or ''}".strip(),
                                      ctx.report.run_id, change.field, result.code or status)
            spool.record_results(outcomes)
            self.store.resolve_audit(audited)
            if touched and not ctx.report.dry_run:
                self._mirror_writes(ctx, system, obj, touched)
                self.store.resolve_rejects([f"{system}:{obj}:{rid}" for rid in touched], "write")

    def _mirror_writes(self, ctx, system: str, obj: str, touched: dict[str, dict]) -> None:
        """Mirror what was written, so reading it back is no change. Writes from this run's own
        plan leave the record as planned; others (apply of a saved plan, rollback) mark it to
        be planned again, as the plan it was last planned with may no longer hold."""
        refs = [SourceRef(system=System(system), object_type=obj, record_id=rid)
                for rid in touched]
        current = self.store.mirrored(refs)
        updated = []
        for ref in refs:
            raw = current.get(str(ref))
            if raw is None:
                continue
            fields = record_fields(system, raw)
            if fields is not None:
                fields.update(_as_read_back(system, touched[ref.record_id]))
            updated.append((ref, raw, None))
        self.store.mirror_records(updated, ctx.report.run_id,
                                  mark_dirty=ctx.report.kind not in ("sync", "backfill"))

    # ---- apply / rollback checks -------------------------------------------------------------

    def _changed_since_plan(self, ctx: _Run, changes: list[Change]) -> list[str]:
        first = {}
        for change in sorted(changes, key=lambda c: c.step):
            first.setdefault((change.ref, change.field), change.before)
        current = self._current_values(ctx, {ref for ref, _ in first})
        stale = []
        for (ref, name), before in sorted(first.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            now_value = current.get(str(ref), {}).get(name)
            if str(ref) not in current:
                stale.append(f"{ref} no longer exists")
            elif not same_value(now_value, before):
                stale.append(f"{ref} {name} is now {now_value!r}, the plan expected {before!r}")
        return stale

    def _current_values(self, ctx: _Run, refs: set[SourceRef]) -> dict[str, dict[str, Any]]:
        """Fresh values of the given records, read by id. They refresh the mirror, so what a
        write then patches into it is this read, not an older copy."""
        out: dict[str, dict[str, Any]] = {}
        by_object: dict[tuple[str, str], list[str]] = {}
        for ref in refs:
            by_object.setdefault((ref.system.value, ref.object_type), []).append(ref.record_id)
        for (system, obj), ids in sorted(by_object.items()):
            records = self.adapters[system].read_by_ids(obj, sorted(ids),
                                                         self._fields(system, obj))
            with self.store.transaction():
                self.store.mirror_changed(system, obj, [(record_id(system, raw) or "?", raw)
                                                        for raw in records], ctx.report.run_id)
            for raw in records:
                ref = SourceRef(system=System(system), object_type=obj,
                                record_id=record_id(system, raw) or "?")
                out[str(ref)] = record_fields(system, raw) or {}
        return out

    def _not_plannable(self, changes: list[Change]) -> list[str]:
        """Why each change of a saved plan is not one this mapping's write-back rules could
        have planned: a plan file is only text, and `apply` must not write whatever it says."""
        live = self.store.live_refs({str(change.ref) for change in changes})
        problems = []
        for change in changes:
            where = f"{change.ref} {change.field}"
            rule = next((r for r in self.mapping.write_rules(change.system.value,
                                                             change.object_type)
                         if r.field == change.field), None)
            if rule is None:
                problems.append(f"{where}: the field is not written back by the mapping")
            elif not _producible(self.mapping, rule, change):
                problems.append(f"{where}: the mapping cannot produce {change.after!r} "
                                f"(step {change.step})")
            if str(change.ref) not in live:
                problems.append(f"{where}: the record is not in the state DB's mirror (never "
                                "read, or deleted since)")
        return list(dict.fromkeys(problems))

    def _rollback_changes(self, ctx: _Run, run_id: int, latest: dict) -> tuple[list, list]:
        current = self._current_values(ctx, {ref for ref, _ in latest})
        changes: list[Change] = []
        skipped: list[dict[str, Any]] = []
        for (ref, name), (before, after) in sorted(latest.items(),
                                                   key=lambda kv: (str(kv[0][0]), kv[0][1])):
            now_value = current.get(str(ref), {}).get(name)
            if not same_value(now_value, after):
                skipped.append({"record": str(ref), "field": name, "stage": "rollback",
                                "reason": f"changed since run {run_id}: now {now_value!r}, "
                                          f"the run wrote {after!r}"})
                continue
            rule = f"rollback of run {run_id}"
            reason = f"restore {before!r} written over by run {run_id}"
            key = (ref.system.value, ref.object_type, name)
            common = {"system": ref.system, "object_type": ref.object_type,
                      "record_id": ref.record_id, "field": name, "rule": rule, "reason": reason}
            if key in FORWARD_ONLY_FIELDS and before not in (None, ""):
                changes.append(Change(**common, before=now_value, after="", step=0))
                changes.append(Change(**common, before="", after=before, step=1))
            else:
                changes.append(Change(**common, before=now_value, after=before))
        return changes, skipped


@contextmanager
def paused_gc() -> Iterator[None]:
    """Hold off the cyclic garbage collector during an allocation-heavy pass.

    Planning builds hundreds of thousands of small objects that stay alive until the plan is
    made, and each full collection their growth triggers walks every one of them again: nearly
    half of the core's time at 10k persons. They form no reference cycles, so reference counting
    still frees everything that is dropped; the collector runs again once the pass is over.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class _Run:
    report: RunReport
    started: datetime
    today: date
    read_at: datetime = None  # type: ignore[assignment]  # what the plan was read at
    changed_since_read: set[str] = field(default_factory=set)  # found by `_reread`
    batches: int = 0  # write batches sent so far: their number in the audit log

    def __post_init__(self) -> None:
        if self.read_at is None:  # a sync's changes stem from reads made after its start
            self.read_at = self.started


def _ref(text: str) -> SourceRef:
    system, obj, rid = text.split(":", 2)
    return SourceRef(system=System(system), object_type=obj, record_id=rid)


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _producible(mapping: Mapping, rule: WriteRule, change: Change) -> bool:
    """Whether planning could write `change.after` with `rule` (see plan.py)."""
    after = change.after
    if not _is_single_value(after):
        return False
    forward_only = (rule.system, rule.object, rule.field) in FORWARD_ONLY_FIELDS
    if change.step == 1 and not forward_only:
        return False
    if forward_only and change.step == 0 and after == "":
        return True  # a backward move clears the field first
    attribute = rule.source.split(".", 1)[1]
    if attribute == "trigger_type":
        return after in (None, "") or any(same_value(after, t.type) for t in mapping.triggers)
    if attribute == "trigger_date":
        return after in (None, "") or (isinstance(after, str) and _is_iso_date(after))
    domain = canonical_values(mapping, rule.source)
    if domain is None:
        return False
    for canonical in domain:
        write, target = rule.system_value(canonical)
        if write and same_value(after, target):
            return True
    return False


def _is_iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def in_chunks(groups: Iterable[list[Any]], size: int) -> Iterator[list[Any]]:
    """Whole groups joined into lists of at least `size` items (the last may be shorter).

    Reconciling several groups at once gives what reconciling each gives, as no group ties
    to another; but most groups hold two to six records, and a call per group cost a sixth
    of the core's time in per-call setup.
    """
    chunk: list[Any] = []
    for group in groups:
        chunk.extend(group)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def planning_groups(pairs: Iterable[tuple[str, str]], links: Iterable[tuple[str, str]]
            ) -> Iterator[tuple[str, str]]:
    """(ref, group) for every record in `pairs` of (ref, identity key), each record's pairs
    together: records tied by a shared key or a stored link share a group."""
    components = DisjointSets()
    refs: list[str] = []
    for ref, key in pairs:
        if not refs or refs[-1] != ref:
            refs.append(ref)
        components.union(ref, key)
    for a, b in links:
        components.union(a, b)
    for ref in refs:
        yield ref, components.find(ref)


class _PlanResults:
    """What planning finds, saved a few thousand rows a statement rather than two per group:
    changes to the spool and days a trigger starts or ends. (Links between records are not
    saved: reconcile derives them from the records each run.)"""

    def __init__(self, store: StateStore, run_id: int | None) -> None:
        self.store, self.run_id = store, run_id
        self.spool = ChangeSpool(store.db)
        self.records = 0
        self.rejected: list[tuple[int, Rejection]] = []  # with their position in the mirror
        self.was_rejected: set[str] = set()  # planned records with an open read reject
        self.duplicates: list[Duplicate] = []
        self._days: list[tuple[str, str]] = []
        self._changes: list[Change] = []

    def add(self, records: int, reconciled: Reconciled, changes: list[Change],
            today: date) -> None:
        self.records += records
        self._days.extend(_trigger_days(reconciled, today))
        self._changes.extend(changes)
        if len(self._changes) > SAVE_EVERY:
            self.save()

    def add_duplicates(self, planned: list[str], found: list[Duplicate]) -> None:
        """The duplicates among `planned` records: the state DB's record of them replaced."""
        self.duplicates.extend(found)
        self.store.replace_duplicates(planned, found, self.run_id)

    def save(self) -> None:
        self.store.add_plan_dates(self._days)
        self.spool.add(self._changes)
        self._days, self._changes = [], []


def _as_read_back(system: str, written: dict[str, Any]) -> dict[str, Any]:
    """Values as the CRM gives them back: HubSpot clears a property written as "", and reads
    it back as null."""
    if system != "hubspot":
        return written
    return {name: None if value == "" else value for name, value in written.items()}


def _trigger_days(reconciled: Reconciled, today: date) -> Iterator[tuple[str, str]]:
    """(ref, day) for each coming day on which an organisation's trigger starts or expires:
    its plan changes then, though no record does. Its people are in its group."""
    for org in reconciled.organizations:
        days = {day for t in org.triggers for day in (t.occurred_at, t.expires_at) if day > today}
        for day in days:
            for ref in org.refs:
                yield str(ref), day.isoformat()


def _prefetched(pages: Iterable[Page], depth: int) -> Iterator[Page]:
    """`pages`, read up to `depth` pages ahead on a thread of their own.

    The next request waits on the network (and the CRM) while this thread mirrors the page
    before it, instead of one after the other. Errors reach the caller in order; when the
    caller stops early (an error, Ctrl-C), the reader stops after its current request.
    """
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for page in pages:
                if not _put(queue, ("page", page), stop):
                    return
            _put(queue, ("end", None), stop)
        except BaseException as exc:  # handed to the caller, who decides
            _put(queue, ("error", exc), stop)
        finally:
            close = getattr(pages, "close", None)
            if close is not None:  # a generator's `finally` (connections) runs on this thread
                close()

    reader = threading.Thread(target=read, name="crmsync-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, item = queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:  # a reader mid-request finishes it on its own: Ctrl-C need not wait for it
        stop.set()
        reader.join(timeout=2)


def _put(queue: Queue, item: tuple[str, Any], stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            queue.put(item, timeout=0.1)
            return True
        except Full:
            continue
    return False


def _updates(batch: list[Change]) -> list[RecordUpdate]:
    grouped: dict[tuple[str, int], dict[str, Any]] = {}
    for change in batch:
        grouped.setdefault((change.record_id, change.step), {})[change.field] = change.after
    return [RecordUpdate(rid, fields, step) for (rid, step), fields in grouped.items()]
