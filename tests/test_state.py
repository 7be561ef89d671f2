from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from datetime import UTC, datetime

import pytest

from connector.exceptions import ConfigurationError, RunLockHeld
from connector.model import SourceRef, System
from connector.state import SCHEMA_VERSION, StateStore, parse_ref
from tests.helpers import hold_lock


def ref(system: str, obj: str, rid: str) -> SourceRef:
    return SourceRef(system=System(system), object_type=obj, record_id=rid)


@pytest.fixture
def store(state_location):
    """The store on each backend (tests/state_backends.py)."""
    with StateStore(state_location) as s:
        yield s


@pytest.fixture
def sqlite_store(tmp_path):
    """For what only SQLite has: a lock row with a heartbeat, PRAGMAs, query plans."""
    with StateStore(tmp_path / "state.db") as s:
        yield s


def test_new_db_is_migrated_to_the_current_version(store):
    assert store.schema_version() == SCHEMA_VERSION


def test_a_new_sqlite_db_is_in_wal_mode(sqlite_store):
    assert sqlite_store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigurationError, match="newer than this crmsync understands"):
        StateStore(path)


def test_reopening_keeps_data_and_does_not_migrate_again(state_location):
    path = state_location
    with StateStore(path) as first:
        first.cursors.set_watermark("hubspot", "contacts", datetime(2026, 1, 1, tzinfo=UTC))
    with StateStore(path) as second:
        assert second.cursors.watermark("hubspot", "contacts") == datetime(2026, 1, 1, tzinfo=UTC)


def test_runs_watermarks_links_and_mirror(store):
    run = store.journal.start_run("sync")
    store.journal.finish_run(run, "ok", {"applied": 3}, {"hubspot": {"calls": 4}})
    [record] = store.journal.runs()
    assert (record.id, record.status, record.counts["applied"]) == (run, "ok", 3)
    a, b = ref("hubspot", "contacts", "1"), ref("salesforce", "Contact", "003")
    store.mirror.save_links([(a, b), (a, b)], run)
    assert store.mirror.links() == [(a, b)]
    store.mirror.save_records([(a, {"id": "1", "properties": {"email": "x@y.z"}}, None)], run)
    store.mirror.save_records([(a, {"id": "1", "properties": {"email": "new@y.z"}}, None)], run)
    assert store.mirror.raw([a]) == {str(a): {"id": "1", "properties": {"email": "new@y.z"}}}
    assert store.mirror.count() == 1
    assert parse_ref(str(b)) == b


def test_audit_and_reject_ledger(store):
    run = store.journal.start_run("sync")
    a = ref("salesforce", "Lead", "00Q1")
    store.journal.audit(run, a, "Status", "Open - Not Contacted", "Working - Contacted", "rule x")
    [entry] = store.journal.entries(run)
    assert (entry.ref, entry.before, entry.after) == (a, "Open - Not Contacted",
                                                      "Working - Contacted")
    store.ledger.reject(str(a), "read", "unknown Status", run, "Status")
    store.ledger.reject(str(a), "read", "unknown Status again", run + 1, "Status")
    [reject] = store.ledger.open()
    assert (reject.attempts, reject.reason, reject.last_run) == (2, "unknown Status again", run + 1)
    assert store.ledger.open(run_id=run) == []
    store.ledger.resolve([str(a)], "read")
    assert store.ledger.open() == []


def test_transaction_rolls_back_on_error(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.cursors.set_watermark("hubspot", "contacts", datetime(2026, 1, 1, tzinfo=UTC))
        raise RuntimeError("crash")
    assert store.cursors.watermark("hubspot", "contacts") is None


def test_second_run_is_refused_while_the_lock_is_held(state_location):
    path = state_location
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=hold_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        with StateStore(path) as store, pytest.raises(RunLockHeld, match="holds the lock"):
            store.lock.acquire("crmsync sync")
    finally:
        release.set()
        holder.join(10)
    with StateStore(path) as store:
        store.lock.acquire("crmsync sync")  # released: free again
        assert store.lock.holder()["pid"] == os.getpid()


def test_the_lock_of_a_killed_process_does_not_block_the_next_run(state_location,
                                                                 store_backend):
    path = state_location
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=hold_lock, args=(path, ready, release))
    holder.start()
    assert ready.wait(20)
    holder.kill()  # like kill -9
    holder.join(10)
    with StateStore(path) as store:
        if store_backend == "sqlite":  # the lock row stays behind, found stale
            assert store.lock.holder() is not None
        else:  # the advisory lock ends with the killed process's session
            deadline = time.monotonic() + 10
            while store.lock.holder() is not None and time.monotonic() < deadline:
                time.sleep(0.05)
        store.lock.acquire("crmsync sync")
        assert store.lock.holder()["pid"] == os.getpid()


