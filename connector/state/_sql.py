"""Helpers every repository of the state store uses: times as stored text, bounded `IN (...)`
queries. Private to the package."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import UTC, datetime

from connector.exceptions import scrub

IN_CHUNK = 500  # bound variables per `IN (...)` query


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


def run_in(db: sqlite3.Connection, query: str, values: Collection[str]) -> list[tuple]:
    """`query` run for `values` a bounded number at a time (its `{}` becomes `?, ?, ...`),
    and the rows it gave: SQLite limits the variables of one statement."""
    listed, rows = list(values), []
    for start in range(0, len(listed), IN_CHUNK):
        chunk = listed[start:start + IN_CHUNK]
        rows += db.execute(query.format(marks(chunk)), chunk).fetchall()
    return rows


def values_in(db: sqlite3.Connection, query: str, values: Collection[str]) -> set[str]:
    """The first column of `run_in`'s rows."""
    return {row[0] for row in run_in(db, query, values)}
