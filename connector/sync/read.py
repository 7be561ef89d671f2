"""Reading: every changed (or, in a backfill, every) record into the mirror, page by page.

Each page is mirrored with its checkpoint in one transaction, so a kill loses no work that
reached the state DB. How a checkpoint moves differs between sync and backfill; a small
`Checkpoint` policy says which.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from collections.abc import Mapping as TypingMapping
from datetime import datetime, timedelta
from queue import Full, Queue
from typing import TYPE_CHECKING, Any, NamedTuple

from connector.catalog import CATALOG, record_id
from connector.exceptions import ConfigurationError
from connector.mapping import Mapping
from connector.state import StateStore
from connector.systems.base import CrmAdapter, Page

if TYPE_CHECKING:
    from connector.sync.engine import EngineOptions, Run
    from connector.sync.report import Progress

__all__ = ["OBJECTS", "OVERLAP", "BackfillCheckpoint", "Checkpoint", "ObjectRead", "Reader",
           "SyncCheckpoint", "fields_read", "objects_to_read", "parse_objects", "read_everything"]

log = logging.getLogger("crmsync.sync")

# What each system holds, in the order a run reads it (organisations first), from the catalog.
OBJECTS: dict[str, tuple[str, ...]] = {name: c.read_order for name, c in CATALOG.items()}
OVERLAP = timedelta(minutes=2)  # read again before each watermark: clocks and commits skew
PREFETCH_PAGES = 2


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


def fields_read(mapping: Mapping, system: str, obj: str) -> list[str]:
    """The fields to request of `system`'s `obj`: those the mapping reads."""
    return sorted(mapping.fields_read(system).get(obj, set()))


