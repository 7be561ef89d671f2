"""What only the PostgreSQL store has: many tenants in one database, kept apart by the
database itself; the per-tenant advisory lock; migrations shared by tenants; the SQL
translation. (Everything both stores have is tested on both: the `state_location` fixture.)"""

from __future__ import annotations

import multiprocessing
import re
import time
from datetime import UTC, datetime

import psycopg
import pytest

from connector.exceptions import ConfigurationError, RunLockHeld, StateStoreError
from connector.model import Change, System
from connector.state import MIGRATIONS, SCHEMA_VERSION, StateStore
from connector.state.dialect import DialectError, migration_to_postgres, to_postgres
from connector.state.location import parse_location
from tests.helpers import hold_lock
from tests.state_backends import POSTGRES_URL, drop_schema, new_schema, postgres_location

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def location(postgres_schema, request):
    """A URL for this test's tenants: `location.format(tenant)`."""
    return postgres_location(postgres_schema, request.node.name[:30].lower().replace("_", "-")
                             + "-{}")


def contact(rid: str, email: str) -> dict:
    return {"id": rid, "properties": {"email": email, "lifecyclestage": "lead",
                                      "lastmodifieddate": "2026-03-01T00:00:00Z"}}


def fill(store: StateStore) -> int:
    """A run's worth of rows in every table a run writes."""
    store.lock.acquire("crmsync sync")
    run = store.journal.start_run("sync")
    store.checkpoint_page("hubspot", "contacts", [("1", contact("1", "a@acme.example"))], T0,
                          run, cap=T0)
    change = Change(System.HUBSPOT, "contacts", "1", "lifecyclestage", "lead", "mql", "r", "x")
    with store.transaction():
        store.journal.record_intents(run, 1, [change])
    store.ledger.reject("hubspot:contacts:1", "read", "bad value", run, "lifecyclestage")
    store.mirror.save_links([("hubspot:contacts:1", "salesforce:Contact:003A")], run)
    store.set_meta("planned_mapping", "sha")
    store.journal.finish_run(run, "ok", {}, {})
    store.lock.release()
    return run


# ---- tenants ---------------------------------------------------------------------------------

def test_a_tenant_reads_none_of_another_tenants_rows(location):
    with StateStore(location.format("a")) as a, StateStore(location.format("b")) as b:
        fill(a)
        assert a.mirror.count() == 1 and len(a.journal.runs()) == 1
        assert b.mirror.count() == 0
        assert b.mirror.raw() == {} and b.journal.runs() == [] and b.ledger.open() == []
        assert b.cursors.watermarks() == [] and b.mirror.link_texts() == []
        assert b.meta("planned_mapping") is None and b.journal.intents(not_run=0) == []
        # not even a query the repositories would never make sees them
        assert b.db.execute("SELECT count(*) FROM audit").fetchone()[0] == 0


def test_a_tenant_cannot_change_or_delete_another_tenants_rows(location):
    with StateStore(location.format("a")) as a, StateStore(location.format("b")) as b:
        fill(a)
        for statement in ("UPDATE mirror SET record = '{}'", "DELETE FROM mirror",
                          "DELETE FROM audit", "UPDATE runs SET status = 'failed'",
                          "DELETE FROM meta WHERE name = 'planned_mapping'",
                          "UPDATE watermarks SET value = NULL"):
            assert b.db.execute(statement).rowcount == 0, statement
        with pytest.raises(StateStoreError, match="row-level security"):
            b.db.execute("INSERT INTO meta (tenant, name, value) VALUES (?, 'x', 'y')",
                         (a.tenant,))
        assert a.mirror.count() == 1 and a.journal.runs()[0].status == "ok"
        assert a.meta("planned_mapping") == "sha" and len(a.journal.intents(not_run=0)) == 1


def test_a_superuser_connection_works_as_the_confined_tenant_role(location):
    with StateStore(location.format("a")) as store:
        role = store.db.execute("SELECT current_user").fetchone()[0]
        super_user = store.db.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles "
                                      "WHERE rolname = current_user").fetchone()[0]
    assert not super_user, role


def test_every_table_has_the_tenant_first_in_its_key_and_a_policy(postgres_schema, location):
    StateStore(location.format("a")).close()
    with psycopg.connect(POSTGRES_URL) as connection:
        tables = connection.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "(SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            " AND a.attnum = i.indkey[0] WHERE i.indrelid = c.oid AND i.indisprimary) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname != 'crmsync_schema'",
            (postgres_schema,)).fetchall()
    assert {name for name, *_ in tables} >= {"runs", "audit", "mirror", "identity", "lock"}
    for name, secured, forced, first_key in tables:
        assert (secured, forced, first_key) == (True, True, "tenant"), name


# ---- the run lock ----------------------------------------------------------------------------

