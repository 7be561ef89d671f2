"""Deciding: which mirrored records to plan, and their plan, group by group.

A record's plan stays the same until the record, a record tied to it or the mapping changes,
or a day comes on which one of its triggers starts or expires (the only way time enters a
plan). So a run plans only the groups holding such a record (`Planner.scope`).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

from connector.core import plan_records
from connector.mapping import Mapping
from connector.model import Change, Rejection, SourceRef, System
from connector.reconcile import DisjointSets, Duplicate, Reconciled, duplicates
from connector.report.numbers import tally_rows
from connector.state import ChangeSpool, StateStore
from connector.sync.report import RejectRow

if TYPE_CHECKING:
    from connector.sync.engine import Run

__all__ = ["PLAN_CHUNK", "Planner", "in_chunks", "paused_gc", "planning_groups"]

log = logging.getLogger("crmsync.sync")

SAVE_EVERY = 5_000  # planned changes held before they go to the spool
PLAN_CHUNK = 2_000  # records planned together: whole groups, a few thousand records at a time


class Planner:
    """Plans mirrored records into a spool, ledgers what cannot be read, and keeps the dirty
    marks that say what the next run must plan (dlt's normalize, at crmsync's scale)."""

    def __init__(self, store: StateStore, mapping: Mapping, run: Run, mapping_sha256: str
                 ) -> None:
        self.store, self.mapping, self.run = store, mapping, run
        self.mapping_sha256 = mapping_sha256

    def scope(self, replan_all: bool) -> str:
        """"all" records, or only the "changed" ones and those tied to them.

        A run plans only the groups holding a record that is `dirty` (changed, or its
        trigger day has come, since a run last planned it and applied the plan) or has an
        open reject; and everything when asked to, or after a mapping change.
        """
        if replan_all or self.store.meta("identity_complete") != "1":
            return "all"
        if self.store.meta("planned_mapping") != self.mapping_sha256:
            return "all"
        return "changed"

    def plan_from_mirror(self, scope: str) -> ChangeSpool:
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
                self.store.mirror.mark_due(self.run.today.isoformat())
            open_refs = {r.ref: r.stage for r in self.store.ledger.open()}
            pairs, links = self._records_in_scope(scope, open_refs)
            results = _PlanResults(self.store, self.run.report.run_id)
            self._plan_groups(planning_groups(pairs, links), _partners(links), open_refs,
                              results)
            self._report(scope, results)
            return results.spool

    def settle(self, scope: str) -> None:
        """After a run applied its plan: every dirty record was planned, and its plan
        applied; the groups of records found changed since the run read them, and those a
        re-read record left, are planned by the next run."""
        self.store.planned(scope, self.mapping_sha256, replan=self.run.changed_since_read)

    def plan_records(self, refs: set[str]) -> list[Change]:
        """The plan of the groups of `refs` as the mirror holds them now: a few records, so
        all in memory, with none of the bookkeeping of a run's plan (the next run redoes
        that, as they stay dirty)."""
        wanted = self.store.mirror.group_closure(refs)
        mirrored = self.store.mirror.raw([_ref(text) for text in wanted])
        return plan_records(self.mapping, _raws(mirrored.items()), self.run.today,
                            self.store.mirror.link_texts(wanted)).changes

    def _records_in_scope(self, scope: str, open_refs: Collection[str]
                          ) -> tuple[Iterable[tuple[str, str]], list[tuple[str, str]]]:
        """(ref, identity key) pairs and stored links of the records to plan."""
        if scope == "all":
            return self.store.mirror.identity_pairs(), self.store.mirror.link_texts()
        wanted = self.store.mirror.group_closure([*self.store.mirror.dirty_refs(), *open_refs])
        return self.store.mirror.identity_pairs(wanted), self.store.mirror.link_texts(wanted)

    def _plan_groups(self, groups: Iterator[tuple[str, str]],
                     partners: dict[str, list[str]], open_refs: dict[str, str],
                     results: _PlanResults) -> None:
        """Plan the mirrored records of `groups`, a chunk of whole groups at a time."""
        today = self.run.today
        with self.store.transaction():
            for rows in in_chunks(self.store.mirror.by_group(groups), PLAN_CHUNK):
                keys = [key for _, key, _ in rows]
                results.was_rejected.update(k for k in keys if open_refs.get(k) == "read")
                group_links = [(key, other) for key in keys for other in partners.get(key, ())]
                core = plan_records(self.mapping, _raws((key, raw) for _, key, raw in rows),
                                    today, group_links)
                position = {key: place for place, key, _ in rows}
                results.rejected.extend((position.get(str(r.source), rows[-1][0]), r)
                                        for r in core.rejections)
                results.add(len(rows), core.reconciled, core.changes, today)
                results.add_duplicates(keys, duplicates(core.reconciled, core.views,
                                                        group_links))
                self.store.snapshots.replace_tally(keys, tally_rows(core.reconciled,
                                                                    core.views, today))
            results.save()

    def _report(self, scope: str, results: _PlanResults) -> None:
        """Ledger the read rejects, and report the scope and duplicates of what was planned."""
        report = self.run.report
        rejections = [r for _, r in sorted(results.rejected, key=lambda found: found[0])]
        self._ledger_read_rejects(rejections, results.was_rejected
                                  - {str(r.source) for r in rejections})
        report.plan_scope, report.records_planned = scope, results.records
        report.list_duplicates(results.duplicates)
        if results.duplicates:
            log.warning("%s group(s) of duplicate records: two or more records of one system "
                        "linked into one person or organisation (see the report or `crmsync "
                        "status`)", len(results.duplicates),
                        extra={"fields": {"duplicate_groups": len(results.duplicates)}})
        log.info("planned %s record(s) (%s): %s change(s)", results.records, scope,
                 results.spool.count,
                 extra={"fields": {"plan_scope": scope, "records_planned": results.records,
                                   "changes": results.spool.count}})

    def _ledger_read_rejects(self, rejected: list[Rejection], now_readable: set[str]) -> None:
        """Ledger this run's read rejects; resolve `now_readable`, open rejects that read fine."""
        report = self.run.report
        with self.store.transaction():
            for rejection in rejected:
                self.store.ledger.reject(str(rejection.source), "read", rejection.reason,
                                         report.run_id, rejection.field)
                report.rejects.append(RejectRow(record=str(rejection.source), stage="read",
                                                field=rejection.field,
                                                reason=rejection.reason))
            self.store.ledger.resolve(now_readable, "read")
        report.rejected_records = len(rejected)


