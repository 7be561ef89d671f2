"""The engine: each run in its frame, over the stages read -> decide -> write.

Correctness rests on one idea: the **mirror** in the state DB holds the last-seen raw record
of everything we read, and plans are computed from the mirror, never from one page of reads.
So:

- a page of changed records and the watermark that covers it are saved in one transaction;
  the watermark never passes the run's start less a safety lag (search indexes lag behind
  writes), so records indexed late are read again (read.py);
- a record read longer ago than a few seconds is read again right before it is written, and
  planned again if someone changed it meanwhile: neither CRM has conditional batch updates,
  so this bounds the window in which an edit could be overwritten (`Writer._reread`);
- deleted and merged records (tombstones) leave planning; a merge moves links to its survivor;
- each batch's changes are audited as intended before the batch is sent (write.py), so every
  change that reached a CRM is audited under the run that made it and can be rolled back;
- our own writes update the mirror, so reading them back plans nothing (no echo);
- a run plans only the records that changed since a run last planned and applied them, with
  every record tied to them, and the organisations with a trigger that starts or expires
  today: so an expired trigger is un-flagged though no record changed (`Planner.scope`).

Dry-run takes exactly the same path; only the adapter call and what records its result are
skipped.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from collections.abc import Mapping as TypingMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any

from connector.exceptions import CrmsyncError, RunStoppedEarly, StateStoreError
from connector.mapping import Mapping
from connector.model import Change
from connector.state import STALE_LOCK_SECONDS, StateStore
from connector.sync.decide import Planner
from connector.sync.read import Reader
from connector.sync.report import Progress, RunReport
from connector.sync.saved import PlanDocument, SavedChanges, mapping_fingerprint
from connector.sync.write import WRITE_BATCH, Writer, spooled
from connector.systems.base import CrmAdapter

__all__ = ["Engine", "EngineOptions", "Run"]

log = logging.getLogger("crmsync.sync")


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
    `write_batch`: changes sent per batch, per system: the adapter's own request size, so
    the lock check and the re-read before each batch cover one request.
    """

    reread_older_than: timedelta = timedelta(seconds=5)
    safety_lag: TypingMapping[str, timedelta] = field(default_factory=lambda: {
        "hubspot": timedelta(minutes=10), "salesforce": timedelta(minutes=10)})
    lock_stale_seconds: float = STALE_LOCK_SECONDS
    write_batch: TypingMapping[str, int] = field(default_factory=lambda: dict(WRITE_BATCH))

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
            write_batch={**WRITE_BATCH, "salesforce": settings.salesforce_write_batch_size},
        )


@dataclass
class Run:
    """What the stages of one run share: its report, and when it started and read."""

    report: RunReport
    started: datetime
    today: date
    read_at: datetime = None  # type: ignore[assignment]  # what the plan was read at
    changed_since_read: set[str] = field(default_factory=set)  # found by `Writer._reread`
    batches: int = 0  # write batches sent so far: their number in the audit log
    begun: bool = False  # the frame holds the lock and recorded the run: its body may go on

    def __post_init__(self) -> None:
        if self.read_at is None:  # a sync's changes stem from reads made after its start
            self.read_at = self.started


