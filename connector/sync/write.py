"""Writing: a spool of planned changes sent in batches, each batch's outcome recorded.

Each batch's changes are audited as intended, committed, before the batch is sent, and given
their outcome when the CRM answers; a run killed in between leaves intents that the next run
resolves by reading those records (`Writer.resolve_intents`), so every change that reached a
CRM is audited under the run that made it and can be rolled back.

An object with many records to write in one run (Salesforce: `salesforce_bulk_min_records`)
goes through Bulk API 2.0 jobs instead of one request per 200 records (`Writer._send_bulk`):
the same intents before sending, the same outcomes after, the same re-read first. Each job's
id is saved before its data is uploaded; a run that stops while a job runs leaves it open,
and the next run collects its results (`Writer._collect_bulk_jobs`) instead of sending again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from collections.abc import Mapping as TypingMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connector.catalog import CATALOG, record_id
from connector.exceptions import RunLockLost, RunPaused
from connector.mapping import Mapping
from connector.model import Change
from connector.plan import same_value
from connector.preflight import refuse_unwritable
from connector.state import BulkJob, ChangeSpool, StateStore, WriteOutcome
from connector.sync.decide import Planner
from connector.sync.guards import PAUSABLE
from connector.sync.read import fields_read, read_again
from connector.sync.report import Progress
from connector.sync.saved import SavedChanges
from connector.systems.base import CrmAdapter, RecordUpdate, WriteResult

if TYPE_CHECKING:
    from connector.sync.engine import EngineOptions, Run
    from connector.systems.salesforce_bulk import JobInfo, JobOutcome, SalesforceBulk

__all__ = ["WRITE_BATCH", "Writer", "spooled"]

RECORDED_AT_ONCE = 2_000  # records whose Bulk outcomes are recorded in one transaction

log = logging.getLogger("crmsync.sync")

# Changes per write batch when EngineOptions do not say (HubSpot's batch update takes 100;
# Salesforce's sObject Collections 200, `salesforce_write_batch_size` in the settings)
# Records per write request, per system (the catalog's: HubSpot 100, Salesforce 200).
WRITE_BATCH = {name: max(spec.write_batch for spec in c.objects.values())
               for name, c in CATALOG.items()}


def spooled(store: StateStore, changes: list[Change]) -> ChangeSpool:
    """`changes` in a spool, as a run's plan would be."""
    spool = store.new_spool()
    spool.add(changes)
    return spool


