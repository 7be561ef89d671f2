"""The mirror: the last-seen copy of every record, and what planning derives from it.

Beside the records: the identity index (the keys that tie records into one planning group),
links a person asserts, dirty flags (records to plan again), plan dates (days a plan changes
by itself), tombstones (deleted and merged records stay, flagged) and the duplicates found.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from connector.catalog import CATALOG, identity_keys
from connector.model import SourceRef, System
from connector.state._sql import analyze, iso, now, parse, run_in, stream, values_in
from connector.state.ledger import Ledger

# `{mark}` is 1 when a changed record is to be planned again (see `Mirror.save_records`): a
# constant of the statement, not a parameter of each row, so that PostgreSQL can upsert a
# page as one statement (dialect.bulk_form takes only statements whose parameters are values)
_UPSERT_MIRROR = (
    "INSERT INTO mirror (ref, system, object_type, record_id, record, modified_at, seen_run, "
    "digest, dirty) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (ref) DO UPDATE SET "
    "record = excluded.record, modified_at = coalesce(excluded.modified_at, mirror.modified_at), "
    "seen_run = excluded.seen_run, digest = excluded.digest, "
    "dirty = CASE WHEN {mark} = 1 OR mirror.deleted = 1 THEN 1 ELSE mirror.dirty END, "
    "deleted = 0, deleted_at = NULL, merged_into = NULL"
)


@dataclass(frozen=True)
class RecordState:
    """How the mirror holds one record: the run that last read a change to it, and whether
    its CRM deleted it or merged it into another (`merged_into`, a ref)."""

    ref: str
    seen_run: int | None
    modified_at: datetime | None
    deleted: bool
    deleted_at: datetime | None
    merged_into: str | None


def parse_ref(text: str) -> SourceRef:
    system, object_type, record_id = text.split(":", 2)
    return SourceRef(system=System(system), object_type=object_type, record_id=record_id)


def mirror_text(system: str, record: dict[str, Any]) -> bytes:
    """What the mirror keeps of a record (the catalog's rule: all but its modification time)."""
    return CATALOG[system].mirror_text(record)


class Mirror:
    """Mirrored records and the planning index over them."""

    def __init__(self, db: sqlite3.Connection, ledger: Ledger) -> None:
        self.db, self._ledger = db, ledger
        # records marked dirty because a record they shared a key with lost it; a run that
        # clears every dirty mark after its plan marks again those found after the plan
        self.left_behind: set[str] = set()

    # ---- links -----------------------------------------------------------------------------

    def save_links(
        self, pairs: Iterable[tuple[SourceRef | str, SourceRef | str]], run_id: int
    ) -> None:
        """Pairs of records a person asserts are the same entity, as refs or their text.

        Never pairs derived from data (an e-mail, a domain, a CRM id): reconcile derives
        those afresh from the records each run, so fixing the data undoes the link."""
        self.db.executemany(
            "INSERT OR IGNORE INTO links (a, b, first_seen_run) VALUES (?, ?, ?)",
            [(str(a), str(b), run_id) for a, b in pairs],
        )

    def links(self) -> list[tuple[SourceRef, SourceRef]]:
        return [(parse_ref(a), parse_ref(b)) for a, b in self.link_texts()]

    def link_texts(self, refs: Collection[str] | None = None) -> list[tuple[str, str]]:
        """`links()` as the refs' text (planning only compares them), all of them or those
        with both ends in `refs`."""
        if refs is None:
            return self.db.execute("SELECT a, b FROM links ORDER BY a, b").fetchall()
        found = run_in(self.db, "SELECT a, b FROM links WHERE a IN ({})", refs)
        return sorted({(a, b) for a, b in found if b in refs})

    # ---- mirror ----------------------------------------------------------------------------

    def save_page(
        self,
        system: str,
        object_type: str,
        records: Iterable[tuple[str, dict[str, Any]]],
        modified: datetime | None,
        run_id: int,
    ) -> int:
        """Mirror one page of one object, given as (record id, record) pairs sharing a modified
        time. Returns how many records are new or changed in anything planning reads; only
        those are written and marked dirty, so re-reading a record costs no planning."""
        modified_at = iso(modified)
        return self._mirror(
            [(f"{system}:{object_type}:{rid}", system, object_type, rid, record, modified_at)
             for rid, record in records],
            run_id, mark_dirty=True,
        )

    def save_records(
        self,
        records: Iterable[tuple[SourceRef, dict[str, Any], datetime | None]],
        run_id: int,
        *,
        mark_dirty: bool = True,
    ) -> int:
        """`save_page` for records of any object. `mark_dirty=False` mirrors values a run
        has just written from its own plan: the plan already accounts for them."""
        return self._mirror(
            [(str(ref), ref.system.value, ref.object_type, ref.record_id, record, iso(modified))
             for ref, record, modified in records],
            run_id, mark_dirty=mark_dirty,
        )

    def save_reread(self, system: str, object_type: str,
                       records: Iterable[tuple[str, dict[str, Any]]], run_id: int) -> list[str]:
        """`save_page` for records read by id (no modified time), returning the refs of those
        new or changed in anything planning reads."""
        return self._mirror_rows(
            [(f"{system}:{object_type}:{rid}", system, object_type, rid, record, None)
             for rid, record in records],
            run_id, mark_dirty=True,
        )

    def save_writes(self, system: str, object_type: str, written: dict[str, dict[str, Any]],
                    run_id: int, *, mark_dirty: bool) -> None:
        """Mirror what a run wrote, {record id: {field: value written}}, as the CRM reads it
        back, so reading it again is no change. Writes from a run's own plan leave the record
        as planned; others (apply of a saved plan, rollback) pass `mark_dirty`, as the plan it
        was last planned with may no longer hold."""
        catalog = CATALOG[system]
        refs = [SourceRef(system=System(system), object_type=object_type, record_id=rid)
                for rid in written]
        current = self.raw(refs)
        updated = []
        for ref in refs:
            raw = current.get(str(ref))
            if raw is None:
                continue
            fields = catalog.record_fields(raw)
            if fields is not None:
                fields.update(catalog.as_read_back(written[ref.record_id]))
            updated.append((ref, raw, None))
        self.save_records(updated, run_id, mark_dirty=mark_dirty)

    def _mirror(self, rows: list[tuple[str, str, str, str, dict[str, Any], str | None]],
                run_id: int, *, mark_dirty: bool) -> int:
        return len(self._mirror_rows(rows, run_id, mark_dirty=mark_dirty))

    def _mirror_rows(self, rows: list[tuple[str, str, str, str, dict[str, Any], str | None]],
                     run_id: int, *, mark_dirty: bool) -> list[str]:
        texts = [mirror_text(system, record) for _, system, _, _, record, _ in rows]
        known = self._digests([row[0] for row in rows])
        changed = []
        for row, text in zip(rows, texts, strict=True):
            digest = hashlib.blake2b(text, digest_size=16).hexdigest()
            if known.get(row[0]) != digest:
                changed.append((row, text, digest))
        if not changed:
            return []
        self.db.executemany(_UPSERT_MIRROR.format(mark=int(mark_dirty)), [
            (ref, system, obj, rid, text, modified_at, run_id, digest)
            for (ref, system, obj, rid, _, modified_at), text, digest in changed
        ])
        refs = [row[0] for row, _, _ in changed]
        old_keys = run_in(self.db, "SELECT ref, key FROM identity WHERE ref IN ({})", refs)
        run_in(self.db, "DELETE FROM identity WHERE ref IN ({})", refs)
        new_keys = [(key, ref) for (ref, system, obj, _, record, _), _, _ in changed
                    for key in identity_keys(system, obj, record)]
        self.db.executemany("INSERT OR IGNORE INTO identity (key, ref) VALUES (?, ?)", new_keys)
        self._mark_left_behind(old_keys, new_keys)
        return refs

    def _mark_left_behind(self, old_keys: list[tuple[str, str]],
                          new_keys: list[tuple[str, str]]) -> None:
        """Mark dirty the records that shared a key a changed record no longer has (its
        e-mail fixed, its account changed): they were planned in its group and must be planned
        without it. Those that share its new keys are found from it (`group_closure`)."""
        kept = {(ref, key) for key, ref in new_keys}
        lost = {key for ref, key in old_keys if (ref, key) not in kept}
        if lost:
            behind = values_in(self.db, "SELECT ref FROM identity WHERE key IN ({})", lost)
            self.mark_dirty(behind)
            self.left_behind |= behind

    def _digests(self, refs: list[str]) -> dict[str, str | None]:
        """Each mirrored record's digest; none for a deleted one, so reading it again revives
        it even when its content is unchanged (restored from the recycle bin)."""
        return dict(run_in(self.db, "SELECT ref, CASE WHEN deleted = 1 THEN NULL ELSE digest END "
                                 "FROM mirror WHERE ref IN ({})", refs))

    def raw(self, refs: Iterable[SourceRef] | None = None) -> dict[str, dict[str, Any]]:
        """Last-seen raw records, keyed by ref string (all of them when `refs` is None)."""
        if refs is None:
            rows = self.db.execute("SELECT ref, record FROM mirror").fetchall()
        else:
            rows = run_in(self.db, "SELECT ref, record FROM mirror WHERE ref IN ({})",
                                 [str(r) for r in refs])
        return {ref: orjson.loads(record) for ref, record in rows}

    def iter_raw(self, batch: int = 2_000) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every last-seen raw record as (ref string, record), decoded a batch at a time."""
        for rows in stream(self.db, "SELECT ref, record FROM mirror", (), batch):
            for ref, record in rows:
                yield ref, orjson.loads(record)

    def by_group(
        self, groups: Iterable[tuple[str, str]], batch: int = 2_000
    ) -> Iterator[list[tuple[int, str, dict[str, Any]]]]:
        """Mirrored records one group at a time, each as (position, ref, record).

        `groups` gives (ref, group) for the records wanted; `position` counts them in that
        order. The grouping goes to a temporary table, so only the current group is decoded.
        """
        db = self.db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS plan_group "
                   "(position INTEGER PRIMARY KEY, grp TEXT NOT NULL, ref TEXT NOT NULL)")
        db.execute("DELETE FROM temp.plan_group")
        db.executemany("INSERT INTO temp.plan_group (ref, grp) VALUES (?, ?)", groups)
        db.execute("CREATE INDEX IF NOT EXISTS temp.plan_group_order ON plan_group (grp, position)")
        analyze(db, "temp.plan_group")
        pages = stream(
            db, "SELECT g.grp, g.position, m.ref, m.record FROM temp.plan_group AS g "
            "JOIN mirror AS m ON m.ref = g.ref WHERE m.deleted = 0 ORDER BY g.grp, g.position",
            (), batch)
        try:
            current, rows = None, []
            for fetched in pages:
                for group, position, ref, record in fetched:
                    if group != current and rows:
                        yield rows
                        rows = []
                    current = group
                    rows.append((position, ref, orjson.loads(record)))
            if rows:
                yield rows
        finally:
            pages.close()
            db.execute("DROP TABLE IF EXISTS temp.plan_group")

    # ---- planning groups -------------------------------------------------------------------

    def identity_pairs(self, refs: Collection[str] | None = None) -> Iterator[tuple[str, str]]:
        """(ref, key) for every live mirrored record, or those in `refs`, in mirror order.

        Every live record appears, keyed or not (a record without keys pairs with itself), so
        planning sees all of them; deleted and merged-away records take no part.
        """
        if refs is None:
            cursor = self.db.execute(
                "SELECT m.ref, coalesce(i.key, m.ref) FROM mirror AS m "
                "LEFT JOIN identity AS i ON i.ref = m.ref WHERE m.deleted = 0 ORDER BY m.rowid")
            while rows := cursor.fetchmany(5_000):
                yield from rows
            return
        yield from run_in(self.db,
            "SELECT m.ref, coalesce(i.key, m.ref) FROM mirror AS m LEFT JOIN identity AS i "
            "ON i.ref = m.ref WHERE m.ref IN ({}) AND m.deleted = 0", sorted(refs))

    def group_closure(self, seeds: Iterable[str]) -> set[str]:
        """The mirrored records tied to `seeds`, directly or through others, by a shared
        identity key or a stored link: every record whose plan a change to a seed can touch."""
        refs: set[str] = set()
        keys: set[str] = set()
        frontier = set(seeds)
        while frontier:
            refs |= frontier
            new_keys = values_in(self.db, "SELECT key FROM identity WHERE ref IN ({})",
                                       frontier) - keys
            keys |= new_keys
            found = values_in(self.db, "SELECT ref FROM identity WHERE key IN ({})", new_keys)
            found |= values_in(self.db, "SELECT b FROM links WHERE a IN ({})", frontier)
            found |= values_in(self.db, "SELECT a FROM links WHERE b IN ({})", frontier)
            frontier = found - refs
        return values_in(self.db, "SELECT ref FROM mirror WHERE ref IN ({}) AND deleted = 0",
                         refs)

    def dirty_refs(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT ref FROM mirror WHERE dirty = 1")]

    def mark_dirty(self, refs: Collection[str]) -> None:
        """Plan these records' groups again next run (a re-read found them changed)."""
        run_in(self.db, "UPDATE mirror SET dirty = 1 WHERE ref IN ({})", refs)

    def live_refs(self, refs: Collection[str]) -> set[str]:
        """Those of `refs` that are mirrored and not deleted: the only possible write targets."""
        return values_in(self.db, "SELECT ref FROM mirror WHERE ref IN ({}) AND deleted = 0",
                         refs)

    # ---- deletions and merges --------------------------------------------------------------

    def apply_tombstones(self, system: str, object_type: str,
                         tombstones: Iterable[Any]) -> tuple[int, int]:
        """Mark mirrored records deleted (or merged into a survivor): (deleted, merged) counts.

        The row stays, flagged, and leaves planning: its identity keys go, its open rejects
        are resolved, links to it move to the survivor of a merge (or go with a deletion), and
        every record tied to it is marked dirty, so its group is planned without it. A
        tombstone older than the mirrored copy is ignored: the record was restored since.
        """
        deleted = merged = 0
        for tombstone in tombstones:
            ref = f"{system}:{object_type}:{tombstone.record_id}"
            row = self.db.execute("SELECT modified_at FROM mirror WHERE ref = ? AND deleted = 0",
                                  (ref,)).fetchone()
            when = tombstone.deleted_at
            if row is None or (when is not None and row[0] and parse(row[0]) > when):
                continue
            survivor = (f"{system}:{object_type}:{tombstone.merged_into}"
                        if tombstone.merged_into else None)
            self.mark_dirty(self.group_closure([ref]) | ({survivor} if survivor else set()))
            self.db.execute("UPDATE mirror SET deleted = 1, deleted_at = ?, merged_into = ?, "
                            "dirty = 0 WHERE ref = ?",
                            (iso(when or now()), tombstone.merged_into, ref))
            self.db.execute("DELETE FROM identity WHERE ref = ?", (ref,))
            self.db.execute("DELETE FROM duplicates WHERE ref = ?", (ref,))
            self.db.execute("DELETE FROM tally WHERE ref = ?", (ref,))  # the report's count
            self._ledger.resolve_record(ref)
            self._move_links(ref, survivor)
            if survivor:
                merged += 1
            else:
                deleted += 1
        return deleted, merged

    def _move_links(self, ref: str, survivor: str | None) -> None:
        """Links to `ref` now join `survivor` instead (a merge), or go (a deletion)."""
        if survivor is not None:
            self.db.execute("INSERT OR IGNORE INTO links (a, b, first_seen_run) SELECT ?, b, "
                            "first_seen_run FROM links WHERE a = ? AND b != ?",
                            (survivor, ref, survivor))
            self.db.execute("INSERT OR IGNORE INTO links (a, b, first_seen_run) SELECT a, ?, "
                            "first_seen_run FROM links WHERE b = ? AND a != ?",
                            (survivor, ref, survivor))
        self.db.execute("DELETE FROM links WHERE a = ? OR b = ?", (ref, ref))

    def replace_duplicates(self, planned: Collection[str], found: Iterable[Any],
                           run_id: int | None) -> None:
        """The duplicates (`reconcile.Duplicate`) found among the `planned` records, in place
        of those recorded for them before."""
        run_in(self.db, "DELETE FROM duplicates WHERE ref IN ({})", planned)
        self.db.executemany(
            "INSERT INTO duplicates (ref, grp, entity, system, linked_by, found_run) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ref) DO UPDATE SET grp = excluded.grp, "
            "entity = excluded.entity, system = excluded.system, "
            "linked_by = excluded.linked_by, found_run = excluded.found_run",
            [(ref, group.records[0], group.entity, group.system, json.dumps(group.linked_by),
              run_id) for group in found for ref in group.records])

    def duplicate_groups(self, limit: int = 10) -> tuple[int, list[dict[str, Any]]]:
        """How many duplicate groups are recorded, and the first `limit` (by first record)."""
        count = int(self.db.execute("SELECT count(DISTINCT grp) FROM duplicates").fetchone()[0])
        rows = self.db.execute(
            "SELECT grp, min(entity), min(system), min(linked_by), group_concat(ref, ' ') FROM "
            "(SELECT * FROM duplicates WHERE grp IN (SELECT DISTINCT grp FROM duplicates "
            "ORDER BY grp LIMIT ?) ORDER BY ref) AS d GROUP BY grp ORDER BY grp",
            (limit,)).fetchall()
        return count, [{"entity": entity, "system": system, "records": sorted(refs.split(" ")),
                        "linked_by": json.loads(linked_by)}
                       for _, entity, system, linked_by, refs in rows]

    def add_plan_dates(self, rows: Iterable[tuple[str, str]]) -> None:
        """(ref, ISO day) pairs: on that day the record's plan may change by itself."""
        self.db.executemany("INSERT OR IGNORE INTO plan_dates (ref, on_date) VALUES (?, ?)", rows)

    def mark_due(self, today: str) -> None:
        """Mark dirty the records whose plan date has come, and forget those dates."""
        self.db.execute("UPDATE mirror SET dirty = 1 WHERE ref IN "
                        "(SELECT ref FROM plan_dates WHERE on_date <= ?)", (today,))
        self.db.execute("DELETE FROM plan_dates WHERE on_date <= ?", (today,))

    def clear_dirty(self) -> None:
        """After a run planned every dirty record and applied its plan."""
        self.db.execute("UPDATE mirror SET dirty = 0 WHERE dirty = 1")

    def rebuild_identity(self) -> None:
        """Index the identity keys of every mirrored record (state DBs from before the index);
        the store records that the index is complete."""
        self.db.execute("DELETE FROM identity")
        for ref, record in self.iter_raw():
            system, obj, _ = ref.split(":", 2)
            self.db.executemany("INSERT OR IGNORE INTO identity (key, ref) VALUES (?, ?)",
                                [(key, ref) for key in identity_keys(system, obj, record)])


    # ---- looking records up (`crmsync explain`, `crmsync history`) --------------------------

    def record_state(self, ref: str) -> RecordState | None:
        """The mirror's row of one record, deleted or not; None when no run has read it."""
        row = self.db.execute("SELECT seen_run, modified_at, deleted, deleted_at, merged_into "
                              "FROM mirror WHERE ref = ?", (ref,)).fetchone()
        if row is None:
            return None
        seen_run, modified_at, deleted, deleted_at, merged_into = row
        survivor = f"{ref.rsplit(':', 1)[0]}:{merged_into}" if merged_into else None
        return RecordState(ref, seen_run, parse(modified_at), bool(deleted), parse(deleted_at),
                           survivor)

    def refs_starting(self, prefix: str, limit: int = 10) -> list[str]:
        """Mirrored refs that start with `prefix`, case-sensitively (a Salesforce id's 15
        characters name the record its 18-character id does)."""
        rows = self.db.execute("SELECT ref FROM mirror WHERE ref >= ? AND ref < ? ORDER BY ref "
                               "LIMIT ?", (prefix, prefix + "\U0010ffff", limit)).fetchall()
        return [row[0] for row in rows]

    def refs_with_key(self, key: str) -> set[str]:
        """Live records indexed under one identity key (`email:...`, `domain:...`, a ref
        another record names): those an e-mail address or a domain ties together."""
        return values_in(self.db, "SELECT i.ref FROM identity AS i JOIN mirror AS m "
                                  "ON m.ref = i.ref WHERE i.key IN ({}) AND m.deleted = 0", [key])

    def records_containing(self, text: str, objects: Collection[tuple[str, str]]
                           ) -> list[tuple[str, dict[str, Any]]]:
        """Live records of `objects` ((system, object) pairs) whose mirrored copy holds `text`
        (ASCII case ignored), as (ref, record), for the caller to check field by field. The
        column holds bytes (orjson), which LIKE matches only as text.

        For values the identity index leaves out (a shared inbox such as info@ ties no one
        together, so it has no key): a scan of those objects, as an admin asks once, not as
        a run does."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found: list[tuple[str, dict[str, Any]]] = []
        for system, object_type in sorted(objects):
            cursor = self.db.execute(
                "SELECT ref, record FROM mirror WHERE system = ? AND object_type = ? AND "
                "deleted = 0 AND CAST(record AS TEXT) LIKE ? ESCAPE '\\'",
                (system, object_type, pattern))
            found += [(ref, orjson.loads(record)) for ref, record in cursor]
        return found

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM mirror").fetchone()[0])

    def live_count(self) -> int:
        """Mirrored records not deleted or merged away: what a run could write to."""
        return int(self.db.execute("SELECT COUNT(*) FROM mirror WHERE deleted = 0")
                   .fetchone()[0])

