"""Writing: a spool of planned changes sent in batches, each batch's outcome recorded.

Each batch's changes are audited as intended, committed, before the batch is sent, and given
their outcome when the CRM answers; a run killed in between leaves intents that the next run
resolves by reading those records (`Writer.resolve_intents`), so every change that reached a
CRM is audited under the run that made it and can be rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping as TypingMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connector.catalog import CATALOG, record_id
from connector.exceptions import RunLockLost, RunPaused
from connector.mapping import Mapping
from connector.model import Change
from connector.plan import same_value
from connector.preflight import refuse_unwritable
from connector.state import ChangeSpool, StateStore, WriteOutcome
from connector.sync.decide import Planner
from connector.sync.guards import PAUSABLE
from connector.sync.read import read_again
from connector.sync.saved import SavedChanges
from connector.systems.base import CrmAdapter, RecordUpdate, WriteResult

if TYPE_CHECKING:
    from connector.sync.engine import EngineOptions, Run

__all__ = ["WRITE_BATCH", "Writer", "spooled"]

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
                 clock: Callable[[], datetime], planner: Planner | None = None) -> None:
        self.store, self.mapping, self.adapters = store, mapping, adapters
        self.options, self.run, self.clock, self.planner = options, run, clock, planner

    def apply(self, spool: ChangeSpool,
              before_writing: Callable[[], None] | None = None) -> None:
        """Send the changes in batches per object; record each result before the next batch.

        Before each batch: stop if another run took the lock or crmsync was paused, and read
        the batch's records again if the run read them too long ago (`_reread`). Before the
        first, dry runs too: refuse (exit 2) if a field written is missing, read-only or
        lacks a value written. Then `before_writing` (the engine pins the run's mapping)."""
        refuse_unwritable(self.mapping, self.adapters, spool.objects())
        if before_writing is not None:
            before_writing()
        try:
            for system, obj in spool.objects():
                confirm = {r.field for r in self.mapping.write_back.get((system, obj), ())
                           if r.confirm}
                for planned in spool.record_batches(system, obj,
                                                    self.options.write_batch[system], confirm):
                    self._check_lock()
                    batch = self._reread(system, obj, spool, planned)
                    if batch:
                        self._send(system, obj, spool, batch, confirm)
        finally:
            self.run.report.list_changes(spool, sent_only=True, mapping=self.mapping)

    def resolve_intents(self) -> None:
        """Give the intended writes of runs that died before hearing the CRM's answer their
        outcome, by reading just those records: a field that holds the intended value was
        written ("applied", audited under the run that wrote it, so rolling that run back
        undoes it); any other was not ("not_applied"). A lifecycle clear-then-set that holds
        its clear made only its first step. Records of a system not configured this run stay
        unresolved. What is read refreshes the mirror: the dead run never mirrored its writes.
        """
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
                batch: list[tuple[int, Change]]) -> list[tuple[int, Change]]:
        """The batch to send, its records read again first if the run read them more than
        `reread_older_than` ago (see EngineOptions).

        What was read is mirrored. A record someone changed is planned again: a sync replaces
        its changes with the new plan of its group (and plans the group again next run, for
        the records already written); apply and rollback leave it out, as their check no
        longer holds. A record gone since is left out. Changes left out are "superseded".
        """
        run, report = self.run, self.run.report
        if self.clock() - run.read_at <= self.options.reread_older_than:
            return batch
        adapter = self.adapters[system]
        ids = sorted({change.record_id for _, change in batch})
        calls = adapter.usage().calls
        records, reread = read_again(self.store, adapter, self.mapping, system, obj, ids,
                                     report.run_id)
        changed = set(reread)
        report.reread_calls += adapter.usage().calls - calls
        report.reread_records += len(ids)
        found = {f"{system}:{obj}:{record_id(system, r)}" for r in records}
        gone = {f"{system}:{obj}:{rid}" for rid in ids} - found
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

    def _record_results(self, system: str, obj: str, spool: ChangeSpool,
                        batch: list[tuple[int, Change]], updates: list[RecordUpdate],
                        results: list[WriteResult], intents: list[int]) -> None:
        """Count each change's outcome in the report, and record it (`StateStore.record_writes`:
        the spool, the audit's intents, `intents`, none in a dry run, the reject ledger and
        the mirror, in one transaction). Writes from this run's own plan leave their records
        as planned; others (apply of a saved plan, rollback) mark them to be planned again."""
        report = self.run.report
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


def _updates(batch: list[Change]) -> list[RecordUpdate]:
    grouped: dict[tuple[str, int], dict[str, Any]] = {}
    for change in batch:
        grouped.setdefault((change.record_id, change.step), {})[change.field] = change.after
    return [RecordUpdate(rid, fields, step) for (rid, step), fields in grouped.items()]