class Writer:
    """Sends a spool's changes and records each outcome in the audit log, the reject ledger
    and the mirror (dlt's load, at crmsync's scale).

    `planner` is given when the changes are this run's own plan (sync, backfill): a record
    found changed since the run read it is then planned again, and its write leaves it as
    planned. Without one (apply, rollback) such a record is left out, and written records
    are marked to be planned again.
    """

    def __init__(self, store: StateStore, mapping: Mapping,
                 adapters: TypingMapping[str, CrmAdapter], options: EngineOptions, run: Run,
                 clock: Callable[[], datetime], planner: Planner | None = None,
                 progress: Progress | None = None) -> None:
        self.store, self.mapping, self.adapters = store, mapping, adapters
        self.options, self.run, self.clock, self.planner = options, run, clock, planner
        self.progress = progress or Progress()

    def apply(self, spool: ChangeSpool,
              before_writing: Callable[[], None] | None = None) -> None:
        """Send the changes in batches per object; record each result before the next batch.

        Before each batch: stop if another run took the lock or crmsync was paused, and read
        the batch's records again if the run read them too long ago (`_reread`). Before the
        first, dry runs too: refuse (exit 2) if a field written is missing, read-only or
        lacks a value written. Then `before_writing` (the engine pins the run's mapping). An
        object with enough records to write goes in Bulk jobs (`_bulk_for`), a batch a job.
        """
        refuse_unwritable(self.mapping, self.adapters, spool.objects())
        if before_writing is not None:
            before_writing()
        try:
            for system, obj in spool.objects():
                confirm = {r.field for r in self.mapping.write_back.get((system, obj), ())
                           if r.confirm}
                bulk = self._bulk_for(system, obj, spool)
                size = bulk.options.job_records if bulk else self.options.write_batch[system]
                for planned in spool.record_batches(system, obj, size, confirm):
                    self._check_lock()
                    batch = self._reread(system, obj, spool, planned, bulk)
                    if batch and bulk is not None:
                        self._send_bulk(bulk, system, obj, spool, batch, confirm)
                    elif batch:
                        self._send(system, obj, spool, batch, confirm)
        finally:
            self.run.report.list_changes(spool, sent_only=True, mapping=self.mapping)

    def _bulk_for(self, system: str, obj: str, spool: ChangeSpool) -> SalesforceBulk | None:
        """The adapter's Bulk API when this object's records to write are enough for it
        (`SalesforceBulk.worth_it`), else None: requests of the adapter's batch size. A dry
        run sends nothing, so it only says which way the writes would go."""
        bulk: SalesforceBulk | None = getattr(self.adapters[system], "bulk", None)
        if bulk is None:
            return None
        records = spool.record_count(system, obj)
        if self.run.report.dry_run:
            if bulk.options.min_records and records >= bulk.options.min_records:
                log.info("%s.%s: %s records to write; a real run would send them in Bulk API "
                         "2.0 jobs", system, obj, records)
            return None
        if not bulk.worth_it(records):
            return None
        log.info("%s.%s: %s records to write: Bulk API 2.0 jobs of up to %s records",
                 system, obj, records, bulk.options.job_records,
                 extra={"fields": {"object": f"{system}.{obj}", "records": records,
                                   "path": "bulk"}})
        return bulk

    def resolve_intents(self) -> None:
        """Give the intended writes of runs that died before hearing the CRM's answer their
        outcome, by reading just those records: a field that holds the intended value was
        written ("applied", audited under the run that wrote it, so rolling that run back
        undoes it); any other was not ("not_applied"). A lifecycle clear-then-set that holds
        its clear made only its first step. Records of a system not configured this run stay
        unresolved. What is read refreshes the mirror: the dead run never mirrored its writes.
        Intents a Bulk job carried are resolved first, from the job's own results
        (`_collect_bulk_jobs`).
        """
        self._collect_bulk_jobs()
        report = self.run.report
        pending = [e for e in self.store.journal.intents(not_run=report.run_id)
                   if e.ref.system.value in self.adapters]
        if not pending:
            return
        current = SavedChanges(self.store, self.mapping, self.adapters, self.run
                               ).current_values({e.ref for e in pending})
        by_field: dict[tuple[int, str, str], list[Any]] = {}
        for entry in pending:
            by_field.setdefault((entry.run_id, str(entry.ref), entry.field), []).append(entry)
        outcomes: list[tuple[int, str]] = []
        for (_, ref, _), entries in by_field.items():
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
            self.store.journal.resolve_intents(outcomes)
        for _, status in outcomes:
            report.intents_resolved[status] += 1
        log.warning("resolved %s intended write(s) of interrupted run(s) by reading them back: "
                    "%s applied (audited under their run), %s not applied", len(outcomes),
                    report.intents_resolved["applied"], report.intents_resolved["not_applied"],
                    extra={"fields": {"intents_resolved": report.intents_resolved}})

    def _send(self, system: str, obj: str, spool: ChangeSpool,
              batch: list[tuple[int, Change]], confirm: set[str]) -> None:
        """Send one batch (not in a dry run: every change then counts as applied) and record
        what became of each change."""
        updates = _updates([change for _, change in batch])
        if self.run.report.dry_run:
            intents: list[int] = []
            results = [WriteResult(u.record_id, "applied", step=u.step) for u in updates]
        else:
            intents = self._record_intents(batch)
            results = self.adapters[system].write(obj, updates, confirm_fields=confirm)
        self._record_results(system, obj, spool, batch, updates, results, intents)

    def _send_bulk(self, bulk: SalesforceBulk, system: str, obj: str, spool: ChangeSpool,
                   batch: list[tuple[int, Change]], confirm: set[str]) -> None:
        """Send one batch as Bulk jobs: intents first, as for any batch; each job's id saved
        before its data goes up. Outcomes are recorded `RECORDED_AT_ONCE` records a
        transaction (recording mirrors each record written: all of a 50,000-record job at
        once took more memory than the rest of a backfill), then the jobs marked collected; a
        kill in between leaves intents the next run resolves from the jobs."""
        updates = _updates([change for _, change in batch])
        intents = self._record_intents(batch)
        jobs = _BulkJobs(self, system, obj)
        try:
            results = bulk.write(obj, updates, jobs, confirm_fields=confirm)
        finally:
            jobs.finish()
        by_update = {(u.record_id, u.step): r for u, r in zip(updates, results, strict=True)}
        del updates, results
        for start, end in _record_slices(batch, RECORDED_AT_ONCE):
            self._record_results(system, obj, spool, batch[start:end], [], [],
                                 intents[start:end], by_update=by_update)
        with self.store.transaction():  # a kill before this: the next run finds no intent left
            for job_id, state in jobs.states.items():
                self.store.jobs.collected(job_id, state)
        self.run.report.bulk_jobs += len(jobs.states)

    def _collect_bulk_jobs(self) -> None:
        """Resolve the intents Bulk jobs of earlier runs carried, from the jobs themselves: a
        record the job saved was written ("applied"), any other was not ("not_applied", and
        planned again). A job still running is waited for (BulkJobPending past the wait, exit
        3: nothing is sent meanwhile); a job never closed is aborted, so it never runs; a job
        Salesforce no longer knows leaves its intents to the read-back."""
        report = self.run.report
        groups: dict[tuple[int, int], list[BulkJob]] = {}
        for job in self.store.jobs.open(not_run=report.run_id):
            if getattr(self.adapters.get(job.system), "bulk", None) is not None:
                groups.setdefault((job.run_id, job.batch), []).append(job)
        for (run_id, batch), jobs in groups.items():
            bulk: SalesforceBulk = self.adapters[jobs[0].system].bulk  # type: ignore[attr-defined]
            outcomes = [(job, self._collect_job(bulk, job)) for job in jobs]
            intents = [e for e in self.store.journal.intents(run_id) if e.batch == batch]
            known = [(job, outcome) for job, outcome in outcomes if outcome is not None]
            with self.store.transaction():
                if len(known) == len(outcomes):
                    self._resolve_from_jobs(known, intents)
                for job, outcome in outcomes:
                    self.store.jobs.collected(job.job_id, outcome.info.state if outcome
                                              else "Unknown")

    def _collect_job(self, bulk: SalesforceBulk, job: BulkJob) -> JobOutcome | None:
        key = f"{job.system}.{job.object_type} Bulk job {job.job_id}"
        self.progress.start(key, total=job.records)
        shown = [0]

        def seen(info: JobInfo) -> None:
            self.progress.advance(key, max(0, info.processed - shown[0]))
            shown[0] = max(shown[0], info.processed)
            _status(self.progress, key, f"{info.state} (left by run {job.run_id})")
            with self.store.transaction():
                self.store.jobs.seen(job.job_id, info.state, info.processed, info.failed)

        try:
            return bulk.collect(job.job_id, seen)
        finally:
            self.progress.finish(key)

    def _resolve_from_jobs(self, outcomes: list[tuple[BulkJob, JobOutcome]],
                           intents: list[Any]) -> None:
        """The intents of one batch, resolved from its jobs' saved records (inside the
        caller's transaction); written values go to the mirror as the read-back would put
        them, and the records of unapplied intents are planned again."""
        report = self.run.report
        saved = {(record[:15], job.step) for job, outcome in outcomes for record in outcome.applied}
        resolved: list[tuple[int, str]] = []
        written: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        replan: set[str] = set()
        for entry in intents:
            ref = entry.ref
            if (ref.record_id[:15], entry.step) in saved:
                resolved.append((entry.id, "applied"))
                written.setdefault((ref.system.value, ref.object_type), {}).setdefault(
                    ref.record_id, {})[entry.field] = entry.after
            else:
                resolved.append((entry.id, "not_applied"))
                replan.add(str(ref))
        self.store.journal.resolve_intents(resolved)
        for (system, obj), values in written.items():
            self.store.mirror.save_writes(system, obj, values, report.run_id or 0,
                                          mark_dirty=True)
        self.store.mirror.mark_dirty(replan)
        applied = sum(1 for _, status in resolved if status == "applied")
        report.intents_resolved["applied"] += applied
        report.intents_resolved["not_applied"] += len(resolved) - applied
        log.warning("collected %s Bulk job(s) of an interrupted run (%s): %s intended write(s) "
                    "made, %s not made (planned again)", len(outcomes),
                    ", ".join(f"{job.job_id} {outcome.info.state}" for job, outcome in outcomes),
                    applied, len(resolved) - applied,
                    extra={"fields": {"bulk_jobs": [job.job_id for job, _ in outcomes]}})

    def _record_intents(self, batch: list[tuple[int, Change]]) -> list[int]:
        """Audit the batch as intended, committed before it is sent: a kill after the CRM
        accepts it and before its answer is recorded must not leave changes no audit row
        holds (they could not be rolled back). Returns the rows' ids, in batch order."""
        self.run.batches += 1
        with self.store.transaction():
            return self.store.journal.record_intents(self.run.report.run_id, self.run.batches,
                                                     [change for _, change in batch])

    def _check_lock(self) -> None:
        """Before each batch: stop if another run took the lock, or an admin paused crmsync
        (a sync, backfill or apply; not a rollback, which is how an admin undoes a run)."""
        report = self.run.report
        pause = self.store.admin.paused() if report.kind in PAUSABLE else None
        if pause is not None:
            raise RunPaused(
                f"crmsync was {pause}, while this {report.kind} ran: it stopped before its "
                f"next write batch, after {report.applied} change(s). `crmsync resume` lets "
                "the next run go on from there.")
        if not self.store.lock.still_ours():
            raise RunLockLost(
                f"another run took over this run's lock in {self.store.path} (it found the "
                "heartbeat stale); this run stopped before its next write, so the two never "
                "write at once.")

    def _reread(self, system: str, obj: str, spool: ChangeSpool,
                batch: list[tuple[int, Change]],
                bulk: SalesforceBulk | None = None) -> list[tuple[int, Change]]:
        """The batch to send, its records read again first if the run read them more than
        `reread_older_than` ago (see EngineOptions).

        What was read is mirrored. A record someone changed is planned again: a sync replaces
        its changes with the new plan of its group (and plans the group again next run, for
        the records already written); apply and rollback leave it out, as their check no
        longer holds. A record gone since is left out. Changes left out are "superseded".
        A Bulk batch reads only what changed since (`_changed_since`): by id, tens of
        thousands of records would cost a query per ~600.
        """
        run, report = self.run, self.run.report
        if self.clock() - run.read_at <= self.options.reread_older_than:
            return batch
        adapter = self.adapters[system]
        ids = sorted({change.record_id for _, change in batch})
        calls = adapter.usage().calls
        if bulk is not None:
            changed, gone = self._changed_since(system, obj, ids)
        else:
            records, reread = read_again(self.store, adapter, self.mapping, system, obj, ids,
                                         report.run_id)
            changed = set(reread)
            found = {f"{system}:{obj}:{record_id(system, r)}" for r in records}
            gone = {f"{system}:{obj}:{rid}" for rid in ids} - found
        report.reread_calls += adapter.usage().calls - calls
        report.reread_records += len(ids)
        if not changed and not gone:
            return batch
        report.reread_changed += len(changed)
        run.changed_since_read |= changed
        log.info("%s record(s) of %s.%s changed since the run read them: planned again",
                 len(changed), system, obj)
        dropped = [(spool_id, c) for spool_id, c in batch if str(c.ref) in changed | gone]
        spool.record_results([(spool_id, "superseded", None, "changed since read")
                              for spool_id, _ in dropped])
        replanned: list[Change] = []
        if changed and self.planner is not None:
            replanned = [c for c in self.planner.plan_records(changed) if str(c.ref) in changed]
        kept = [(spool_id, c) for spool_id, c in batch if str(c.ref) not in changed | gone]
        report.planned += len(replanned) - len(dropped)
        return kept + spool.add_late(replanned)

    def _changed_since(self, system: str, obj: str, ids: list[str]) -> tuple[set[str], set[str]]:
        """(refs changed, refs gone) among `ids` (sorted), from the records of their Id range
        modified since the run read them, less the system's safety lag (a long transaction
        commits after its modification stamp, as for sync watermarks). A record not among
        them has not changed since it was read; those that are are mirrored as `read_again`
        mirrors them."""
        adapter = self.adapters[system]
        since = self.run.read_at - self.options.safety_lag[system]
        records, deleted = adapter.read_changed_between(  # type: ignore[attr-defined]
            obj, ids[0], ids[-1], since, fields_read(self.mapping, system, obj))
        wanted = set(ids)
        mine = [(rid, raw) for raw in records
                if (rid := record_id(system, raw) or "?") in wanted]
        with self.store.transaction():
            changed = self.store.mirror.save_reread(system, obj, mine, self.run.report.run_id)
        return set(changed), {f"{system}:{obj}:{rid}" for rid in deleted & wanted}

    def _record_results(self, system: str, obj: str, spool: ChangeSpool,
                        batch: list[tuple[int, Change]], updates: list[RecordUpdate],
                        results: list[WriteResult], intents: list[int], *,
                        by_update: dict[tuple[str, int], WriteResult] | None = None) -> None:
        """Count each change's outcome in the report, and record it (`StateStore.record_writes`:
        the spool, the audit's intents, `intents`, none in a dry run, the reject ledger and
        the mirror, in one transaction). Writes from this run's own plan leave their records
        as planned; others (apply of a saved plan, rollback) mark them to be planned again.
        `by_update`: the results by (record, step), when the caller has them already."""
        report = self.run.report
        if by_update is None:
            by_update = {(u.record_id, u.step): r for u, r in zip(updates, results, strict=True)}
        audit_ids: list[int | None] = [*intents] or [None] * len(batch)  # none in a dry run
        outcomes = []
        for (spool_id, change), audit_id in zip(batch, audit_ids, strict=True):
            result = by_update[(change.record_id, change.step)]
            outcomes.append(WriteOutcome(spool_id, change, result.status, result.code,
                                         result.message, audit_id))
            self._count(result.status)
        self.store.record_writes(report.run_id, system, obj, spool, outcomes,
                                 dry_run=report.dry_run, mark_dirty=self.planner is None)

    def _count(self, status: str) -> None:
        report = self.run.report
        if status == "applied" and report.dry_run:  # nothing was sent: it would apply
            report.would_apply += 1
        elif status == "applied":
            report.applied += 1
        elif status == "rejected":
            report.write_rejected += 1
        else:
            report.retry_later += 1


