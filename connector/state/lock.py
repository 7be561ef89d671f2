"""The run lock: one run at a time per state DB, taken over when its holder is gone or silent."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from connector.exceptions import RunLockHeld
from connector.state._sql import iso, now

STALE_LOCK_SECONDS = 15 * 60


class RunLock:
    """The row in `lock` that says which run may write, with the heartbeat that keeps it fresh.

    `transaction` is the store's (a lock is taken in a transaction that treats a DB busy for
    its whole timeout as another run at work)."""

    def __init__(self, db: sqlite3.Connection, path: Path,
                 transaction: Callable[..., AbstractContextManager[sqlite3.Connection]]) -> None:
        self.db, self.path, self._transaction = db, path, transaction
        self.token: str | None = None
        self._heartbeat: LockHeartbeat | None = None

    def acquire(self, owner: str, stale_after: float = STALE_LOCK_SECONDS) -> None:
        """Take the run lock, or raise RunLockHeld naming who holds it.

        A lock whose holder process is gone (same host) or whose heartbeat is older than
        `stale_after` seconds is stale: a killed run must not block the schedule forever.
        """
        host, pid = socket.gethostname(), os.getpid()
        token = uuid.uuid4().hex
        with self._transaction(busy_means_a_run=True) as db:
            row = db.execute("SELECT owner, pid, host, acquired_at, heartbeat FROM lock").fetchone()
            if row is not None:
                held_owner, held_pid, held_host, acquired, heartbeat = row
                alive = held_host != host or _process_alive(held_pid)
                fresh = time.time() - heartbeat < stale_after
                if alive and fresh:
                    raise RunLockHeld(
                        f"another crmsync run ({held_owner}, pid {held_pid} on {held_host}, "
                        f"since {acquired}) holds the lock in {self.path}; this run wrote "
                        "nothing. It is released when that run ends, or considered stale after "
                        f"{int(stale_after)} s without a heartbeat."
                    )
                db.execute("UPDATE runs SET status = 'interrupted', ended_at = ? WHERE id = "
                           "(SELECT run_id FROM lock) AND status = 'running'", (iso(now()),))
                db.execute("DELETE FROM lock")
            db.execute(
                "INSERT INTO lock (id, owner, pid, host, acquired_at, heartbeat, token) "
                "VALUES (1, ?, ?, ?, ?, ?, ?)",
                (owner, pid, host, iso(now()), time.time(), token),
            )
        self.token = token

    def heartbeat(self) -> None:
        self.db.execute("UPDATE lock SET heartbeat = ? WHERE token = ?", (time.time(), self.token))

    def start_heartbeat(self, interval: float) -> None:
        """Keep the lock fresh every `interval` seconds from a thread of its own, whatever the
        run is doing: a long write phase must not look like a dead run to the next one."""
        self.stop_heartbeat()
        if self.token is not None:
            self._heartbeat = LockHeartbeat(self.path, self.token, interval)
            self._heartbeat.start()

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def still_ours(self) -> bool:
        """Whether the lock is still this store's: another run takes it over when it finds
        the heartbeat stale (a suspended VM, a stalled disk)."""
        if self._heartbeat is not None and self._heartbeat.lost.is_set():
            return False
        row = self.db.execute("SELECT token FROM lock").fetchone()
        return row is not None and row[0] == self.token

    def release(self) -> None:
        """Release the lock if it is still ours; one taken over stays with its new holder."""
        self.stop_heartbeat()
        if self.token is not None:
            self.db.execute("DELETE FROM lock WHERE token = ?", (self.token,))
            self.token = None

    def holder(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT owner, pid, host, acquired_at FROM lock").fetchone()
        return dict(zip(("owner", "pid", "host", "acquired_at"), row, strict=True)) if row else None

    def attach_run(self, run_id: int) -> None:
        """Remember the run holding the lock, so a run killed with it is marked interrupted
        by the run that takes the lock over."""
        self.db.execute("UPDATE lock SET run_id = ? WHERE token = ?", (run_id, self.token))


class LockHeartbeat:
    """Moves the lock's heartbeat from a thread with its own SQLite connection (a connection
    is not shared across threads), every `interval` seconds until stopped. `lost` is set when
    the lock is no longer ours: the run checks it before each write."""

    def __init__(self, path: Path, token: str, interval: float) -> None:
        self.path, self.token, self.interval = path, token, interval
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crmsync-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        except sqlite3.Error:
            return  # the run's own statements report an unusable DB
        try:
            while not self._stop.wait(self.interval):
                try:
                    moved = db.execute("UPDATE lock SET heartbeat = ? WHERE token = ?",
                                       (time.time(), self.token)).rowcount
                except sqlite3.Error:
                    continue  # busy or full for a moment: the next beat tries again
                if moved == 0:
                    self.lost.set()
                    return
        finally:
            db.close()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
