"""The state store on PostgreSQL: one database, many tenants, the same repositories.

`PgConnection` gives the repositories the part of `sqlite3.Connection` they use (`execute`,
`executemany`, `in_transaction`), translating each statement (dialect.py), so the journal, the
mirror and the rest are the very classes that run on SQLite. What differs lives here:

- **tenants**: a session sets `crmsync.tenant` once; every table carries a `tenant` column
  filled from it, and row-level security limits every statement to that tenant's rows. A
  superuser (or a role with BYPASSRLS) would see through the policies, so such a session
  does its work as the role `crmsync_tenant`, which cannot;
- **migrations**: the same `schema.MIGRATIONS`. Their DDL runs once per database (under an
  advisory lock, so workers starting together do not race), their data statements once per
  tenant, when the tenant's store is first opened after them: a new tenant goes through
  every migration, as a new SQLite file does;
- **the run lock** is a session-level advisory lock per tenant (`AdvisoryRunLock`): a worker
  that dies, even by kill -9, loses its connection and with it the lock, at once. There is no
  heartbeat to wait out;
- **durability**: `synchronous_commit = off`, the match of SQLite's WAL with
  `synchronous=NORMAL`: a committed transaction can be lost if the database server itself
  crashes within a fraction of a second after it, but never half of one, and never one a
  later transaction depends on.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from itertools import count, islice
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.adapt import Dumper
from psycopg.pq import TransactionStatus

from connector.exceptions import ConfigurationError, RunLockHeld, StateStoreError
from connector.state._sql import iso, now, statements
from connector.state.dialect import (
    TENANT_COLUMN,
    TENANT_POLICY,
    TENANT_SETTING,
    bulk_form,
    is_schema_statement,
    migration_to_postgres,
    to_postgres,
)
from connector.state.location import StateLocation
from connector.state.schema import MIGRATIONS, SCHEMA_VERSION

TENANT_ROLE = "crmsync_tenant"
MIGRATION_LOCK = 0x63726D73796E63  # "crmsync": one key per database for schema changes
_cursor_names = count(1)
_MANY_CHUNK = 5_000  # rows per executemany pipeline


# ---- the connection ------------------------------------------------------------------------

class _BytesAsText(Dumper):
    """The mirror keeps records as UTF-8 JSON bytes (SQLite stores them as they are); on
    PostgreSQL they go to a text column as the text they are."""

    oid = psycopg.postgres.types["text"].oid

    def dump(self, obj: bytes) -> bytes:
        return bytes(obj)


class _BoolAsInteger(Dumper):
    """SQLite keeps True as 1; the repositories' flag columns are integers on both."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class PgConnection:
    """A psycopg connection (autocommit: transactions are the store's explicit BEGIN and
    COMMIT, as on SQLite) behind the interface of `sqlite3.Connection` the repositories use.
    Every psycopg error leaves as a StateStoreError saying what is wrong."""

    dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection, location: StateLocation) -> None:
        self.raw, self.location = raw, location
        self._column_types: dict[str, dict[str, str]] = {}

    def execute(self, statement: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        try:
            return self.raw.execute(to_postgres(statement), params)
        except psycopg.Error as exc:
            raise postgres_problem(self.location, exc) from None

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor:
        """`statement` once per row, a chunk of rows per pipeline. The rows are drawn between
        chunks, never during one: a generator of rows may itself query this connection
        (planning groups read the identity index as they are written), which SQLite allows
        and a connection busy with a pipeline would wait on forever."""
        cursor = self.raw.cursor()
        translated = to_postgres(statement)
        bulk = bulk_form(statement)
        iterator = iter(rows)
        try:
            while chunk := list(islice(iterator, _MANY_CHUNK)):
                if bulk is not None and len(chunk) > 1 and not bulk.repeats_a_key(chunk):
                    cursor.execute(bulk.statement(self._types(bulk.table)), _arrays(chunk))
                else:
                    cursor.executemany(translated, chunk)
        except psycopg.Error as exc:
            raise postgres_problem(self.location, exc) from None
        return cursor

    def insert_ids(self, statement: str, rows: list[Sequence[Any]]) -> list[int]:
        """Run an INSERT for each row and return the ids given to them, in order.

        One statement from arrays: it inserts the rows in their order (`ORDER BY` the
        arrays' ordinality), and a statement's identity values rise in the order it inserts,
        so the ids sorted are the rows' ids in order, whatever other tenants insert
        meanwhile."""
        if not rows:
            return []
        bulk = bulk_form(statement)
        cursor = self.raw.cursor()
        try:
            if bulk is not None and not bulk.repeats_a_key(rows):
                cursor.execute(bulk.statement(self._types(bulk.table)) + " RETURNING id",
                               _arrays(rows))
                return sorted(int(row[0]) for row in cursor.fetchall())
            cursor.executemany(to_postgres(statement) + " RETURNING id", rows, returning=True)
            ids = []
            while True:
                ids.append(int(cursor.fetchone()[0]))
                if not cursor.nextset():
                    return ids
        except psycopg.Error as exc:
            raise postgres_problem(self.location, exc) from None

    def _types(self, table: str) -> dict[str, str]:
        """{column: type} of a table, for the casts of `Bulk` arrays (cached per table name:
        a temporary table is made again with the same columns)."""
        name = re.sub(r"^temp\.", "pg_temp.", table, flags=re.I)
        if name not in self._column_types:
            rows = self.raw.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (name,)).fetchall()
            self._column_types[name] = dict(rows)
        return self._column_types[name]

    def stream(self, statement: str, params: Sequence[Any], size: int) -> Iterator[list[tuple]]:
        """The rows of a query `size` at a time: from a server-side cursor inside a
        transaction (memory stays bounded), else fetched whole."""
        if not self.in_transaction:
            rows = self.execute(statement, params).fetchall()
            for start in range(0, len(rows), size):
                yield rows[start:start + size]
            return
        try:
            with self.raw.cursor(name=f"crmsync_stream_{next(_cursor_names)}") as cursor:
                cursor.itersize = size
                cursor.execute(to_postgres(statement), params)
                while rows := cursor.fetchmany(size):
                    yield rows
        except psycopg.Error as exc:
            raise postgres_problem(self.location, exc) from None

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def _arrays(rows: list[Sequence[Any]]) -> list[list[Any]]:
    """Rows as one list per parameter (the arrays `Bulk` statements unnest)."""
    return [list(column) for column in zip(*rows, strict=True)]