class _BulkJobs:
    """What a Bulk write tells the run about its jobs (`JobHooks`): each job saved in the
    state DB as it is created, before its data goes up; its state and count as progress."""

    def __init__(self, writer: Writer, system: str, obj: str) -> None:
        self.writer, self.system, self.obj = writer, system, obj
        self.states: dict[str, str] = {}
        self._shown: dict[str, int] = {}

    def _key(self, job_id: str) -> str:
        return f"{self.system}.{self.obj} Bulk job {job_id}"

    def created(self, job_id: str, records: int, step: int) -> None:
        writer = self.writer
        with writer.store.transaction():
            writer.store.jobs.opened(job_id, self.system, self.obj, writer.run.report.run_id or 0,
                                     writer.run.batches, records, step)
        self.states[job_id] = "Open"
        self._shown[job_id] = 0
        writer.progress.start(self._key(job_id), total=records)
        _status(writer.progress, self._key(job_id), "Open")

    def seen(self, info: JobInfo) -> None:
        writer, key = self.writer, self._key(info.job_id)
        self.states[info.job_id] = info.state
        writer.progress.advance(key, max(0, info.processed - self._shown[info.job_id]))
        self._shown[info.job_id] = max(self._shown[info.job_id], info.processed)
        _status(writer.progress, key, info.state)
        with writer.store.transaction():
            writer.store.jobs.seen(info.job_id, info.state, info.processed, info.failed)

    def finish(self) -> None:
        for job_id in self.states:
            self.writer.progress.finish(self._key(job_id))


def _status(progress: Progress, key: str, text: str) -> None:
    """`progress.status`, for a Progress written before it had one."""
    status = getattr(progress, "status", None)
    if status is not None:
        status(key, text)


def _record_slices(batch: list[tuple[int, Change]], records: int) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive slices of `batch` holding `records` records each (a
    record's changes are consecutive in a batch and stay in one slice)."""
    start, seen, last = 0, 0, None
    for index, (_, change) in enumerate(batch):
        if change.record_id != last:
            if seen == records:
                yield start, index
                start, seen = index, 0
            seen += 1
            last = change.record_id
    if start < len(batch):
        yield start, len(batch)


def _updates(batch: list[Change]) -> list[RecordUpdate]:
    grouped: dict[tuple[str, int], dict[str, Any]] = {}
    for change in batch:
        grouped.setdefault((change.record_id, change.step), {})[change.field] = change.after
    return [RecordUpdate(rid, fields, step) for (rid, step), fields in grouped.items()]
