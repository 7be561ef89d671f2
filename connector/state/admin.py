"""What an admin decides about the runs, kept in the state DB: the mapping in force (the
pin) and a pause.

Both live in the state DB, not in a file or a setting, because they belong to the state the
runs share: every run against this DB sees them, whichever machine, directory or flags it
was started with. They are rows of the `meta` table (as JSON), so no migration is needed.
"""

from __future__ import annotations

import getpass
import json
import socket
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from connector.state._sql import iso, now

__all__ = ["Admin", "MappingPin", "Pause", "operator", "readable_time"]

PIN_KEY, PAUSE_KEY = "pinned_mapping", "paused"


def operator() -> str:
    """Who is acting, as user@host: a pause and a pin say who made them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's bare uid)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class MappingPin:
    """The mapping in force: what a run must use unless someone accepts a change.

    `sha256` is `mapping_fingerprint` (every rule that decides what a plan writes; the file's
    comments and layout do not count). `path` is for people: two paths to one content are
    the same mapping. `fields_read` is what the mapping reads per system and object, so a
    change can say which fields the mirror may not hold yet.
    """

    path: str
    sha256: str
    pinned_at: str = ""
    by: str = ""
    fields_read: dict[str, dict[str, list[str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Pause:
    since: str
    by: str
    reason: str

    def __str__(self) -> str:
        reason = f": {self.reason}" if self.reason else " (no reason given)"
        return f"paused since {readable_time(self.since)} by {self.by}{reason}"


class Admin:
    """The pin and the pause, read and written in the state DB's `meta` table."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # ---- the pinned mapping ------------------------------------------------------------------

    def pinned_mapping(self) -> MappingPin | None:
        data = self._get(PIN_KEY)
        if not isinstance(data, dict) or "sha256" not in data:
            return None
        return MappingPin(path=str(data.get("path", "")), sha256=str(data["sha256"]),
                          pinned_at=str(data.get("pinned_at", "")), by=str(data.get("by", "")),
                          fields_read=data.get("fields_read") or {})

    def pin_mapping(self, path: str, sha256: str,
                    fields_read: dict[str, dict[str, list[str]]] | None = None,
                    by: str | None = None) -> MappingPin:
        """Pin a mapping (a first write, an accepted change, an applied plan)."""
        pin = MappingPin(path, sha256, iso(now().replace(microsecond=0)) or "", by or operator(),
                         fields_read or {})
        self._set(PIN_KEY, asdict(pin))
        return pin

    # ---- pause -------------------------------------------------------------------------------

    def paused(self) -> Pause | None:
        data = self._get(PAUSE_KEY)
        if not isinstance(data, dict):
            return None
        return Pause(str(data.get("since", "")), str(data.get("by", "")),
                     str(data.get("reason", "")))

    def pause(self, reason: str = "", by: str | None = None) -> tuple[Pause, bool]:
        """Pause the runs; (the pause in force, whether this call made it). An existing
        pause is kept as it is: its time and author are what an admin needs to know."""
        current = self.paused()
        if current is not None:
            return current, False
        pause = Pause(iso(now().replace(microsecond=0)) or "", by or operator(), reason.strip())
        self._set(PAUSE_KEY, asdict(pause))
        return pause, True

    def resume(self) -> Pause | None:
        """Lift the pause; the pause lifted, or None if there was none."""
        current = self.paused()
        self.db.execute("DELETE FROM meta WHERE name = ?", (PAUSE_KEY,))
        return current

    # ---- meta rows as JSON -------------------------------------------------------------------

    def _get(self, name: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def _set(self, name: str, value: Any) -> None:
        self.db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
                        "DO UPDATE SET value = excluded.value", (name, json.dumps(value)))


def readable_time(stamp: str) -> str:
    """An ISO time in UTC as people read it: 2026-11-29 16:31:21 UTC."""
    return stamp.replace("T", " ").replace("+00:00", " UTC")