def connect(location: StateLocation) -> PgConnection:
    """A connection to `location`'s tenant, with the schema up to date: created and migrated
    if need be, then confined to the tenant's rows."""
    try:
        raw = psycopg.connect(location.conninfo or "", autocommit=True, connect_timeout=10,
                              application_name=f"crmsync {location.tenant}")
    except psycopg.Error as exc:
        raise postgres_problem(location, exc) from None
    raw.adapters.register_dumper(bytes, _BytesAsText)
    raw.adapters.register_dumper(bool, _BoolAsInteger)
    db = PgConnection(raw, location)
    try:
        _session(raw, location)
        bypasses_policies = _prepare_database(raw, location)
        if bypasses_policies:
            raw.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(TENANT_ROLE)))
        raw.execute("SELECT set_config(%s, %s, false)", (TENANT_SETTING, location.tenant))
        _migrate_tenant(db)
    except psycopg.Error as exc:
        raw.close()
        raise postgres_problem(location, exc) from None
    except BaseException:
        raw.close()
        raise
    return db


def _session(raw: psycopg.Connection, location: StateLocation) -> None:
    """Session settings: the schema, SQLite's durability (see the module docstring), and TCP
    keepalives so the server notices a worker gone from the network within about a minute
    (and ends its session, releasing its run lock)."""
    raw.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(location.schema)))
    raw.execute("SET synchronous_commit TO off")
    # a run's tables grow from nothing to millions of rows within one session: a plan made
    # once for a prepared statement, while they were empty, must not outlive that
    raw.execute("SET plan_cache_mode TO force_custom_plan")
    # streamed reads (server-side cursors) are read to their end: plan them for the whole
    # result, not its first rows (a nested loop "fast" to start made planning quadratic)
    raw.execute("SET cursor_tuple_fraction TO 1.0")
    for name, value in (("tcp_keepalives_idle", 30), ("tcp_keepalives_interval", 10),
                        ("tcp_keepalives_count", 3)):
        raw.execute(sql.SQL("SET {} TO {}").format(sql.Identifier(name), sql.Literal(value)))


# ---- schema and migrations -----------------------------------------------------------------

