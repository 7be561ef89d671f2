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