def test_lock_with_an_old_heartbeat_is_stale(sqlite_store):
    store = sqlite_store
    store.lock.acquire("other")
    store.db.execute("UPDATE lock SET pid = 1, heartbeat = ?", (time.time() - 3600,))
    store.lock.acquire("crmsync sync", stale_after=60)
    assert store.lock.holder()["owner"] == "crmsync sync"


def test_a_run_whose_lock_went_stale_is_marked_interrupted(sqlite_store):
    store = sqlite_store
    store.lock.acquire("crmsync backfill")
    run = store.journal.start_run("backfill")
    store.db.execute("UPDATE lock SET pid = 1, heartbeat = 0")  # as if killed long ago
    store.lock.acquire("crmsync backfill", stale_after=60)
    assert store.journal.run(run).status == "interrupted"


def test_mirroring_reports_only_records_changed_in_more_than_their_modified_time(store):
    run = store.journal.start_run("sync")
    contact = {"id": "1", "updatedAt": "2026-01-01T00:00:00Z",
               "properties": {"email": "a@x.io", "lastmodifieddate": "2026-01-01T00:00:00Z"}}
    assert store.mirror.save_page("hubspot", "contacts", [("1", contact)], None, run) == 1
    store.mirror.clear_dirty()
    touched = {**contact, "updatedAt": "2026-02-02T00:00:00Z",
               "properties": {**contact["properties"], "lastmodifieddate": "2026-02-02"}}
    assert store.mirror.save_page("hubspot", "contacts", [("1", touched)], None, run) == 0
    assert store.mirror.dirty_refs() == []
    edited = {**touched, "properties": {**touched["properties"], "email": "b@x.io"}}
    assert store.mirror.save_page("hubspot", "contacts", [("1", edited)], None, run) == 1
    assert store.mirror.dirty_refs() == ["hubspot:contacts:1"]
    lead = {"Id": "00Q1", "Email": "c@x.io", "SystemModstamp": "2026-01-01T00:00:00.000+0000"}
    store.mirror.save_page("salesforce", "Lead", [("00Q1", lead)], None, run)
    store.mirror.clear_dirty()
    moved = {**lead, "SystemModstamp": "2026-03-03T00:00:00.000+0000"}
    assert store.mirror.save_page("salesforce", "Lead", [("00Q1", moved)], None, run) == 0


def test_writes_mirrored_from_a_runs_own_plan_do_not_mark_the_record_dirty(store):
    run = store.journal.start_run("sync")
    a = ref("hubspot", "contacts", "1")
    store.mirror.save_records([(a, {"id": "1", "properties": {"lifecyclestage": "lead"}}, None)],
                              run)
    store.mirror.clear_dirty()
    written = {"id": "1", "properties": {"lifecyclestage": "customer"}}
    store.mirror.save_records([(a, written, None)], run, mark_dirty=False)
    assert (store.mirror.dirty_refs(), store.mirror.raw([a])[str(a)]) == ([], written)
    store.mirror.save_records([(a, {"id": "1", "properties": {}}, None)], run)
    assert store.mirror.dirty_refs() == [str(a)]


def test_group_closure_follows_keys_and_links_over_several_hops(store):
    run = store.journal.start_run("sync")
    records = [
        ("hubspot", "contacts", "1", {"id": "1", "properties": {"email": "a@acme.io",
                                                                "associatedcompanyid": "5"}}),
        ("hubspot", "companies", "5", {"id": "5", "properties": {"domain": "acme.io"}}),
        ("salesforce", "Account", "001A", {"Id": "001A", "Website": "https://acme.io"}),
        ("salesforce", "Contact", "003A", {"Id": "003A", "Email": "z@acme.io",
                                           "AccountId": "001A"}),
        ("salesforce", "Contact", "003B", {"Id": "003B", "Email": "y@other.io"}),
        ("salesforce", "Contact", "003C", {"Id": "003C", "Email": "x@third.io"}),
    ]
    for system, obj, rid, raw in records:
        store.mirror.save_page(system, obj, [(rid, raw)], None, run)
    store.mirror.save_links([("salesforce:Contact:003B", "salesforce:Contact:003A")], run)
    # contact -> company (its id) -> account (domain) -> contact 003A (account id) -> 003B (link)
    assert store.mirror.group_closure(["hubspot:contacts:1"]) == {
        "hubspot:contacts:1", "hubspot:companies:5", "salesforce:Account:001A",
        "salesforce:Contact:003A", "salesforce:Contact:003B"}
    assert store.mirror.group_closure(["salesforce:Contact:003C"]) == {"salesforce:Contact:003C"}
    assert store.mirror.group_closure(["salesforce:Contact:gone"]) == set()


