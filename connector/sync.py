"""The engine: read -> normalise -> reconcile -> plan -> apply -> checkpoint.

Correctness rests on one idea: the **mirror** in the state DB holds the last-seen raw record
of everything we read, and the plan is always computed from the whole mirror. So:

- a page of changed records and the watermark that covers it are saved in one transaction;
  the watermark never passes the run's start (records still being written are re-read);
- a crash between an API write and its audit row only means the next run plans the same
  change again and writes the same value again: nothing lost, nothing applied twice with
  different values;
- our own writes update the mirror, so reading them back plans nothing (no echo);
- triggers that expire with time are caught even when no record changed.

Dry-run takes exactly the same path; only the adapter call and what records its result are
skipped.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from collections.abc import Mapping as TypingMapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connector.exceptions import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    CrmsyncError,
    RunStoppedEarly,
)
from connector.mapping import Mapping
from connector.model import Change, Rejection, SourceRef, System
from connector.normalize import identity_keys, normalise, record_fields, record_id
from connector.plan import FORWARD_ONLY_FIELDS, Plan, make_plan, same_value
from connector.reconcile import DisjointSets, reconcile
from connector.state import StateStore
from connector.systems.base import CrmAdapter, Page, RecordUpdate, WriteResult

__all__ = [
    "OBJECTS",
    "Engine",
    "PlanDocument",
    "Progress",
    "RunReport",
    "parse_objects",
    "paused_gc",
]

log = logging.getLogger("crmsync.sync")

OBJECTS: dict[str, tuple[str, ...]] = {
    "hubspot": ("companies", "contacts", "deals"),
    "salesforce": ("Account", "Lead", "Contact", "Opportunity"),
}
WRITE_BATCH = {"hubspot": 100, "salesforce": 200}
OVERLAP = timedelta(minutes=2)
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
    changes: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)

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
            return cls(data["created_at"], data["mapping_sha256"], data["today"], changes)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"{source}: cannot read plan: {exc}") from None


def mapping_fingerprint(mapping: Mapping) -> str:
    """A hash of every rule that decides what a plan writes, to refuse plans made with another
    mapping. Only ordered parts are hashed: set reprs vary between processes."""
    decisive = (
        sorted(mapping.picklists.items()),
        sorted(mapping.write_back.items()),
        sorted(mapping.precedence.items()),
        sorted(mapping.deal_effects.items()),
        sorted(mapping.facts.items()),
        sorted((t.type, t.system, t.object, t.field, t.active_days, t.polarity, sorted(t.values))
               for t in mapping.triggers),
    )
    return hashlib.sha256(repr(decisive).encode()).hexdigest()


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
    ) -> None:
        self.store = store
        self.mapping = mapping
        self.adapters: dict[str, CrmAdapter] = (
            dict(adapters) if isinstance(adapters, TypingMapping)
            else {adapter.system: adapter for adapter in adapters}
        )
        self.today = today
        self.progress = progress or Progress()
        self.clock = clock

    # ---- public runs -------------------------------------------------------------------------

    def sync(self, *, dry_run: bool = False) -> RunReport:
        """One incremental run: read what changed since each watermark, then plan and apply."""
        return self._run("sync", dry_run, lambda ctx: self._read_and_apply(ctx, backfill=None))

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
        return self._run("backfill", dry_run, lambda ctx: self._read_and_apply(ctx, window))

    def plan(self) -> tuple[RunReport, PlanDocument]:
        """Steps 1-7: read, normalise, reconcile, plan; nothing is written to the CRMs."""
        holder: dict[str, PlanDocument] = {}

        def body(ctx: _Run) -> None:
            self._read_all_changed(ctx)
            plan = self._plan_from_mirror(ctx)
            holder["doc"] = PlanDocument(
                created_at=ctx.started.isoformat(),
                mapping_sha256=mapping_fingerprint(self.mapping),
                today=ctx.today.isoformat(),
                changes=plan.changes,
            )
            ctx.report.changes = [_change_row(c, "planned") for c in plan.changes]

        report = self._run("plan", True, body)
        return report, holder.get("doc", PlanDocument("", "", "", []))

    def apply(self, document: PlanDocument, *, dry_run: bool = False) -> RunReport:
        """Apply a saved plan, unless a record it touches changed since the plan was made."""

        def body(ctx: _Run) -> None:
            if document.mapping_sha256 != mapping_fingerprint(self.mapping):
                raise ConfigurationError(
                    "the plan was made with a different mapping; make a new plan with "
                    "`crmsync plan -o plan.json`"
                )
            stale = self._changed_since_plan(ctx, document.changes)
            if stale:
                raise ConfigurationError(
                    f"refusing the plan: {len(stale)} field(s) changed since it was made, e.g. "
                    + "; ".join(stale[:5]) + ". Make a new plan."
                )
            ctx.report.planned = len(document.changes)
            self._apply(ctx, document.changes)

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
            self._apply(ctx, changes)

        return self._run("rollback", dry_run, body)

    # ---- the run frame -----------------------------------------------------------------------

    def _run(self, kind: str, dry_run: bool, body: Callable[[_Run], None]) -> RunReport:
        report = RunReport(kind=kind, dry_run=dry_run)
        started = self.clock()
        report.started_at = started.isoformat()
        try:
            self.store.acquire_lock(f"crmsync {kind}")
        except RunStoppedEarly as exc:
            report.status, report.message = "stopped", str(exc)
            return report
        report.run_id = self.store.start_run(kind, dry_run=dry_run)
        ctx = _Run(report, started, self.today or started.date())
        log.info("run %s (%s%s) started", report.run_id, kind, ", dry run" if dry_run else "",
                 extra={"fields": {"run_id": report.run_id, "kind": kind, "dry_run": dry_run}})
        try:
            body(ctx)
            report.status = "rejects" if report.rejected_records or report.write_rejected else "ok"
        except RunStoppedEarly as exc:
            report.status, report.message = "stopped", f"{exc} Rerun to continue."
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from a scheduler (see cli.py)
            report.status = "stopped"
            report.message = ("interrupted; everything read or written so far is saved. "
                              "Rerun to continue.")
        except ConfigurationError as exc:
            report.status, report.message = "config_error", str(exc)
        except AuthenticationError as exc:
            report.status, report.message = "failed", str(exc)
        except (ApiError, CrmsyncError) as exc:
            report.status, report.message = "failed", str(exc)
        finally:
            ended = self.clock()
            report.ended_at = ended.isoformat()
            report.duration_seconds = round((ended - started).total_seconds(), 3)
            report.api_calls = self._usage()
            self.store.finish_run(report.run_id, report.status, report.counts(),
                                  report.api_calls, report.message)
            self.store.release_lock()
            level = logging.INFO if report.status in ("ok", "rejects") else logging.ERROR
            log.log(level, "run %s %s: planned %s, applied %s, rejected %s/%s, retry later %s%s",
                    report.run_id, report.status, report.planned, report.applied,
                    report.rejected_records, report.write_rejected, report.retry_later,
                    f" ({report.message})" if report.message else "",
                    extra={"fields": {"run_id": report.run_id, "status": report.status,
                                      **report.counts(), "api_calls": report.api_calls}})
        return report

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

    def _read_and_apply(self, ctx: _Run, backfill: tuple | None) -> None:
        if backfill is None:
            self._read_all_changed(ctx)
        else:
            self._read_backfill(ctx, *backfill)
        plan = self._plan_from_mirror(ctx)
        ctx.report.planned = len(plan.changes)
        self._apply(ctx, plan.changes)

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
        for system, obj in self._objects():
            mark = self.store.watermark(system, obj)
            since = mark - OVERLAP if mark else None
            pages = self.adapters[system].read_changed(obj, since, self._fields(system, obj))
            self._consume(ctx, system, obj, pages, watermark_kind="sync")

    def _read_backfill(self, ctx: _Run, since, until, chosen) -> None:
        """Objects finished by an interrupted backfill are skipped; the rest are read again.

        Re-reading a half-done object costs its list calls again, but everything it had
        mirrored stays: a kill loses no work that reached the state DB.
        """
        for system, obj in self._objects(chosen):
            if self.store.cursor(system, obj, "backfill") == "done":
                self.progress.note(f"{system}.{obj}: already backfilled, skipped")
                continue
            adapter = self.adapters[system]
            total = adapter.count(obj, since, until) if self.progress.wants_totals else None
            pages = adapter.read_all(obj, self._fields(system, obj), since, until)
            self._consume(ctx, system, obj, pages, watermark_kind="backfill", total=total)
            with self.store.transaction():
                self.store.set_watermark(system, obj, None, "backfill", cursor="done")
                if until is None and self.store.watermark(system, obj) is None:
                    # everything up to the run's start is mirrored: sync continues from there
                    self.store.set_watermark(system, obj, ctx.started)
        for system, obj in self._objects(chosen):  # the backfill is complete: reset for next time
            self.store.clear_watermark(system, obj, "backfill")

    def _consume(self, ctx: _Run, system: str, obj: str, pages: Iterable[Page],
                 watermark_kind: str, total: int | None = None) -> None:
        key = f"{system}.{obj}"
        ctx.report.read.setdefault(key, 0)
        self.progress.start(key, total)
        for page in pages:
            with self.store.transaction():
                self.store.mirror_page(
                    system, obj, ((record_id(system, r) or "?", r) for r in page.records),
                    page.max_modified, ctx.report.run_id)
                if watermark_kind == "sync" and page.max_modified is not None:
                    mark = min(page.max_modified, ctx.started)
                    current = self.store.watermark(system, obj)
                    if current is None or mark > current:
                        self.store.set_watermark(system, obj, mark)
            self.store.heartbeat()
            ctx.report.read[key] += len(page.records)
            self.progress.advance(key, len(page.records))
        self.progress.finish(key)
        log.info("read %s %s record(s)", ctx.report.read[key], key,
                 extra={"fields": {"object": key, "records": ctx.report.read[key]}})

    # ---- deciding ----------------------------------------------------------------------------

    def _plan_from_mirror(self, ctx: _Run) -> Plan:
        """Normalise, reconcile and plan every mirrored record, one group at a time.

        A group holds the records that can end up in one entity or affect it: they share an
        id, an e-mail, a domain, an organisation or a deal (`identity_keys`), directly or
        through others, or a stored link. A first pass over the mirror works the groups out
        from those keys alone; a second normalises, reconciles and plans group by group.
        Reconciling never looks beyond a group, so the plan is exactly the one a single pass
        over everything gives (tests/test_plan_groups.py); but memory holds one group's views,
        not the whole mirror's, at 4-5 kB a record (a sync over 100k mirrored records peaked
        at 1.1 GB holding them all, and at 115 MB group by group).
        """
        with paused_gc():
            links = self.store.link_texts()
            open_refs = {r.ref for r in self.store.open_rejects() if r.stage == "read"}
            partners: dict[str, list[str]] = {}  # stored links, from either end
            for a, b in links:
                partners.setdefault(a, []).append(b)
                partners.setdefault(b, []).append(a)
            changes: list[Change] = []
            rejected: list[tuple[int, Rejection]] = []
            seen: set[str] = set()
            groups = _groups(self.store.iter_mirrored(), links)
            del links
            with self.store.transaction():  # the links found, saved group by group
                for rows in self.store.mirror_by_group(groups):
                    views = []
                    for position, key, raw in rows:
                        system, obj, _ = key.split(":", 2)
                        view = normalise(self.mapping, system, obj, raw)
                        if isinstance(view, Rejection):
                            rejected.append((position, view))
                        else:
                            views.append(view)
                        if key in open_refs:
                            seen.add(key)
                    group_links = [(key, other) for _, key, _ in rows
                                   for other in partners.get(key, ())]
                    reconciled = reconcile(self.mapping, views, ctx.today, group_links)
                    self.store.save_links(reconciled.links(), ctx.report.run_id)
                    changes.extend(make_plan(self.mapping, reconciled, ctx.today).changes)
            rejected.sort(key=lambda found: found[0])  # in mirror order, as one pass gives
            rejections = [r for _, r in rejected]
            self._ledger_read_rejects(ctx, rejections, seen - {str(r.source) for r in rejections})
            changes.sort(key=lambda c: (c.system, c.object_type, c.record_id, c.field, c.step))
            return Plan(changes)

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

    def _apply(self, ctx: _Run, changes: list[Change]) -> None:
        """Send changes in batches per object; record each result before the next batch.

        The report lists results in the order of `changes`, whatever order batching chose.
        """
        by_object: dict[tuple[str, str], list[Change]] = {}
        for change in changes:
            by_object.setdefault((change.system.value, change.object_type), []).append(change)
        first_row = len(ctx.report.changes)
        try:
            for (system, obj), object_changes in sorted(by_object.items()):
                confirm = {r.field for r in self.mapping.write_back.get((system, obj), ())
                           if r.confirm}
                for batch in _record_batches(object_changes, WRITE_BATCH[system], confirm):
                    updates = _updates(batch)
                    if ctx.report.dry_run:
                        results = [WriteResult(u.record_id, "applied", step=u.step)
                                   for u in updates]
                    else:
                        results = self.adapters[system].write(obj, updates,
                                                              confirm_fields=confirm)
                    self._record_results(ctx, system, obj, batch, updates, results)
        finally:
            _in_plan_order(ctx.report.changes, first_row, changes)

    def _record_results(self, ctx, system, obj, batch: list[Change],
                        updates: list[RecordUpdate], results: list[WriteResult]) -> None:
        by_update = {(u.record_id, u.step): r for u, r in zip(updates, results, strict=True)}
        touched: dict[str, dict[str, Any]] = {}
        audited: list[Change] = []
        with self.store.transaction():
            for change in batch:
                result = by_update[(change.record_id, change.step)]
                status = result.status
                ctx.report.changes.append(_change_row(change, status, result))
                if status == "applied":
                    ctx.report.applied += 1
                    if not ctx.report.dry_run:
                        audited.append(change)
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
            if audited:
                self.store.audit_many(ctx.report.run_id, (
                    (c.ref, c.field, c.before, c.after, c.rule) for c in audited))
            if touched and not ctx.report.dry_run:
                self._mirror_writes(ctx, system, obj, touched)
                self.store.resolve_rejects([f"{system}:{obj}:{rid}" for rid in touched], "write")

    def _mirror_writes(self, ctx, system: str, obj: str, touched: dict[str, dict]) -> None:
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
                fields.update(touched[ref.record_id])
            updated.append((ref, raw, None))
        self.store.mirror_records(updated, ctx.report.run_id)

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
        """Fresh values of the given records, read by id (they also refresh the mirror)."""
        out: dict[str, dict[str, Any]] = {}
        by_object: dict[tuple[str, str], list[str]] = {}
        for ref in refs:
            by_object.setdefault((ref.system.value, ref.object_type), []).append(ref.record_id)
        for (system, obj), ids in sorted(by_object.items()):
            records = self.adapters[system].read_by_ids(obj, sorted(ids),
                                                         self._fields(system, obj))
            for raw in records:
                ref = SourceRef(system=System(system), object_type=obj,
                                record_id=record_id(system, raw) or "?")
                out[str(ref)] = record_fields(system, raw) or {}
        return out

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


def _groups(
    mirror: Iterable[tuple[str, dict[str, Any]]], links: Iterable[tuple[str, str]]
) -> Iterator[tuple[str, str]]:
    """(ref, group) for every mirrored record: records tied by identity keys or stored links
    share a group. Holds only the keys, never a decoded record beyond the current one."""
    components = DisjointSets()
    refs: list[str] = []
    for ref, raw in mirror:
        system, obj, _ = ref.split(":", 2)
        refs.append(ref)
        components.find(ref)
        for key in identity_keys(system, obj, raw):
            components.union(ref, key)
    for a, b in links:
        components.union(a, b)
    for ref in refs:
        yield ref, components.find(ref)


def _record_batches(
    changes: list[Change], size: int, confirm: Collection[str] = ()
) -> Iterator[list[Change]]:
    """Batches of whole records (all fields and steps of a record stay together).

    Records that need a second step (HubSpot lifecycle: clear, then set) go first, then those
    whose writes are read back to confirm them. The adapter sends a batch's later step, and
    its read-back, as requests of their own; packing those records into as few batches as
    possible saves one request per batch that would otherwise hold a few of them.
    """
    by_record: dict[str, list[Change]] = {}
    for change in changes:
        by_record.setdefault(change.record_id, []).append(change)

    def group(record_id: str) -> int:
        record = by_record[record_id]
        if any(c.step for c in record):
            return 0
        return 1 if any(c.field in confirm for c in record) else 2

    ids = sorted(by_record, key=group)  # stable: plan order within each group
    for start in range(0, len(ids), size):
        yield [c for rid in ids[start:start + size] for c in by_record[rid]]


def _in_plan_order(rows: list[dict[str, Any]], first: int, changes: list[Change]) -> None:
    """Put the report rows from `first` on in the order of the changes they report."""
    position = {(c.system.value, c.object_type, c.record_id, c.field, c.step): i
                for i, c in enumerate(changes)}
    rows[first:] = sorted(rows[first:], key=lambda row: position.get(
        (row["system"], row["object_type"], row["record_id"], row["field"], row["step"]), 0))


def _updates(batch: list[Change]) -> list[RecordUpdate]:
    grouped: dict[tuple[str, int], dict[str, Any]] = {}
    for change in batch:
        grouped.setdefault((change.record_id, change.step), {})[change.field] = change.after
    return [RecordUpdate(rid, fields, step) for (rid, step), fields in grouped.items()]


_PLAIN = (str, bool, int, type(None))  # values whose JSON form is the value itself


def _change_row(change: Change, status: str, result: WriteResult | None = None) -> dict[str, Any]:
    """`change.model_dump(mode="json")` plus the outcome. Built by hand when before and after
    are plain values (nearly always), a third faster than pydantic's serialiser: a backfill
    reports a row for most records."""
    if type(change.before) in _PLAIN and type(change.after) in _PLAIN:
        row = {"system": change.system.value, "object_type": change.object_type,
               "record_id": change.record_id, "field": change.field, "before": change.before,
               "after": change.after, "rule": change.rule, "reason": change.reason,
               "step": change.step}
    else:
        row = change.model_dump(mode="json")
    row["status"] = status
    if result is not None and result.status != "applied":
        row["code"], row["message"] = result.code, result.message
    return row
