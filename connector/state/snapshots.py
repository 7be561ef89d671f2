"""The report's numbers as the state DB keeps them: a tally of every person and organisation
record, and each run's totals (migration 8).

Recounting the whole mirror at the end of every run would cost as much as planning all of
it, which incremental runs exist to avoid. So the tally is kept like the duplicates table: a
run replaces the rows of the groups it plans (where it has the reconciled entities at hand),
and at its end restages the records it wrote (their own stage is what a write changes). The
totals are then a few GROUP BY queries, taken in the transaction that records the run's end.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from connector.state._sql import iso, now, parse, run_in

# SQL both SQLite and PostgreSQL run (connector/state/dialect.py carries it to PostgreSQL)
_INSERT_TALLY = (
    "INSERT INTO tally (ref, system, kind, entity, stage, counted, entity_stage, fit, "
    "priority, triggers, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "(SELECT digest FROM mirror WHERE ref = ?)) ON CONFLICT (ref) DO UPDATE SET "
    "system = excluded.system, kind = excluded.kind, entity = excluded.entity, "
    "stage = excluded.stage, counted = excluded.counted, entity_stage = excluded.entity_stage, "
    "fit = excluded.fit, priority = excluded.priority, triggers = excluded.triggers, "
    "digest = excluded.digest"
)
_INSERT_SNAPSHOT = (
    "INSERT INTO snapshots (run_id, taken_at, totals, same_as) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET taken_at = excluded.taken_at, "
    "totals = excluded.totals, same_as = excluded.same_as"
)


class TallyRow(NamedTuple):
    """One live person or organisation record as the report counts it.

    `stage`: the record's own canonical stage (None: it names none); `counted`: False for a
    converted Salesforce lead, history rather than a person. The rest is its entity's:
    `entity` the entity's first record, `entity_stage` the reconciled stage, `fit` the ICP fit
    (None: unknown), `priority`, and `triggers` the types of its active triggers, sorted and
    space-separated (organisations).
    """

    ref: str
    system: str
    kind: str  # "person" or "organization"
    entity: str
    stage: str | None
    counted: bool
    entity_stage: str | None
    fit: bool | None
    priority: str | None
    triggers: str


@dataclass(frozen=True)
class Snapshot:
    """A run's totals: `run_id` the run, `source_run` the run that counted them (an earlier
    one when this run changed none of them)."""

    run_id: int
    source_run: int
    taken_at: datetime
    totals: dict[str, Any]


class Snapshots:
    """The tally of records, and the totals each run ended with."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # ---- the tally ---------------------------------------------------------------------------

    def replace_tally(self, planned: Collection[str], rows: Iterable[TallyRow]) -> None:
        """The rows of the `planned` records (whole groups), in place of those kept for them
        before; a record that is no longer a person or organisation (rejected) keeps none."""
        run_in(self.db, "DELETE FROM tally WHERE ref IN ({})", planned)
        self.db.executemany(_INSERT_TALLY, [
            (row.ref, row.system, row.kind, row.entity, row.stage, int(row.counted),
             row.entity_stage, None if row.fit is None else int(row.fit), row.priority,
             row.triggers, row.ref) for row in rows])

    def forget(self, ref: str) -> None:
        """A record deleted or merged away: no longer counted (its group is planned again)."""
        self.db.execute("DELETE FROM tally WHERE ref = ?", (ref,))

    def written_since_tallied(self, run_id: int) -> list[tuple[str, dict[str, Any]]]:
        """(ref, mirrored record) of the person records `run_id` wrote whose mirrored copy
        changed since they were tallied: their own stage may have moved."""
        rows = self.db.execute(
            "SELECT t.ref, m.record FROM tally AS t JOIN mirror AS m ON m.ref = t.ref "
            "WHERE t.kind = 'person' AND m.deleted = 0 "
            "AND coalesce(m.digest, '') <> coalesce(t.digest, '') AND t.ref IN "
            "(SELECT system || ':' || object_type || ':' || record_id FROM audit "
            "WHERE run_id = ? AND status = 'applied')", (run_id,)).fetchall()
        return [(ref, orjson.loads(record)) for ref, record in rows]

    def restage(self, stages: Iterable[tuple[str, str | None]]) -> None:
        """(ref, stage) of records read again from the mirror: their stage, as of its copy."""
        self.db.executemany(
            "UPDATE tally SET stage = ?, digest = (SELECT digest FROM mirror WHERE ref = ?) "
            "WHERE ref = ?", [(stage, ref, ref) for ref, stage in stages])

    def stage_counts(self) -> list[tuple[str, str | None, int]]:
        """(system, own stage, records) of the person records counted."""
        return self.db.execute(
            "SELECT system, stage, count(*) FROM tally WHERE kind = 'person' AND counted = 1 "
            "GROUP BY system, stage ORDER BY system, stage").fetchall()

    def agreement_counts(self, first: str, second: str, order: Sequence[str | None]
                         ) -> list[tuple[str | None, str | None, int]]:
        """(stage in `first`, stage in `second`, people) over the people with a counted
        record in both systems; a person with two records in one system counts at the later
        of their stages in `order`."""
        ranks = " ".join(["WHEN ? THEN ?"] * len(order))
        rank = f"CASE coalesce(stage, '') {ranks} END"
        args: list[Any] = [value for pos, stage in enumerate(order)
                           for value in (stage or "", pos)]
        rows = self.db.execute(
            f"SELECT a, b, count(*) FROM (SELECT "
            f"max(CASE WHEN system = ? THEN {rank} END) AS a, "
            f"max(CASE WHEN system = ? THEN {rank} END) AS b "
            f"FROM tally WHERE kind = 'person' AND counted = 1 GROUP BY entity) AS pairs "
            f"WHERE a IS NOT NULL AND b IS NOT NULL GROUP BY a, b ORDER BY a, b",
            [first, *args, second, *args]).fetchall()
        return [(order[a], order[b], count) for a, b, count in rows]

    def entity_counts(self, kind: str
                      ) -> list[tuple[str | None, bool | None, str | None, str, int]]:
        """(reconciled stage, fit, priority, active trigger types, entities) of one kind."""
        rows = self.db.execute(
            "SELECT entity_stage, fit, priority, triggers, count(*) FROM tally "
            "WHERE kind = ? AND ref = entity GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            (kind,)).fetchall()
        return [(stage, None if fit is None else bool(fit), priority, triggers, count)
                for stage, fit, priority, triggers, count in rows]

    # ---- each run's totals -------------------------------------------------------------------

    def save(self, run_id: int, totals: dict[str, Any]) -> None:
        """`run_id`'s totals; when they equal the latest run's, a reference to those instead
        (runs every few minutes that change nothing cost a few bytes each)."""
        text = json.dumps(totals, sort_keys=True, separators=(",", ":"))
        latest = self.latest(before=run_id)
        if latest is not None and json.dumps(latest.totals, sort_keys=True,
                                             separators=(",", ":")) == text:
            self.db.execute(_INSERT_SNAPSHOT, (run_id, iso(now()), None, latest.source_run))
            return
        self.db.execute(_INSERT_SNAPSHOT, (run_id, iso(now()), text, None))

    def of_run(self, run_id: int) -> Snapshot | None:
        """The totals `run_id` ended with, or None if it took none (it ran before crmsync
        kept them, or it could not)."""
        row = self.db.execute("SELECT run_id, taken_at, totals, same_as FROM snapshots "
                              "WHERE run_id = ?", (run_id,)).fetchone()
        return self._snapshot(row) if row else None

    def latest(self, *, before: int | None = None) -> Snapshot | None:
        """The latest totals taken, or the latest taken by a run before `before`."""
        row = self.db.execute(
            "SELECT run_id, taken_at, totals, same_as FROM snapshots WHERE run_id < ? "
            "ORDER BY run_id DESC LIMIT 1",
            (before if before is not None else 2**63 - 1,)).fetchone()
        return self._snapshot(row) if row else None

    def of_runs(self, run_ids: Collection[int]) -> dict[int, Snapshot]:
        """The totals of each of `run_ids` that took some."""
        rows = run_in(self.db, "SELECT run_id, taken_at, totals, same_as FROM snapshots "
                               "WHERE run_id IN ({})", run_ids)
        return {snapshot.run_id: snapshot for snapshot in map(self._snapshot, rows)}

    def _snapshot(self, row: tuple) -> Snapshot:
        run_id, taken_at, totals, same_as = row
        source = run_id
        if same_as is not None:
            source = same_as
            found = self.db.execute("SELECT totals FROM snapshots WHERE run_id = ?",
                                    (same_as,)).fetchone()
            totals = found[0] if found else "{}"
        return Snapshot(int(run_id), int(source), parse(taken_at), json.loads(totals or "{}"))