def _partners(links: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Stored links, from either end."""
    partners: dict[str, list[str]] = {}
    for a, b in links:
        partners.setdefault(a, []).append(b)
        partners.setdefault(b, []).append(a)
    return partners


def _raws(records: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, str, Any]]:
    """(system, object, raw) of mirrored (ref text, raw) pairs, for `plan_records`."""
    for key, raw in records:
        system, obj, _ = key.split(":", 2)
        yield system, obj, raw


def _ref(text: str) -> SourceRef:
    system, obj, rid = text.split(":", 2)
    return SourceRef(system=System(system), object_type=obj, record_id=rid)


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
        self.spool = store.new_spool()
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
        self.store.mirror.replace_duplicates(planned, found, self.run_id)

    def save(self) -> None:
        self.store.mirror.add_plan_dates(self._days)
        self.spool.add(self._changes)
        self._days, self._changes = [], []


def _trigger_days(reconciled: Reconciled, today: date) -> Iterator[tuple[str, str]]:
    """(ref, day) for each coming day on which an organisation's trigger starts or expires:
    its plan changes then, though no record does. Its people are in its group."""
    for org in reconciled.organizations:
        days = {day for t in org.triggers for day in (t.occurred_at, t.expires_at) if day > today}
        for day in days:
            for ref in org.refs:
                yield str(ref), day.isoformat()