def test_each_tenant_has_its_own_run_lock(location):
    with StateStore(location.format("a")) as a, StateStore(location.format("b")) as b, \
            StateStore(location.format("a")) as a_again:
        a.lock.acquire("crmsync sync")
        b.lock.acquire("crmsync sync")  # another tenant: not blocked
        with pytest.raises(RunLockHeld, match=r"already running: .* holds the lock of tenant"):
            a_again.lock.acquire("crmsync sync")
        assert a_again.lock.holder()["owner"] == "crmsync sync"
        assert a.lock.still_ours() and not a_again.lock.still_ours()
        a.lock.release()
        assert a_again.lock.holder() is None
        a_again.lock.acquire("crmsync backfill")
        assert a_again.lock.still_ours()


def test_a_killed_runs_lock_goes_with_its_connection_and_its_run_is_marked_interrupted(
        location):
    place = location.format("a")
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    with StateStore(place) as store:
        store.lock.acquire("crmsync sync")
        run = store.journal.start_run("sync")
        store.lock.release()
        store.db.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run,))
    holder = ctx.Process(target=hold_lock, args=(place, ready, release))
    holder.start()
    assert ready.wait(30)
    with StateStore(place) as store:
        store.db.execute("UPDATE lock SET run_id = ?", (run,))
        with pytest.raises(RunLockHeld):
            store.lock.acquire("crmsync sync")
        holder.kill()  # kill -9: no release, no clean-up
        holder.join(10)
        deadline = time.monotonic() + 10  # the server ends the session as the socket closes
        while store.lock.holder() is not None:
            assert time.monotonic() < deadline, "the killed process's lock stayed"
            time.sleep(0.05)
        store.lock.acquire("crmsync sync")
        assert store.journal.run(run).status == "interrupted"


# ---- migrations ------------------------------------------------------------------------------

def test_a_new_tenant_goes_through_every_migrations_data_statements():
    schema = new_schema()
    try:
        with StateStore(postgres_location(schema, "first")) as first:
            assert first.schema_version() == SCHEMA_VERSION
            assert first.meta("identity_complete") == "1"  # migration 2, for a new store
        with StateStore(postgres_location(schema, "second")) as second:
            assert second.meta("identity_complete") == "1"
    finally:
        drop_schema(schema)


def test_a_schema_one_migration_behind_gets_that_migration_once():
    schema = new_schema()
    try:
        StateStore(postgres_location(schema, "a")).close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"SET search_path TO {schema}")
            # undo the last migration, which creates a table
            table = re.search(r"CREATE TABLE (\w+)", MIGRATIONS[-1]).group(1)
            connection.execute(f"DROP TABLE {table}")
            connection.execute("UPDATE crmsync_schema SET version = %s", (SCHEMA_VERSION - 1,))
        with StateStore(postgres_location(schema, "a")), \
                psycopg.connect(POSTGRES_URL) as connection:
            version = connection.execute(f"SELECT version FROM {schema}.crmsync_schema"
                                         ).fetchone()[0]
            found = connection.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",)
                                       ).fetchone()[0]
        assert (version, found) == (SCHEMA_VERSION, f"{schema}.{table}")
    finally:
        drop_schema(schema)


def test_a_schema_newer_than_this_crmsync_is_refused():
    schema = new_schema()
    try:
        StateStore(postgres_location(schema, "a")).close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"UPDATE {schema}.crmsync_schema SET version = %s",
                               (SCHEMA_VERSION + 1,))
        with pytest.raises(ConfigurationError, match="newer than this crmsync understands"):
            StateStore(postgres_location(schema, "a"))
    finally:
        drop_schema(schema)


def _open_and_close(place: str) -> None:
    StateStore(place).close()


