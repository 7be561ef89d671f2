"""Helpers every repository of the state store uses: times as stored text, bounded `IN (...)`
queries, and the few operations whose SQL differs between SQLite and PostgreSQL (ids of
inserted rows, streaming a large result), each chosen by the connection's `dialect`.
Private to the package."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.exceptions import scrub

IN_CHUNK = 500  # bound variables per `IN (...)` query on SQLite
_IN_LIST = re.compile(r"(?<!NOT )\bIN \(\{\}\)")


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def scrubbed(text: str | None) -> str | None:
    return None if text is None else scrub(text)


def marks(values: list[str]) -> str:
    return ",".join("?" * len(values))


def statements(script: str) -> list[str]:
    """A migration's statements (they hold no `;` inside a literal)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def is_postgres(db: Any) -> bool:
    return getattr(db, "dialect", "sqlite") == "postgresql"


def run_in(db: sqlite3.Connection, query: str, values: Collection[str]) -> list[tuple]:
    """`query` run for `values` (its `{}` becomes `?, ?, ...`), and the rows it gave: a
    bounded number at a time on SQLite, which limits the variables of one statement; on
    PostgreSQL all at once, as one array (`= ANY(?)`), one round trip."""
    listed = list(values)
    if not listed:
        return []
    if is_postgres(db) and query.count("{}") == 1 and _IN_LIST.search(query):
        return _all(db.execute(_IN_LIST.sub("= ANY(?)", query), (listed,)))
    rows: list[tuple] = []
    for start in range(0, len(listed), IN_CHUNK):
        chunk = listed[start:start + IN_CHUNK]
        rows += _all(db.execute(query.format(marks(chunk)), chunk))
    return rows


def _all(cursor: Any) -> list[tuple]:
    """The rows of a query; none of an UPDATE or DELETE (psycopg refuses to fetch those)."""
    return cursor.fetchall() if cursor.description is not None else []


def values_in(db: sqlite3.Connection, query: str, values: Collection[str]) -> set[str]:
    """The first column of `run_in`'s rows."""
    return {row[0] for row in run_in(db, query, values)}


def insert_ids(db: Any, statement: str, rows: list[Sequence[Any]]) -> list[int]:
    """Run an INSERT into a table with an `id` key once per row; the ids given, in order.

    SQLite has one writer at a time, so the ids of one `executemany` are consecutive;
    PostgreSQL has many (other tenants insert into the same table), so each row returns its
    own."""
    if is_postgres(db):
        return db.insert_ids(statement, rows)
    db.executemany(statement, rows)
    last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
    return list(range(last - len(rows) + 1, last + 1))


def stream(db: Any, statement: str, params: Sequence[Any] = (),
           size: int = 2_000) -> Iterator[list[tuple]]:
    """A large query's rows, `size` at a time, without holding them all in memory."""
    if is_postgres(db):
        yield from db.stream(statement, params, size)
        return
    cursor = db.execute(statement, params)
    try:
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


def analyze(db: Any, table: str) -> None:
    """Give the planner the statistics of a table just filled, before a join over it.

    PostgreSQL never analyses a temporary table by itself: without statistics it guessed
    the spool and the planning groups to be a few rows and chose nested loops over tens of
    thousands (a 10k-person backfill took 20 times as long as on SQLite). SQLite plans
    these joins well without statistics (tests/test_state.py checks its plan), so there
    nothing is done."""
    if is_postgres(db):
        db.execute(f"ANALYZE {table}")


def dict_rows(cursor: Any) -> list[dict[str, Any]]:
    """A cursor's rows as {column: value} (sqlite3.Row's behaviour, on either connection)."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
