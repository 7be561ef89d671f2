"""The change spool: one run's planned changes and their outcomes, on disk instead of in memory."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from connector.model import Change, System
from connector.state._sql import analyze, marks, stream


class ChangeSpool:
    """The changes of one run, kept in a temporary table instead of memory, with their outcomes.

    A first backfill plans about two changes per record: held as objects, a million records
    needed gigabytes. Here they cost disk; the engine reads them back a batch at a time, in
    the order it sends them, and the report lists the first rows in plan order.
    """

    _COLUMNS = "system, object_type, record_id, field, step, before, after, rule, reason"
    _TYPED = ("system TEXT, object_type TEXT, record_id TEXT, field TEXT, step INTEGER, "
              "before TEXT, after TEXT, rule TEXT, reason TEXT")
    _C_COLUMNS = ", ".join(f"c.{column}" for column in _COLUMNS.split(", "))
    _PLAN_ORDER = "c.system, c.object_type, c.record_id, c.field, c.step"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute("DROP TABLE IF EXISTS temp.spool_change")
        db.execute("DROP TABLE IF EXISTS temp.spool_result")
        db.execute(f"CREATE TEMP TABLE spool_change (id INTEGER PRIMARY KEY, {self._TYPED})")
        db.execute("CREATE TEMP TABLE spool_result "
                   "(id INTEGER PRIMARY KEY, status TEXT NOT NULL, code TEXT, message TEXT)")
        self.count = 0

    def add(self, changes: Iterable[Change]) -> None:
        rows = [(c.system.value, c.object_type, c.record_id, c.field, c.step,
                 _spooled_value(c.before), _spooled_value(c.after), c.rule, c.reason)
                for c in changes]
        self.db.executemany(f"INSERT INTO temp.spool_change ({self._COLUMNS}) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.count += len(rows)

    def add_late(self, changes: list[Change]) -> list[tuple[int, Change]]:
        """Add changes while batches are being sent (a record planned again), as (spool id,
        change) to send now: `record_batches` under way does not yield them again."""
        if not changes:
            return []
        first = int(self.db.execute("SELECT coalesce(max(id), 0) FROM temp.spool_change")
                    .fetchone()[0]) + 1
        self.add(changes)
        return list(zip(range(first, first + len(changes)), changes, strict=True))

    def objects(self) -> list[tuple[str, str]]:
        return self.db.execute("SELECT DISTINCT system, object_type FROM temp.spool_change "
                               "ORDER BY system, object_type").fetchall()

    def field_counts(self) -> list[tuple[str, str, str, int, int]]:
        """(system, object, field, changes, records) of every field the spool changes: what
        a guard's refusal summarises."""
        return self.db.execute(
            "SELECT system, object_type, field, count(*), count(DISTINCT record_id) "
            "FROM temp.spool_change GROUP BY system, object_type, field "
            "ORDER BY system, object_type, field").fetchall()

    def record_count(self, system: str, object_type: str) -> int:
        """How many records of one object the spool changes (a record with several changes
        counts once): what a write costs. All objects' records: `records(sent_only=False)`."""
        return int(self.db.execute(
            "SELECT count(DISTINCT record_id) FROM temp.spool_change WHERE system = ? AND "
            "object_type = ?", (system, object_type)).fetchone()[0])

    def changes_to(self, fields: Collection[tuple[str, str, str]]) -> Iterator[Change]:
        """Every change to one of `fields`, (system, object, field), in plan order: a guard
        looks at the lifecycle stage changes of a plan of millions without decoding all."""
        for system, object_type, name in sorted(fields):
            cursor = self.db.execute(
                f"SELECT c.id, {self._C_COLUMNS} FROM temp.spool_change AS c WHERE "
                f"c.system = ? AND c.object_type = ? AND c.field = ? ORDER BY {self._PLAN_ORDER}",
                (system, object_type, name))
            while rows := cursor.fetchmany(2_000):
                for row in rows:
                    yield _spooled_change(row)[1]

    def keep_only(self, objects: Collection[tuple[str, str]]) -> dict[str, int]:
        """Drop the changes to every object but `objects`, (system, object); the changes
        dropped, counted by "system.object"."""
        dropped: dict[str, int] = {}
        for system, object_type, count in self.db.execute(
                "SELECT system, object_type, count(*) FROM temp.spool_change "
                "GROUP BY system, object_type ORDER BY system, object_type").fetchall():
            if (system, object_type) not in objects:
                dropped[f"{system}.{object_type}"] = count
                self.db.execute("DELETE FROM temp.spool_change WHERE system = ? AND "
                                "object_type = ?", (system, object_type))
        self.count -= sum(dropped.values())
        return dropped

    def changes(self) -> Iterator[Change]:
        """Every change, in plan order."""
        for rows in stream(self.db, f"SELECT c.id, {self._C_COLUMNS} FROM temp.spool_change "
                                    f"AS c ORDER BY {self._PLAN_ORDER}"):
            for row in rows:
                yield _spooled_change(row)[1]

    def record_batches(self, system: str, object_type: str, size: int,
                       confirm: Collection[str] = ()) -> Iterator[list[tuple[int, Change]]]:
        """(spool id, change) lists of up to `size` whole records of one object.

        Records that need a second step (HubSpot lifecycle: clear, then set) go first, then
        those whose writes are read back to confirm them, each in plan order: the adapter sends
        a batch's later step and its read-back as requests of their own, so packing such
        records together saves a request per batch that would otherwise hold a few of them.
        """
        confirm = sorted(confirm)
        last = self.db.execute("SELECT coalesce(max(id), 0) FROM temp.spool_change").fetchone()[0]
        # The order goes to a temporary table first, then is read a page at a time by short
        # statements: a cursor left open across the batches would hold a read snapshot from
        # before the lock heartbeat's next commit, and the engine's next write transaction
        # could not start ("database is locked").
        analyze(self.db, "temp.spool_change")
        self.db.execute("DROP TABLE IF EXISTS temp.spool_order")
        self.db.execute("CREATE TEMP TABLE spool_order (pos INTEGER PRIMARY KEY, id INTEGER)")
        self.db.execute("INSERT INTO temp.spool_order (id) "
                        + self.batches_query(len(confirm), ids_only=True),
                        (*confirm, system, object_type, system, object_type, last))
        batch: list[tuple[int, Change]] = []
        records = 0
        for rows in self._ordered_pages():
            for row in rows:
                spooled = _spooled_change(row)
                if not batch or batch[-1][1].record_id != spooled[1].record_id:
                    if records == size:
                        yield batch
                        batch, records = [], 0
                    records += 1
                batch.append(spooled)
        if batch:
            yield batch

    def _ordered_pages(self, size: int = 2_000) -> Iterator[list[tuple]]:
        """The rows `spool_order` lists, in its order, a page per complete statement."""
        after = 0
        while rows := self.db.execute(
            f"SELECT o.pos, c.id, {self._C_COLUMNS} FROM temp.spool_order AS o "
            "JOIN temp.spool_change AS c ON c.id = o.id WHERE o.pos > ? ORDER BY o.pos "
            "LIMIT ?", (after, size)).fetchall():
            after = rows[-1][0]
            yield [row[1:] for row in rows]

    @classmethod
    def batches_query(cls, confirmed_fields: int, *, ids_only: bool = False) -> str:
        """The query behind `record_batches`, for `confirmed_fields` confirm parameters.

        `+c.id`: the unary plus keeps SQLite from driving the join by the rowid range (it
        would then scan every record's `kind` once per change: quadratic, and a 100k-person
        backfill stalled for over a quarter of an hour); the plan must scan the spool once and
        look `kind` up through an automatic index (tests/test_state.py checks the plan)."""
        confirmed = (f"field IN ({marks(['?'] * confirmed_fields)})" if confirmed_fields
                     else "1 = 0")
        return (
            f"WITH kind AS (SELECT record_id, CASE WHEN max(step) > 0 THEN 0 "
            f"WHEN max(CASE WHEN {confirmed} THEN 1 ELSE 0 END) = 1 THEN 1 ELSE 2 END AS k "
            f"FROM temp.spool_change "
            f"WHERE system = ? AND object_type = ? GROUP BY record_id) "
            f"SELECT c.id{'' if ids_only else ', ' + cls._C_COLUMNS} "
            f"FROM temp.spool_change AS c JOIN kind USING (record_id) "
            f"WHERE c.system = ? AND c.object_type = ? AND +c.id <= ? "
            f"ORDER BY kind.k, c.record_id, c.field, c.step"
        )

    def record_results(self, results: Iterable[tuple[int, str, str | None, str | None]]) -> None:
        """(spool id, status, code, message) of changes sent or skipped."""
        self.db.executemany("INSERT INTO temp.spool_result (id, status, code, message) "
                            "VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                            "status = excluded.status, code = excluded.code, "
                            "message = excluded.message", results)

    def sent(self) -> int:
        """How many changes have an outcome."""
        return int(self.db.execute("SELECT count(*) FROM temp.spool_result").fetchone()[0])

    def report_rows(self, limit: int, *, sent_only: bool = True) -> list[dict[str, Any]]:
        """The first `limit` changes in plan order, as report rows with their outcome: those
        sent (or skipped by a dry run), or with `sent_only=False` every one, unsent ones as
        "planned"."""
        join = "JOIN" if sent_only else "LEFT JOIN"
        rows = self.db.execute(
            f"SELECT c.id, {self._C_COLUMNS}, "
            f"r.status, r.code, r.message FROM temp.spool_change AS c "
            f"{join} temp.spool_result AS r USING (id) "
            f"ORDER BY {self._PLAN_ORDER} LIMIT ?",
            (limit,)).fetchall()
        out = []
        for row in rows:
            _, change = _spooled_change(row[:10])
            status, code, message = row[10:]
            entry = {"system": change.system.value, "object_type": change.object_type,
                     "record_id": change.record_id, "field": change.field,
                     "before": change.before, "after": change.after, "rule": change.rule,
                     "reason": change.reason, "step": change.step,
                     "status": status or "planned"}
            if status and status != "applied":
                entry["code"], entry["message"] = code, message
            out.append(entry)
        return out


    def transitions(self, *, sent_only: bool = True) -> list[tuple[Any, ...]]:
        """Every change counted by field and value change, for a run's summary: rows of
        (system, object, field, before, after, status, changes, steps). A record changes a
        field once, so the changes are also the records; `steps` is 2 for a clear-then-set.

        A clear-then-set (HubSpot's forward-only lifecycle stage) counts once, as the move
        from its first step's before to its last step's after, with the last step's status.
        Only the few fields that have such pairs pay for pairing them up (a window over that
        field's rows); the rest is one GROUP BY. `sent_only` as in `report_rows`.
        """
        status = "r.status" if sent_only else "coalesce(r.status, 'planned')"
        sent = "AND r.status IS NOT NULL" if sent_only else ""
        two_step = self.db.execute("SELECT DISTINCT system, object_type, field FROM "
                                   "temp.spool_change WHERE step > 0").fetchall()
        apart = "".join(" AND NOT (c.system = ? AND c.object_type = ? AND c.field = ?)"
                        for _ in two_step)
        rows = self.db.execute(
            f"SELECT c.system, c.object_type, c.field, c.before, c.after, {status}, count(*), "
            f"1 FROM temp.spool_change AS c LEFT JOIN "
            f"temp.spool_result AS r USING (id) WHERE 1 = 1 {sent}{apart} "
            f"GROUP BY 1, 2, 3, 4, 5, 6",
            [value for key in two_step for value in key]).fetchall()
        for key in two_step:
            rows += self.db.execute(
                f"SELECT system, object_type, field, first_before, after, status, count(*), "
                f"last_step + 1 FROM (SELECT c.system, c.object_type, c.field, "
                f"c.record_id, c.step, c.after, {status} AS status, "
                f"first_value(c.before) OVER steps AS first_before, "
                f"max(c.step) OVER steps AS last_step FROM temp.spool_change AS c LEFT JOIN "
                f"temp.spool_result AS r USING (id) WHERE c.system = ? AND c.object_type = ? "
                f"AND c.field = ? WINDOW steps AS (PARTITION BY c.record_id ORDER BY c.step "
                f"ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) AS moves "
                f"WHERE step = last_step AND status IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6, 8",
                key).fetchall()
        return [(*row[:3], _unspooled(row[3]), _unspooled(row[4]), *row[5:]) for row in rows]

    def records(self, *, sent_only: bool = True) -> int:
        """How many records the changes touch (those sent, with `sent_only`)."""
        join = "JOIN temp.spool_result AS r USING (id)" if sent_only else ""
        return int(self.db.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT c.system, c.object_type, c.record_id "
            f"FROM temp.spool_change AS c {join}) AS touched").fetchone()[0])


def _spooled_value(value: Any) -> str:
    """A value as JSON text, which keeps its type exactly (a bool stays a bool, a number a
    number) in a column of one type, as both SQLite and PostgreSQL need."""
    return json.dumps(value, default=str)


def _unspooled(value: str) -> Any:
    return json.loads(value)


def _spooled_change(row: tuple) -> tuple[int, Change]:
    spool_id, system, obj, record_id, field, step, before, after, rule, reason = row
    return spool_id, Change(system=System(system), object_type=obj, record_id=record_id,
                            field=field, before=_unspooled(before), after=_unspooled(after),
                            rule=rule, reason=reason, step=step)