def test_workers_opening_a_new_schema_together_migrate_it_once():
    schema = new_schema()
    ctx = multiprocessing.get_context("spawn")
    try:
        workers = [ctx.Process(target=_open_and_close,
                               args=(postgres_location(schema, f"w{n}"),)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
        with StateStore(postgres_location(schema, "w0")) as store:
            assert store.schema_version() == SCHEMA_VERSION
    finally:
        drop_schema(schema)


# ---- errors, locations, translation ----------------------------------------------------------

def test_an_unreachable_server_is_named_with_what_to_check():
    with pytest.raises(StateStoreError, match=r"cannot be reached: .*Is PostgreSQL running"):
        StateStore("postgresql://crmsync:hunter2-secret@127.0.0.1:1/crmsync?connect_timeout=2")


def test_a_password_in_the_url_is_never_shown():
    location = parse_location("postgresql://app:s3cret-pw@db.example:5432/crm?schema=x",
                              "acme")
    assert "s3cret-pw" not in str(location) and ":***@" in str(location)
    assert (location.schema, location.tenant) == ("x", "acme")
    assert "schema" not in (location.conninfo or "")


@pytest.mark.parametrize(("text", "kind", "where"), [
    ("crmsync.db", "sqlite", "crmsync.db"),
    ("sqlite:///state/crmsync.db", "sqlite", "state/crmsync.db"),
    ("sqlite:////var/lib/crmsync.db", "sqlite", "/var/lib/crmsync.db"),
    ("postgresql://u@h/db", "postgresql", "postgresql://u@h/db"),
    ("postgres://u@h/db", "postgresql", "postgresql://u@h/db"),
    ("postgresql:/u@h/db", "postgresql", "postgresql://u@h/db"),  # what a Path makes of it
])
def test_state_locations(text, kind, where):
    location = parse_location(text)
    assert location.kind == kind
    assert str(location.path if kind == "sqlite" else location.conninfo) == where


@pytest.mark.parametrize(("text", "complaint"), [
    ("mysql://u@h/db", "SQLite .* or PostgreSQL"),
    ("sqlite:/x.db", "sqlite:///relative"),
    ("postgresql://u@h/db?schema=Bad-Name", "schema 'Bad-Name' is not allowed"),
    ("postgresql://u@h/db?tenant=Acme Corp", "tenant name 'Acme Corp' is not allowed"),
])
def test_bad_state_locations_say_what_to_write(text, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        parse_location(text)


def test_the_sql_translation():
    assert to_postgres("SELECT a FROM t WHERE b = ? AND c LIKE 'x%'") == \
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%'"
    assert to_postgres("INSERT OR IGNORE INTO links (a, b) VALUES (?, ?)") == \
        "INSERT INTO links (a, b) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    assert to_postgres("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO "
                       "UPDATE SET value = excluded.value").endswith(
        "ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value")
    assert "ON CONFLICT (id)" in to_postgres(  # a temporary table has no tenant
        "INSERT INTO temp.r (id, s) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET s = 1")
    assert to_postgres("SELECT '?' FROM m ORDER BY m.rowid") == "SELECT '?' FROM m ORDER BY m.ctid"
    assert to_postgres("CREATE TEMP TABLE s (id INTEGER PRIMARY KEY, n INTEGER, t TEXT)") == (
        'CREATE TEMP TABLE s (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, '
        'n BIGINT, t TEXT COLLATE "C")')
    for refused in ("INSERT OR REPLACE INTO t VALUES (1)", "SELECT last_insert_rowid()",
                    "PRAGMA user_version"):
        with pytest.raises(DialectError):
            to_postgres(refused)


def test_a_migration_table_gains_the_tenant_its_key_and_a_policy():
    statements = migration_to_postgres(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
        "at REAL, PRIMARY KEY (id))".replace(", PRIMARY KEY (id)", ""))
    assert statements[0] == (
        "CREATE TABLE jobs (tenant TEXT COLLATE \"C\" NOT NULL DEFAULT "
        "current_setting('crmsync.tenant'), id BIGINT GENERATED BY DEFAULT AS IDENTITY, "
        "name TEXT COLLATE \"C\" NOT NULL, at DOUBLE PRECISION, PRIMARY KEY (tenant, id))")
    assert any("FORCE ROW LEVEL SECURITY" in s for s in statements)
    assert any(s.startswith("CREATE POLICY jobs_tenant") for s in statements)
    assert migration_to_postgres("CREATE INDEX jobs_name ON jobs (name) WHERE at > 0") == [
        "CREATE INDEX jobs_name ON jobs (tenant, name) WHERE at > 0"]


def test_many_rows_go_as_one_statement_and_a_repeated_key_keeps_the_last_row(location):
    from connector.state.dialect import bulk_form  # noqa: PLC0415

    upsert = ("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
              "value = excluded.value")
    assert bulk_form(upsert) is not None and bulk_form(upsert).keys == [0]
    assert bulk_form("UPDATE t SET a = a + 1 WHERE b = ?") is None  # not a plain a = ?
    with StateStore(location.format("a")) as store:
        store.db.executemany(upsert, [("x", "1"), ("y", "2")])
        store.db.executemany(upsert, [("x", "3"), ("x", "4"), ("z", "5")])  # x twice
        assert [store.meta(n) for n in "xyz"] == ["4", "2", "5"]
        store.db.executemany("UPDATE meta SET value = ? WHERE name = ?",
                             [("6", "y"), ("7", "z")])
        assert [store.meta(n) for n in "xyz"] == ["4", "6", "7"]


def test_ids_of_inserted_rows_are_theirs_while_another_tenant_inserts(location):
    change = Change(System.HUBSPOT, "contacts", "1", "lifecyclestage", "lead", "mql", "r", "x")
    with StateStore(location.format("a")) as a, StateStore(location.format("b")) as b:
        for batch in range(5):
            with a.transaction(), b.transaction():
                ours = a.journal.record_intents(1, batch, [change] * 50)
                b.journal.record_intents(1, batch, [change] * 7)  # between our statements
                theirs = a.journal.record_intents(1, batch + 100, [change] * 3)
            assert len(set(ours)) == 50 and ours == sorted(ours)
            rows = {e.id: e.batch for e in a.journal.intents(1)}
            assert {rows[i] for i in ours} == {batch} and {rows[i] for i in theirs} == \
                {batch + 100}