def _prepare_database(raw: psycopg.Connection, location: StateLocation) -> bool:
    """Bring the schema to SCHEMA_VERSION (DDL, once per database); returns whether this
    session's role sees through row-level security (and so must work as TENANT_ROLE)."""
    bypasses = bool(raw.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles "
                                "WHERE rolname = current_user").fetchone()[0])
    if _schema_ready(raw, location.schema, bypasses):
        return bypasses
    with raw.transaction():
        raw.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        raw.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
            sql.Identifier(location.schema)))
        raw.execute("CREATE TABLE IF NOT EXISTS crmsync_schema "
                    "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
        raw.execute("INSERT INTO crmsync_schema (id, version) VALUES (1, 0) "
                    "ON CONFLICT DO NOTHING")
        version = int(raw.execute("SELECT version FROM crmsync_schema FOR UPDATE")
                      .fetchone()[0])
        _refuse_newer(version, location)
        for migration in MIGRATIONS[version:]:
            for statement in statements(migration):
                if is_schema_statement(statement):
                    for translated in migration_to_postgres(statement):
                        raw.execute(translated)
        raw.execute("UPDATE crmsync_schema SET version = %s", (SCHEMA_VERSION,))
        if raw.execute("SELECT to_regclass('crmsync_tenant_schema')").fetchone()[0] is None:
            raw.execute(f"CREATE TABLE crmsync_tenant_schema ({TENANT_COLUMN} PRIMARY KEY, "
                        "version INTEGER NOT NULL)")
            for statement in ("ENABLE", "FORCE"):
                raw.execute(f"ALTER TABLE crmsync_tenant_schema {statement} ROW LEVEL SECURITY")
            raw.execute(f"CREATE POLICY crmsync_tenant_schema_tenant ON crmsync_tenant_schema "
                        f"USING ({TENANT_POLICY}) WITH CHECK ({TENANT_POLICY})")
        if bypasses:
            _grant_tenant_role(raw, location.schema)
    return bypasses


def _schema_ready(raw: psycopg.Connection, schema: str, bypasses: bool) -> bool:
    """Whether the schema is at SCHEMA_VERSION (and the tenant role may use it): the common
    case, checked without taking the migration lock."""
    try:
        with raw.transaction():
            row = raw.execute("SELECT version FROM crmsync_schema").fetchone()
    except (errors.UndefinedTable, errors.InvalidSchemaName):
        return False
    if row is None or int(row[0]) != SCHEMA_VERSION:
        return False
    if not bypasses:
        return True
    granted = raw.execute(
        "SELECT to_regrole(%s) IS NOT NULL AND has_table_privilege(%s, "
        "format('%%I.crmsync_tenant_schema', %s::text), 'INSERT')",
        (TENANT_ROLE, TENANT_ROLE, schema)).fetchone()[0]
    return bool(granted)


def _refuse_newer(version: int, location: StateLocation) -> None:
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"state DB {location} has schema version {version}, newer than this crmsync "
            f"understands ({SCHEMA_VERSION}); upgrade crmsync or use another schema")


def _grant_tenant_role(raw: psycopg.Connection, schema: str) -> None:
    """The role tenant sessions of a superuser work as: it may read and write the tables
    (through their row-level policies) and nothing else."""
    raw.execute(f"DO $$ BEGIN CREATE ROLE {TENANT_ROLE} NOLOGIN; EXCEPTION WHEN "
                "duplicate_object OR unique_violation THEN NULL; END $$")
    name, role = sql.Identifier(schema), sql.Identifier(TENANT_ROLE)
    for statement in (
        "GRANT USAGE ON SCHEMA {} TO {}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}",
    ):
        raw.execute(sql.SQL(statement).format(name, role))
    raw.execute(sql.SQL("REVOKE INSERT, UPDATE, DELETE ON crmsync_schema FROM {}").format(role))


def _migrate_tenant(db: PgConnection) -> None:
    """Run the data statements of the migrations this tenant has not had, in one transaction."""
    raw = db.raw
    row = raw.execute("SELECT version FROM crmsync_tenant_schema").fetchone()
    if row is not None and int(row[0]) == SCHEMA_VERSION:
        return
    with raw.transaction():
        raw.execute("INSERT INTO crmsync_tenant_schema (version) VALUES (0) "
                    "ON CONFLICT DO NOTHING")
        version = int(raw.execute("SELECT version FROM crmsync_tenant_schema FOR UPDATE")
                      .fetchone()[0])
        _refuse_newer(version, db.location)
        for migration in MIGRATIONS[version:]:
            for statement in statements(migration):
                if not is_schema_statement(statement):
                    raw.execute(to_postgres(statement), ())
        raw.execute("UPDATE crmsync_tenant_schema SET version = %s", (SCHEMA_VERSION,))


def tenant_schema_version(db: PgConnection) -> int:
    row = db.raw.execute("SELECT version FROM crmsync_tenant_schema").fetchone()
    return int(row[0]) if row else 0


# ---- the run lock --------------------------------------------------------------------------