class Engine:
    """Runs sync, backfill, plan, apply and rollback over one state store and two adapters.

    Each run builds its stages (`Reader`, `Planner`, `Writer`, `SavedChanges`) from the
    engine's attributes as they are then: tests change `mapping`, `today` or `clock`
    between runs.
    """

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
        last run (see `Planner.scope`).
        """
        with self._running("sync", dry_run) as run:
            if run.begun:
                self._reader(run).read_changed()
                self._plan_and_write(run, replan_all=replan_all)
        return run.report

    def backfill(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        objects: set[tuple[str, str]] | None = None,
        dry_run: bool = False,
    ) -> RunReport:
        """Read everything (optionally within [since, until)); resumable after a kill."""
        with self._running("backfill", dry_run) as run:
            if run.begun:
                self._reader(run).read_backfill(since, until, objects)
                self._plan_and_write(run, replan_all=True)
        return run.report

    def plan(self) -> tuple[RunReport, PlanDocument]:
        """Steps 1-7: read, normalise, reconcile, plan; nothing is written to the CRMs."""
        document = PlanDocument("", "", "", [])
        with self._running("plan", True) as run:
            if run.begun:
                self._reader(run).read_changed()
                planner = self._planner(run)
                spool = planner.plan_from_mirror(planner.scope(replan_all=False))
                document = PlanDocument(created_at=run.started.isoformat(),
                                        mapping_sha256=self._mapping_sha256(),
                                        today=run.today.isoformat(),
                                        changes=list(spool.changes()))
                run.report.planned = spool.count
                run.report.list_changes(spool, sent_only=False)
        return run.report, document

    def apply(self, document: PlanDocument, *, dry_run: bool = False) -> RunReport:
        """Apply a saved plan, unless a record it touches changed since the plan was made."""
        with self._running("apply", dry_run) as run:
            if run.begun:
                self._saved(run).refuse_unless_applicable(document, self._mapping_sha256())
                run.report.planned = len(document.changes)
                self._write_now(run, document.changes)
        return run.report

    def rollback(self, run_id: int, *, dry_run: bool = False) -> RunReport:
        """Write back the before-values of a run where fields still hold its after-values."""
        with self._running("rollback", dry_run) as run:
            if run.begun:
                changes, skipped = self._saved(run).rollback_changes(run_id)
                run.report.skipped = len(skipped)
                run.report.rejects.extend(skipped)
                run.report.planned = len(changes)
                self._write_now(run, changes)
        return run.report

    # ---- the stages --------------------------------------------------------------------------

    def _reader(self, run: Run) -> Reader:
        return Reader(self.store, self.mapping, self.adapters, self.options, run, self.progress)

    def _planner(self, run: Run) -> Planner:
        return Planner(self.store, self.mapping, run, self._mapping_sha256())

    def _writer(self, run: Run, planner: Planner | None = None) -> Writer:
        return Writer(self.store, self.mapping, self.adapters, self.options, run, self.clock,
                      planner, self.progress)

    def _saved(self, run: Run) -> SavedChanges:
        return SavedChanges(self.store, self.mapping, self.adapters, run)

    def _plan_and_write(self, run: Run, *, replan_all: bool) -> None:
        """Plan what was read (and what it ties to), write the plan, and mark what the next
        run must plan again."""
        planner = self._planner(run)
        scope = planner.scope(replan_all)
        spool = planner.plan_from_mirror(scope)
        run.report.planned = spool.count
        self.store.mirror.left_behind.clear()
        self._writer(run, planner).apply(spool)
        if not run.report.dry_run:
            planner.settle(scope)

    def _write_now(self, run: Run, changes: list[Change]) -> None:
        """Write changes this run did not plan: the records were read just now, checking
        them, so what counts as a stale read starts from here."""
        run.read_at = self.clock()
        self._writer(run).apply(spooled(self.store, changes))

    # ---- the run frame -----------------------------------------------------------------------

    def _running(self, kind: str, dry_run: bool) -> RunFrame:
        return RunFrame(self, kind, dry_run)

    def _usage(self) -> dict[str, Any]:
        out = {}
        for system, adapter in self.adapters.items():
            usage = adapter.usage()
            out[system] = {"calls": usage.calls, "retries": usage.retries,
                           "by_operation": dict(usage.by_operation),
                           "daily_used": usage.daily_used,
                           "daily_allocation": usage.daily_allocation}
        return out


class RunFrame:
    """One run from lock to finish, as a context manager around the run's body.

    Entering takes the run lock (with a heartbeat thread), records the run and settles the
    intents earlier runs left; `run.begun` says whether that went through (a lock held by
    another run leaves it false, and nothing else happens). Leaving gives the run its status,
    from how the body ended (`RunStatus.of` the exception), records the run's end and
    releases the lock, even when the state DB fails. Every error ends here: a run always
    returns its report.
    """

    def __init__(self, engine: Engine, kind: str, dry_run: bool) -> None:
        self.engine, self.store = engine, engine.store
        started = engine.clock()
        self.run = Run(RunReport(kind=kind, dry_run=dry_run, started_at=started.isoformat()),
                       started, engine.today or started.date())
        self.locked = False

    def __enter__(self) -> Run:
        report = self.run.report
        try:
            self.store.lock.acquire(f"crmsync {report.kind}",
                                    stale_after=self.engine.options.lock_stale_seconds)
        except (RunStoppedEarly, StateStoreError) as exc:
            report.stop(exc, str(exc))
            return self.run
        self.locked = True
        try:
            self._begin()
        except (Exception, KeyboardInterrupt) as exc:
            self._stopped(exc)
        return self.run

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        if not self.locked:
            return False
        if exc is None:
            if self.run.begun:
                self.run.report.settle()
        elif isinstance(exc, Exception | KeyboardInterrupt):
            self._stopped(exc)
        self._finish()
        return exc is None or isinstance(exc, Exception | KeyboardInterrupt)

    def _begin(self) -> None:
        report = self.run.report
        self.store.lock.start_heartbeat(self.engine.options.heartbeat_seconds)
        report.run_id = self.store.journal.start_run(report.kind, dry_run=report.dry_run)
        log.info("run %s (%s%s) started", report.run_id, report.kind,
                 ", dry run" if report.dry_run else "",
                 extra={"fields": {"run_id": report.run_id, "kind": report.kind,
                                   "dry_run": report.dry_run}})
        self.engine._writer(self.run).resolve_intents()
        self.run.begun = True

    def _stopped(self, exc: BaseException) -> None:
        """The status (`RunStatus.of` the exception) and message of a run `exc` stopped."""
        self.run.report.stop(exc, self._message(exc))

    def _message(self, exc: BaseException) -> str:
        if isinstance(exc, RunStoppedEarly):
            return f"{exc} Rerun to continue."
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM from a scheduler (cli.py)
            return "interrupted; everything read or written so far is saved. Rerun to continue."
        if isinstance(exc, CrmsyncError):  # configuration, API and state DB errors
            return str(exc)
        if isinstance(exc, sqlite3.Error):  # a statement outside a transaction
            return str(self.store.problem(exc))
        # a bug: the run must still end, recorded, lock released
        log.error("run %s failed unexpectedly", self.run.report.run_id, exc_info=exc)
        return _one_line(f"{type(exc).__name__}: {exc}")

    def _finish(self) -> None:
        """Record the run's end and release the lock, even when the state DB fails: then the
        run is failed, and the message says the run row could not be written."""
        report = self.run.report
        ended = self.engine.clock()
        report.ended_at = ended.isoformat()
        report.duration_seconds = round((ended - self.run.started).total_seconds(), 3)
        report.api_calls = self.engine._usage()
        try:
            if report.run_id is not None:
                self.store.journal.finish_run(report.run_id, report.status, report.counts(),
                                              report.api_calls, report.message)
        except (sqlite3.Error, StateStoreError) as exc:
            problem = exc if isinstance(exc, StateStoreError) else self.store.problem(exc)
            report.add_problem(f"the run could not be recorded as finished: {problem}")
        try:
            self.store.lock.release()
        except sqlite3.Error as exc:
            report.add_problem(f"the run lock could not be released: {self.store.problem(exc)}")
        log.log(logging.INFO if report.succeeded else logging.ERROR,
                "run %s %s: planned %s, applied %s, rejected %s/%s, retry later %s%s",
                report.run_id, report.status, report.planned, report.applied,
                report.rejected_records, report.write_rejected, report.retry_later,
                f" ({report.message})" if report.message else "",
                extra={"fields": {"run_id": report.run_id, "status": report.status,
                                  **report.counts(), "api_calls": report.api_calls}})


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."
