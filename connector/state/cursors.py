"""Cursors: how far each object has been read, for sync (watermarks) and backfill."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from connector.state._sql import iso, now, parse


class Cursors:
    """One row per (system, object, kind): `kind` "sync" and "deleted" keep a modified-time
    watermark, "backfill" a cursor ("done" once the object is backfilled)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def watermark(self, system: str, object_type: str, kind: str = "sync") -> datetime | None:
        row = self.db.execute(
            "SELECT value FROM watermarks WHERE system = ? AND object_type = ? AND kind = ?",
            (system, object_type, kind),
        ).fetchone()
        return parse(row[0]) if row else None

    def cursor(self, system: str, object_type: str, kind: str) -> str | None:
        row = self.db.execute(
            "SELECT cursor FROM watermarks WHERE system = ? AND object_type = ? AND kind = ?",
            (system, object_type, kind),
        ).fetchone()
        return row[0] if row else None

    def set_watermark(
        self,
        system: str,
        object_type: str,
        value: datetime | None,
        kind: str = "sync",
        cursor: str | None = None,
    ) -> None:
        self.db.execute(
            "INSERT INTO watermarks (system, object_type, kind, value, cursor, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (system, object_type, kind) DO UPDATE SET "
            "value = excluded.value, cursor = excluded.cursor, updated_at = excluded.updated_at",
            (system, object_type, kind, iso(value), cursor, iso(now())),
        )

    def clear_watermark(self, system: str, object_type: str, kind: str) -> None:
        self.db.execute(
            "DELETE FROM watermarks WHERE system = ? AND object_type = ? AND kind = ?",
            (system, object_type, kind),
        )

    def watermarks(self) -> list[tuple[str, str, str, datetime | None, str | None]]:
        rows = self.db.execute(
            "SELECT system, object_type, kind, value, cursor FROM watermarks ORDER BY 1, 2, 3"
        ).fetchall()
        return [(r[0], r[1], r[2], parse(r[3]), r[4]) for r in rows]