def lock_key(location: StateLocation) -> int:
    """The advisory lock key of a tenant: 63 bits of a hash of its schema and name (advisory
    locks are per database already)."""
    digest = hashlib.blake2b(f"{location.schema}/{location.tenant}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1


class AdvisoryRunLock:
    """One run at a time per tenant: a session-level advisory lock, held by the store's own
    connection. It ends with the session, so a killed worker's lock is gone the moment its
    connection is, and a run never waits out a stale heartbeat.

    The `lock` table still names the holder (owner, pid, host) for `crmsync status` and the
    "already running" message, and the run holding it, so the run that takes the lock next
    marks a killed run interrupted."""

    def __init__(self, db: PgConnection, location: StateLocation,
                 transaction: Callable[..., AbstractContextManager[Any]]) -> None:
        self.db, self.location, self._transaction = db, location, transaction
        self.key = lock_key(location)
        self.token: str | None = None

    def acquire(self, owner: str, stale_after: float = 0) -> None:
        """Take the tenant's lock, or raise RunLockHeld naming who holds it. `stale_after`
        is SQLite's: here a lock is never stale, it lives exactly as long as its session."""
        if not self.db.execute("SELECT pg_try_advisory_lock(?)", (self.key,)).fetchone()[0]:
            raise RunLockHeld(self._held_message())
        token = uuid.uuid4().hex
        try:
            with self._transaction() as db:
                db.execute("UPDATE runs SET status = 'interrupted', ended_at = ? WHERE id = "
                           "(SELECT run_id FROM lock) AND status = 'running'", (iso(now()),))
                db.execute("DELETE FROM lock")
                db.execute("INSERT INTO lock (id, owner, pid, host, acquired_at, heartbeat, "
                           "token) VALUES (1, ?, ?, ?, ?, ?, ?)",
                           (owner, os.getpid(), socket.gethostname(), iso(now()), time.time(),
                            token))
        except BaseException:
            self._unlock()
            raise
        self.token = token

    def _held_message(self) -> str:
        holder = self.holder()
        who = (f" ({holder['owner']}, pid {holder['pid']} on {holder['host']}, since "
               f"{holder['acquired_at']})" if holder else "")
        return (f"already running: another crmsync run{who} holds the lock of tenant "
                f"{self.location.tenant} in {self.location}; this run wrote nothing. The lock "
                "is released when that run ends or its connection does.")

    def heartbeat(self) -> None:
        """Nothing to refresh: the lock lives as long as the session."""

    def start_heartbeat(self, interval: float) -> None:
        """No heartbeat thread: the server ends a dead worker's session, and its lock."""

    def stop_heartbeat(self) -> None:
        """No heartbeat thread to stop."""

    def _held_by(self) -> int | None:
        """The server process id of the session holding this tenant's lock, if any."""
        row = self.db.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND classid = CAST(? AS bigint)::oid AND objid = CAST(? AS bigint)::oid AND "
            "database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (self.key >> 32, self.key & 0xFFFFFFFF)).fetchone()
        return int(row[0]) if row else None

    def still_ours(self) -> bool:
        """Whether this session still holds the lock (it always does while it lives; a lost
        connection fails this check with a StateStoreError)."""
        if self.token is None:
            return False
        return self._held_by() == self.db.raw.info.backend_pid

    def release(self) -> None:
        if self.token is None:
            return
        try:
            self.db.execute("DELETE FROM lock WHERE token = ?", (self.token,))
        finally:
            self.token = None
            self._unlock()

    def _unlock(self) -> None:
        if not self.db.raw.closed:
            self.db.execute("SELECT pg_advisory_unlock(?)", (self.key,))

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock, if a session does (a killed run's row is not a holder)."""
        if self._held_by() is None:
            return None
        row = self.db.execute("SELECT owner, pid, host, acquired_at FROM lock").fetchone()
        return dict(zip(("owner", "pid", "host", "acquired_at"), row, strict=True)) if row else None

    def attach_run(self, run_id: int) -> None:
        self.db.execute("UPDATE lock SET run_id = ? WHERE token = ?", (run_id, self.token))


# ---- errors --------------------------------------------------------------------------------

def postgres_problem(location: StateLocation, exc: psycopg.Error) -> StateStoreError:
    """A psycopg error as a StateStoreError that says what is wrong and what to do."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, errors.DiskFull):
        message = f"state DB {location}: the database server's disk is full ({text})"
    elif isinstance(exc, errors.ReadOnlySqlTransaction):
        message = (f"state DB {location} is read-only: {text}. crmsync writes it on every "
                   "run: connect to the primary, not a replica")
    elif isinstance(exc, errors.InsufficientPrivilege):
        message = (f"state DB {location}: permission denied ({text}). The user needs to "
                   "create tables in the schema, or a superuser must open it once first")
    elif isinstance(exc, psycopg.OperationalError) and not isinstance(exc, errors.QueryCanceled):
        message = (f"state DB {location} cannot be reached: {text}. Is PostgreSQL running, "
                   "and are CRMSYNC_STATE_URL's host, port, user and database right?")
    else:
        message = f"state DB {location}: {type(exc).__name__}: {text}"
    return StateStoreError(message)
