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
  today: so an expired trigger is un-flagged though no record changed (`Planner.scope`);
- a guarded run (`Guards`, which the `crmsync` command always passes) refuses before it
  writes when its mapping is not the pinned one, when a sync finds an empty state DB, or
  when its plan goes beyond the blast-radius limits (guards.py); a paused state DB
  (`crmsync pause`) stops sync, backfill and apply before they read, and before each write
  batch.

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
from pathlib import Path
from types import TracebackType
from typing import Any

from connector.exceptions import (
    CrmsyncError,
    RunPaused,
    RunRefused,
    RunStoppedEarly,
    StateStoreError,
)
from connector.mapping import Mapping
from connector.model import Change
from connector.report.tally import run_end_totals
from connector.state import STALE_LOCK_SECONDS, ChangeSpool, MappingPin, StateStore
from connector.sync.decide import Planner
from connector.sync.guards import (
    PAUSABLE,
    BlastRadius,
    Guards,
    PlanSummary,
    blast_radius_problems,
    check_blast_radius,
    fields_read,
    mapping_changed,
    pin_in_force,
    refuse_empty_state,
)
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
    `blast_radius`: the most a guarded sync or backfill writes without `--confirm-large`.
    """

    reread_older_than: timedelta = timedelta(seconds=5)
    safety_lag: TypingMapping[str, timedelta] = field(default_factory=lambda: {
        "hubspot": timedelta(minutes=10), "salesforce": timedelta(minutes=10)})
    lock_stale_seconds: float = STALE_LOCK_SECONDS
    write_batch: TypingMapping[str, int] = field(default_factory=lambda: dict(WRITE_BATCH))
    blast_radius: BlastRadius = field(default_factory=BlastRadius)

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
            blast_radius=BlastRadius.from_settings(settings),
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
    between runs. `sync` and `backfill` take `guards` (guards.py): the `crmsync` command
    always passes them; without, a run is unguarded, for the tests and benchmarks that vary
    the mapping. A pause (`crmsync pause`) holds either way.
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

    def sync(self, *, dry_run: bool = False, replan_all: bool = False,
             objects: set[tuple[str, str]] | None = None,
             guards: Guards | None = None) -> RunReport:
        """One incremental run: read what changed since each watermark, then plan and apply.

        Only records that changed, those tied to them and organisations whose trigger starts
        or expires today are planned, unless `replan_all` or the mapping changed since the
        last run (see `Planner.scope`). `objects`: read and write only these (system,
        object); the rest is left for the next run. `guards`: see guards.py.
        """
        with self._running("sync", dry_run) as run:
            if run.begun:
                self._check_before_reading(run, guards, first_run_allowed=False)
                self._reader(run).read_changed(objects)
                self._plan_and_write(run, replan_all=replan_all, objects=objects,
                                     guards=guards)
        return run.report

    def backfill(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        objects: set[tuple[str, str]] | None = None,
        dry_run: bool = False,
        guards: Guards | None = None,
    ) -> RunReport:
        """Read everything (optionally within [since, until)); resumable after a kill.

        `objects`: read and write only these (system, object); what the records read change
        in other objects is left for the next run, which plans it again."""
        with self._running("backfill", dry_run) as run:
            if run.begun:
                self._check_before_reading(run, guards, first_run_allowed=True)
                self._reader(run).read_backfill(since, until, objects)
                self._plan_and_write(run, replan_all=True, objects=objects, guards=guards)
        return run.report

    def plan(self, *, objects: set[tuple[str, str]] | None = None
             ) -> tuple[RunReport, PlanDocument]:
        """Steps 1-7: read, normalise, reconcile, plan; nothing is written to the CRMs.

        Runs while crmsync is paused, and with a mapping other than the pinned one: a plan is
        how an admin looks before anything is written (its report says so)."""
        document = PlanDocument("", "", "", [])
        with self._running("plan", True) as run:
            if run.begun:
                self._reader(run).read_changed(objects)
                planner = self._planner(run)
                spool = planner.plan_from_mirror(planner.scope(replan_all=False))
                if objects:
                    self._hold_back(run, spool, objects)
                self._note_pin_and_pause(run, spool)
                document = PlanDocument(created_at=run.started.isoformat(),
                                        mapping_sha256=self._mapping_sha256(),
                                        today=run.today.isoformat(),
                                        changes=list(spool.changes()))
                run.report.planned = spool.count
                run.report.list_changes(spool, sent_only=False, mapping=self.mapping)
        return run.report, document

    def apply(self, document: PlanDocument, *, dry_run: bool = False) -> RunReport:
        """Apply a saved plan, unless a record it touches changed since the plan was made."""
        with self._running("apply", dry_run) as run:
            if run.begun:
                self._saved(run).refuse_unless_applicable(document, self._mapping_sha256())
                run.report.planned = len(document.changes)
                # a reviewed plan: its mapping is the one in force once it starts writing
                self._write_now(run, document.changes, None if dry_run else self._pin)
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
                if changes:
                    self._note_after_rollback(run)
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

    def _plan_and_write(self, run: Run, *, replan_all: bool,
                        objects: set[tuple[str, str]] | None = None,
                        guards: Guards | None = None) -> None:
        """Plan what was read (and what it ties to), write the plan, and mark what the next
        run must plan again.

        With `objects`, only their changes are written, and nothing is marked as planned:
        the next run plans again what this one left. A guarded run checks the blast radius
        before it writes; every run that writes pins its mapping once pre-flight passed."""
        planner = self._planner(run)
        scope = planner.scope(replan_all)
        spool = planner.plan_from_mirror(scope)
        if objects:
            self._hold_back(run, spool, objects)
        run.report.planned = spool.count
        if guards is not None and not guards.confirm_large:
            self._check_blast_radius(run, spool)
        self.store.mirror.left_behind.clear()
        self._writer(run, planner).apply(spool, None if run.report.dry_run else self._pin)
        if not run.report.dry_run and not objects:
            planner.settle(scope)

    # ---- the guards (guards.py) --------------------------------------------------------------

    def _check_before_reading(self, run: Run, guards: Guards | None, *,
                              first_run_allowed: bool) -> None:
        """Refuse before any read: a sync on a state DB nothing was written from (unless
        `first_run_allowed`, as for a backfill), or a mapping other than the pinned one."""
        if guards is None:
            return
        pin = pin_in_force(self.store)
        if pin is None:
            if not first_run_allowed and not guards.allow_empty_state:
                raise refuse_empty_state(self.store)
            return
        if pin.sha256 != self._mapping_sha256() and not guards.accept_mapping_change:
            raise self._mapping_change_refused(run, pin)

    def _mapping_change_refused(self, run: Run, pin: MappingPin) -> RunRefused:
        """The refusal of a mapping change, with its plan made from the mirror as last read,
        in a transaction then rolled back: the summary shows what the mapping alone would
        change, and the refused run leaves the state DB as it found it."""
        planner = self._planner(run)
        try:
            with self.store.transaction():
                spool = planner.plan_from_mirror("all")
                summary = PlanSummary.of(spool, self.mapping)
                run.report.planned = spool.count
                run.report.list_changes(spool, sent_only=False)
                mirrored = self.store.mirror.live_count()
                raise _WhatIfDone
        except _WhatIfDone:
            pass
        return mapping_changed(pin, self._mapping_file(), self.mapping, summary,
                               self.options.blast_radius, mirrored)

    def _check_blast_radius(self, run: Run, spool: ChangeSpool) -> None:
        """Refuse a plan beyond the limits; its changes stay listed in the report, as a dry
        run lists them. A state DB no run has yet planned and written in full (a first
        backfill, or its rerun after a kill) is exempt from the record limits."""
        summary = PlanSummary.of(spool, self.mapping)
        first_full_run = self.store.meta("planned_mapping") is None
        refusal = check_blast_radius(summary, self.options.blast_radius,
                                     self.store.mirror.live_count(),
                                     first_full_run=first_full_run)
        if refusal is not None:
            run.report.list_changes(spool, sent_only=False)
            raise refusal

    def _pin(self) -> None:
        """Pin this run's mapping as the one in force, unless it already is."""
        pin, path, sha = self.store.admin.pinned_mapping(), self._mapping_file(), \
            self._mapping_sha256()
        if pin is not None and (pin.sha256, pin.path) == (sha, path):
            return
        with self.store.transaction():
            self.store.admin.pin_mapping(path, sha, fields_read(self.mapping, self.adapters))
        log.info("pinned the mapping %s (%s) as the one in force", path, sha[:12],
                 extra={"fields": {"mapping": path, "mapping_sha256": sha}})

    def _mapping_file(self) -> str:
        """The mapping's file, as an absolute path: runs started elsewhere compare alike."""
        return str(Path(self.mapping.files[0]).resolve()) if self.mapping.files else ""

    def _hold_back(self, run: Run, spool: ChangeSpool, objects: set[tuple[str, str]]) -> None:
        """Keep only the changes to `objects`; the report says what was left, and why."""
        dropped = spool.keep_only(objects)
        if dropped:
            listed = ", ".join(f"{key} {count}" for key, count in dropped.items())
            verb = "would not write" if run.report.dry_run else "did not write"
            run.report.message = (
                f"--objects: this run {verb} {sum(dropped.values())} change(s) to other "
                f"objects ({listed}); the next sync (or a backfill without --objects) plans "
                "them again")

    def _note_pin_and_pause(self, run: Run, spool: ChangeSpool) -> None:
        """What a plan's reader needs to know: that a sync would refuse its mapping or stop
        at the blast-radius guard, or that crmsync is paused."""
        notes = [run.report.message]
        pin = pin_in_force(self.store)
        if pin is not None and pin.sha256 != self._mapping_sha256():
            notes.append(
                f"this mapping ({self._mapping_file()}) differs from the pinned mapping "
                f"{pin.path or '(the one the last full run planned with)'}: a sync or "
                "backfill with it refuses without --accept-mapping-change; `crmsync apply` "
                "of this plan pins it")
        over = blast_radius_problems(PlanSummary.of(spool, self.mapping),
                                     self.options.blast_radius, self.store.mirror.live_count(),
                                     first_full_run=self.store.meta("planned_mapping") is None)
        if over:
            notes.append("a sync writing this plan would stop at the blast-radius guard ("
                         + "; ".join(over) + "): `crmsync apply` of the saved plan, or a sync "
                         "with --confirm-large, writes it")
        pause = self.store.admin.paused()
        if pause is not None:
            notes.append(f"crmsync is {pause}: the plan runs anyway (it writes nothing); "
                         "sync, backfill and apply write nothing until `crmsync resume`")
        run.report.message = "; ".join(filter(None, notes)) or None

    def _note_after_rollback(self, run: Run) -> None:
        """A rollback lasts only until the next run: the sources and the mapping still give
        the values it undid."""
        pause = self.store.admin.paused()
        after = "after this rollback, " if run.report.dry_run else ""
        same = (f"{after}the next run will write the same values again unless the mapping or "
                "the data changes")
        if pause is not None:
            note = (f"crmsync is {pause}: scheduled runs write nothing until `crmsync "
                    f"resume`. Note: {same}; fix that before you resume")
        else:
            note = (f"{same}: to stop scheduled runs while you fix it, run `crmsync pause "
                    "--reason '...'` (and `crmsync resume` after)")
        run.report.message = "; ".join(filter(None, [run.report.message, note]))

    def _write_now(self, run: Run, changes: list[Change],
                   before_writing: Callable[[], None] | None = None) -> None:
        """Write changes this run did not plan: the records were read just now, checking
        them, so what counts as a stale read starts from here."""
        run.read_at = self.clock()
        self._writer(run).apply(spooled(self.store, changes), before_writing)

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
        self.usage_at_start = engine._usage()  # adapters count from their creation

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
        self._refuse_if_paused()
        self.engine._writer(self.run).resolve_intents()
        self.run.begun = True

    def _refuse_if_paused(self) -> None:
        """A paused state DB stops sync, backfill and apply (dry runs too, as the real run
        would stop) before they call either CRM: exit 0, nothing read or written."""
        report = self.run.report
        pause = self.store.admin.paused() if report.kind in PAUSABLE else None
        if pause is not None:
            raise RunPaused(f"crmsync is {pause}. This {report.kind} read and wrote nothing; "
                            "`crmsync resume` lets runs write again (`crmsync plan` shows "
                            "what they would do).")

    def _stopped(self, exc: BaseException) -> None:
        """The status (`RunStatus.of` the exception) and message of a run `exc` stopped."""
        self.run.report.stop(exc, self._message(exc))
        if isinstance(exc, RunRefused):
            self.run.report.refused_by = exc.guard

    def _message(self, exc: BaseException) -> str:
        if isinstance(exc, RunPaused | RunRefused):
            return str(exc)
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
        report.api_calls = _used_since(self.usage_at_start, self.engine._usage())
        try:
            if report.run_id is not None:
                self.store.finish_run(report.run_id, report.status, report.counts(),
                                      report.api_calls, report.message, totals=self._totals())
        except (sqlite3.Error, StateStoreError) as exc:
            problem = exc if isinstance(exc, StateStoreError) else self.store.problem(exc)
            report.add_problem(f"the run could not be recorded as finished: {problem}")
        try:
            self.store.lock.release()
        except sqlite3.Error as exc:
            report.add_problem(f"the run lock could not be released: {self.store.problem(exc)}")
        log.log(logging.INFO if report.succeeded or report.status == "paused"
                else logging.ERROR,
                "run %s %s: planned %s, applied %s, rejected %s/%s, retry later %s%s",
                report.run_id, report.status, report.planned, report.applied,
                report.rejected_records, report.write_rejected, report.retry_later,
                f" ({report.message})" if report.message else "",
                extra={"fields": {"run_id": report.run_id, "status": report.status,
                                  **report.counts(), "api_calls": report.api_calls}})


    def _totals(self) -> dict[str, Any] | None:
        """The totals the run ends with, for `crmsync report` (connector/report/tally.py).
        Counting for a report must not fail a run: one that cannot finishes without them."""
        try:
            return run_end_totals(self.store, self.engine.mapping, self.run.report.run_id)
        except Exception as exc:  # anything at all: the run's own outcome matters more
            log.warning("run %s: no totals kept for the report: %s: %s",
                        self.run.report.run_id, type(exc).__name__, exc)
            return None


def _used_since(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """The API calls made between two `Engine._usage` readings: an adapter counts calls,
    retries and operations from its creation, and one engine may run many times (the demo, a
    worker). The daily figures are the CRM's own, as they stand at the end."""
    used = {}
    for system, usage in end.items():
        before = start.get(system, {})
        earlier = before.get("by_operation", {})
        operations = {op: n - earlier.get(op, 0) for op, n in usage["by_operation"].items()}
        used[system] = {**usage, "calls": usage["calls"] - before.get("calls", 0),
                        "retries": usage["retries"] - before.get("retries", 0),
                        "by_operation": {op: n for op, n in operations.items() if n}}
    return used


class _WhatIfDone(Exception):
    """Ends the transaction of a plan made only to be shown: rolled back, it leaves no trace."""


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."