def test_the_change_spool_batches_whole_records_two_step_then_confirmed_first(store):
    from connector.model import Change  # noqa: PLC0415

    def change(rid: str, field: str, step: int = 0) -> Change:
        return Change(system=System.HUBSPOT, object_type="contacts", record_id=rid, field=field,
                      before=None, after=f"{rid}-{field}-{step}", rule="r", reason="why",
                      step=step)

    spool = store.new_spool()
    spool.add([change("1", "crmsync_priority"), change("2", "lifecyclestage"),
               change("3", "lifecyclestage", 0), change("3", "lifecyclestage", 1),
               change("4", "crmsync_priority"), change("4", "crmsync_icp_fit")])
    batches = list(spool.record_batches("hubspot", "contacts", 2, confirm={"lifecyclestage"}))
    assert [[(c.record_id, c.field, c.step) for _, c in batch] for batch in batches] == [
        [("3", "lifecyclestage", 0), ("3", "lifecyclestage", 1), ("2", "lifecyclestage", 0)],
        [("1", "crmsync_priority", 0), ("4", "crmsync_icp_fit", 0), ("4", "crmsync_priority", 0)],
    ]
    assert spool.report_rows(10) == []  # nothing sent yet
    first = batches[0][0][0]
    spool.record_results([(first, "retry_later", "500", "server error")])
    [row] = spool.report_rows(10)
    assert (row["record_id"], row["status"], row["code"]) == ("3", "retry_later", "500")
    assert [r["record_id"] for r in spool.report_rows(3, sent_only=False)] == ["1", "2", "3"]
    assert [c.after for c in spool.changes()][:2] == ["1-crmsync_priority-0",
                                                     "2-lifecyclestage-0"]


def test_write_batches_scan_the_spool_once_whatever_its_size(tmp_path):
    """The batching query must scan the spool once and look each record's kind up by index.
    With `c.id <= ?` usable as a rowid range, SQLite drove the join from the other side and
    looked the spool up once per record: quadratic (a 100k backfill stalled in it)."""
    with StateStore(tmp_path / "state.db") as store:
        spool = store.new_spool()
        for confirmed in (0, 1):
            plan = store.db.execute(
                "EXPLAIN QUERY PLAN " + spool.batches_query(confirmed),
                (*(["lifecyclestage"] * confirmed), "hubspot", "contacts", "hubspot",
                 "contacts", 10**9),
            ).fetchall()
            steps = [row[-1] for row in plan]
            assert "SCAN c" in steps, steps
            assert not any(step.startswith("SEARCH c USING INTEGER PRIMARY KEY")
                           for step in steps), steps


def test_writing_between_batches_survives_another_connections_commit(tmp_path):
    """While the engine walks a spool batch by batch it writes to the state DB, and the lock's
    heartbeat thread commits from a connection of its own every few minutes. A cursor left
    open across the batches held a read snapshot from before that commit, so the next write
    transaction could not start ("database is locked"): a 100k backfill failed that way
    three minutes in, at its first heartbeat."""
    import sqlite3  # noqa: PLC0415

    from connector.model import Change, System  # noqa: PLC0415

    path = tmp_path / "state.db"
    with StateStore(path) as store:
        spool = store.new_spool()
        spool.add([Change(system=System("hubspot"), object_type="contacts",
                          record_id=str(100_000 + n), field="crmsync_priority", before=None,
                          after="fit", rule="r", reason="why") for n in range(5_000)])
        heartbeat = sqlite3.connect(path, timeout=1, isolation_level=None)
        batches = 0
        for _batch in spool.record_batches("hubspot", "contacts", 100):
            heartbeat.execute("UPDATE meta SET value = value WHERE name = 'schema'")
            heartbeat.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('beat', ?)",
                              (str(batches),))
            with store.transaction():
                store.set_meta("written", str(batches))
            batches += 1
        heartbeat.close()
    assert batches == 50