def read_again(store: StateStore, adapter: CrmAdapter, mapping: Mapping, system: str,
                obj: str, ids: list[str], run_id: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Read records of one object again by id and mirror them, in one transaction: the
    records, and the refs of those that changed since the mirror last saw them. Writes and
    saved-plan checks both use it, so what a write patches is this read, not an older copy."""
    records = adapter.read_by_ids(obj, ids, fields_read(mapping, system, obj))
    with store.transaction():
        changed = store.mirror.save_reread(
            system, obj, [(record_id(system, raw) or "?", raw) for raw in records], run_id)
    return records, list(changed)


class ObjectRead(NamedTuple):
    """One object's pages to mirror, and how many records they hold when known (an ETA)."""

    system: str
    obj: str
    pages: Iterable[Page]
    total: int | None = None


class Checkpoint:
    """How reading moves an object's watermarks: after each page (`cap`, applied by
    `StateStore.checkpoint_page` in the transaction that mirrors the page), and once the
    object is read to its end (`object_read`)."""

    def cap(self, system: str) -> datetime | None:
        """The latest a page may move `system`'s sync watermark to; None: not at all."""
        return None

    def object_read(self, store: StateStore, system: str, obj: str) -> None: ...


class SyncCheckpoint(Checkpoint):
    """A sync moves each object's watermark to the newest modification of each page read,
    never past `caps[system]` (the run's start less the safety lag, see EngineOptions)."""

    def __init__(self, caps: TypingMapping[str, datetime]) -> None:
        self.caps = caps

    def cap(self, system: str) -> datetime | None:
        return self.caps[system]


class BackfillCheckpoint(Checkpoint):
    """A backfill marks an object done once it is read to its end: an interrupted backfill
    skips it when run again. A backfill of everything up to now (no `until`) also starts the
    object's sync watermark at `caps[system]` when it has none: sync continues from there,
    less the safety lag (records indexed late are read again)."""

    def __init__(self, caps: TypingMapping[str, datetime], until: datetime | None) -> None:
        self.caps, self.until = caps, until

    def object_read(self, store: StateStore, system: str, obj: str) -> None:
        with store.transaction():
            store.cursors.set_watermark(system, obj, None, "backfill", cursor="done")
            if self.until is None and store.cursors.watermark(system, obj) is None:
                store.cursors.set_watermark(system, obj, self.caps[system])


class Reader:
    """Reads the CRMs into the mirror and keeps the run's `read`, `deleted` and `merged`
    counts (singer's streams, or dlt's extract, at crmsync's scale)."""

    def __init__(self, store: StateStore, mapping: Mapping,
                 adapters: TypingMapping[str, CrmAdapter], options: EngineOptions, run: Run,
                 progress: Progress) -> None:
        self.store, self.mapping, self.adapters = store, mapping, adapters
        self.run, self.progress = run, progress
        self.caps = {system: run.started - options.safety_lag.get(system, timedelta())
                     for system in adapters}

    def read_changed(self, chosen: set[tuple[str, str]] | None = None) -> None:
        """Every record changed since its object's watermark (less `OVERLAP`), then the
        records deleted or merged away since then: of every object, or of those `chosen`."""
        reads = []
        for system, obj in self._objects(chosen):
            mark = self.store.cursors.watermark(system, obj)
            since = mark - OVERLAP if mark else None
            pages = self.adapters[system].read_changed(obj, since, self._fields(system, obj))
            reads.append(ObjectRead(system, obj, pages))
        self._mirror(reads, SyncCheckpoint(self.caps))
        self._read_deleted(chosen)

    def read_backfill(self, since: datetime | None, until: datetime | None,
                      chosen: set[tuple[str, str]] | None) -> None:
        """Everything (within [since, until)). Objects finished by an interrupted backfill
        are skipped; the rest are read again.

        Re-reading a half-done object costs its list calls again, but everything it had
        mirrored stays: a kill loses no work that reached the state DB.
        """
        reads = []
        for system, obj in self._objects(chosen):
            if self.store.cursors.cursor(system, obj, "backfill") == "done":
                self.progress.note(f"{system}.{obj}: already backfilled, skipped")
                continue
            adapter = self.adapters[system]
            total = adapter.count(obj, since, until) if self.progress.wants_totals else None
            pages = adapter.read_all(obj, self._fields(system, obj), since, until)
            reads.append(ObjectRead(system, obj, pages, total))
        self._mirror(reads, BackfillCheckpoint(self.caps, until))
        for system, obj in self._objects(chosen):  # the backfill is complete: reset for next time
            self.store.cursors.clear_watermark(system, obj, "backfill")

    def _objects(self, chosen: set[tuple[str, str]] | None = None
                 ) -> Iterator[tuple[str, str]]:
        return objects_to_read(self.adapters, chosen)

    def _fields(self, system: str, obj: str) -> list[str]:
        return fields_read(self.mapping, system, obj)

    def _read_deleted(self, chosen: set[tuple[str, str]] | None = None) -> None:
        """Records deleted or merged away since the "deleted" watermark (with the same overlap,
        and never past the run's start), each object's pages with their watermark in one
        transaction: they leave planning, and the records tied to them are planned again."""
        for system, obj in self._objects(chosen):
            mark = self.store.cursors.watermark(system, obj, "deleted")
            since = mark - OVERLAP if mark else None
            for page in self.adapters[system].read_deleted(obj, since):
                with self.store.transaction():
                    self._bury(system, obj, page)
                    if page.max_modified is not None:
                        newest = min(page.max_modified, self.run.started)
                        if mark is None or newest > mark:
                            self.store.cursors.set_watermark(system, obj, newest, "deleted")
                            mark = newest
                self.store.lock.heartbeat()

    def _bury(self, system: str, obj: str, page: Page) -> None:
        """Apply a page's tombstones to the mirror (inside the caller's transaction)."""
        if page.tombstones:
            deleted, merged = self.store.mirror.apply_tombstones(system, obj, page.tombstones)
            self.run.report.deleted += deleted
            self.run.report.merged += merged

    def _mirror(self, reads: list[ObjectRead], checkpoint: Checkpoint) -> None:
        """Mirror every page of every read, in order, each with its checkpoint.

        One reader thread runs through all the objects, so the next object's first request
        is under way while the engine mirrors the last page of the one before.
        """
        report = self.run.report
        totals = {(read.system, read.obj): read.total for read in reads}

        def stream() -> Iterator[tuple[str, str, Page | None]]:
            for read in reads:
                for page in read.pages:
                    yield read.system, read.obj, page
                yield read.system, read.obj, None  # the object is read to its end

        for system, obj, page in _prefetched(stream(), PREFETCH_PAGES):
            key = f"{system}.{obj}"
            if key not in report.read:
                report.read[key] = 0
                self.progress.start(key, totals[system, obj])
            if page is None:
                self.progress.finish(key)
                log.info("read %s %s record(s)", report.read[key], key,
                         extra={"fields": {"object": key, "records": report.read[key]}})
                checkpoint.object_read(self.store, system, obj)
                continue
            saved = self.store.checkpoint_page(
                system, obj, ((record_id(system, r) or "?", r) for r in page.records),
                page.max_modified, report.run_id, cap=checkpoint.cap(system),
                tombstones=page.tombstones)
            report.deleted += saved.deleted
            report.merged += saved.merged
            self.store.lock.heartbeat()
            report.read[key] += len(page.records)
            self.progress.advance(key, len(page.records))


def objects_to_read(adapters: TypingMapping[str, CrmAdapter],
                    chosen: set[tuple[str, str]] | None = None) -> Iterator[tuple[str, str]]:
    """(system, object) for every object of every system there is an adapter for (or those
    `chosen`), in the order a run reads them: each system's organisations first."""
    for system, objects in OBJECTS.items():
        if system not in adapters:
            continue
        for obj in objects:
            if chosen is None or (system, obj) in chosen:
                yield system, obj


def read_everything(adapters: TypingMapping[str, CrmAdapter] | Iterable[CrmAdapter],
                    mapping: Mapping) -> dict[str, int]:
    """Read every object of every system to its end, as a backfill's `Reader` asks for it
    (the same objects, order and fields), and keep nothing: records read by `system.object`.
    `adapters` by system name, or as `build_adapters` gives them (as `Engine` takes them).

    For measuring the adapters on their own (the benchmark's adapters-only reads): no state
    DB, no mirror, no read-ahead thread, so what it times is the SDKs and the adapters.
    """
    by_system = (dict(adapters) if isinstance(adapters, TypingMapping)
                 else {adapter.system: adapter for adapter in adapters})
    read: dict[str, int] = {}
    for system, obj in objects_to_read(by_system):
        key = f"{system}.{obj}"
        read[key] = 0
        for page in by_system[system].read_all(obj, fields_read(mapping, system, obj)):
            read[key] += len(page.records)
    return read


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
