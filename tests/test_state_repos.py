"""The state store's repositories and its intent-level operations: each operation that spans
repositories is one transaction, so a failure part-way leaves none of its writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import connector.state as state
from connector.exceptions import StateStoreError
from connector.model import Change, System
from connector.state import StateStore, StateStoreProtocol, WriteOutcome
from connector.state.protocol import (
    CursorsProtocol,
    JournalProtocol,
    LedgerProtocol,
    MirrorProtocol,
    RunLockProtocol,
)
from connector.systems.base import Tombstone

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(state_location):
    """The store on each backend (tests/state_backends.py): every test here runs on both."""
    with StateStore(state_location) as s:
        yield s


def contact(rid: str, email: str, stage: str = "lead") -> dict:
    return {"id": rid, "properties": {"email": email, "lifecyclestage": stage,
                                      "lastmodifieddate": "2026-03-01T00:00:00Z"}}


class Boom(Exception):
    pass


def failing(*_: object, **__: object) -> None:
    raise Boom("failed part-way")


# ---- transactions ------------------------------------------------------------------------------

def test_a_transaction_inside_another_is_a_savepoint_undone_alone(store):
    with store.transaction():
        store.set_meta("outer", "1")
        with pytest.raises(Boom), store.transaction():
            store.set_meta("inner", "1")
            raise Boom
        with store.transaction():
            store.set_meta("kept", "1")
    assert (store.meta("outer"), store.meta("inner"), store.meta("kept")) == ("1", None, "1")


def test_work_of_an_inner_transaction_goes_when_the_outer_one_fails(store):
    with pytest.raises(Boom), store.transaction():
        with store.transaction():
            store.set_meta("inner", "1")
        raise Boom
    assert store.meta("inner") is None
    with store.transaction():  # and the store is usable again: no transaction left open
        store.set_meta("after", "1")
    assert store.meta("after") == "1"


# ---- checkpoint_page ---------------------------------------------------------------------------

def test_a_checkpointed_page_moves_the_watermark_never_past_the_cap_nor_back(store):
    cap = T0 - timedelta(minutes=15)
    done = store.checkpoint_page("hubspot", "contacts", [("1", contact("1", "a@x.example"))],
                                 T0, 1, cap=cap)
    assert done.changed == 1
    assert store.cursors.watermark("hubspot", "contacts") == cap
    store.checkpoint_page("hubspot", "contacts", [("2", contact("2", "b@x.example"))],
                          cap - timedelta(hours=1), 1, cap=cap)
    assert store.cursors.watermark("hubspot", "contacts") == cap  # an older page: not back
    store.checkpoint_page("hubspot", "contacts", [("3", contact("3", "c@x.example"))],
                          T0 + timedelta(days=1), 1, cap=None)  # a backfill page
    assert store.cursors.watermark("hubspot", "contacts") == cap
    assert store.mirror.count() == 3


def test_a_page_that_fails_part_way_leaves_neither_its_records_nor_its_watermark(store):
    def tombstones():
        yield Tombstone("9", T0, None)
        raise Boom("the page's tombstones could not be read")

    with pytest.raises(Boom):
        store.checkpoint_page("hubspot", "contacts", [("1", contact("1", "a@x.example"))],
                              T0, 1, cap=T0, tombstones=tombstones())
    assert store.mirror.count() == 0
    assert store.cursors.watermark("hubspot", "contacts") is None


def test_a_watermark_that_cannot_be_saved_takes_the_page_with_it(store, monkeypatch):
    monkeypatch.setattr(store.cursors, "set_watermark", failing)
    with pytest.raises(Boom):
        store.checkpoint_page("hubspot", "contacts", [("1", contact("1", "a@x.example"))],
                              T0, 1, cap=T0)
    assert store.mirror.count() == 0
    assert list(store.mirror.identity_pairs()) == []


def test_a_page_applies_its_tombstones_with_it(store):
    store.checkpoint_page("hubspot", "contacts", [("1", contact("1", "a@x.example")),
                                                  ("2", contact("2", "b@x.example"))],
                          T0 - timedelta(days=1), 1, cap=T0)
    done = store.checkpoint_page("hubspot", "contacts", [], T0, 2, cap=T0,
                                 tombstones=[Tombstone("1", T0, None), Tombstone("2", T0, "3")])
    assert (done.deleted, done.merged) == (1, 1)
    assert store.mirror.live_refs(["hubspot:contacts:1", "hubspot:contacts:2"]) == set()


# ---- record_writes -----------------------------------------------------------------------------

def _written_batch(store: StateStore) -> tuple[object, list[WriteOutcome]]:
    """Two records mirrored and planned, one change each spooled and audited as intended."""
    store.checkpoint_page("hubspot", "contacts", [("1", contact("1", "a@x.example")),
                                                  ("2", contact("2", "b@x.example"))],
                          T0, 1, cap=T0)
    store.mirror.clear_dirty()
    store.ledger.reject("hubspot:contacts:1", "write", "earlier failure", 1, "lifecyclestage")
    changes = [Change(System.HUBSPOT, "contacts", rid, "lifecyclestage", "lead", after, "r", "x")
               for rid, after in (("1", ""), ("2", "customer"))]
    spool = store.new_spool()
    spool.add(changes)
    [batch] = list(spool.record_batches("hubspot", "contacts", 10))
    with store.transaction():
        intents = store.journal.record_intents(2, 1, [c for _, c in batch])
    outcomes = [
        WriteOutcome(batch[0][0], batch[0][1], "applied", audit_id=intents[0]),
        WriteOutcome(batch[1][0], batch[1][1], "rejected", "INVALID_OPTION", "no such stage",
                     audit_id=intents[1]),
    ]
    return spool, outcomes


def test_recorded_writes_reach_the_spool_audit_ledger_and_mirror(store):
    spool, outcomes = _written_batch(store)
    store.record_writes(2, "hubspot", "contacts", spool, outcomes, dry_run=False,
                        mark_dirty=False)
    assert [(r["record_id"], r["status"]) for r in spool.report_rows(10)] == [
        ("1", "applied"), ("2", "rejected")]
    assert [e.ref.record_id for e in store.journal.entries(2)] == ["1"]
    assert [e.ref.record_id for e in store.journal.entries(2, status="rejected")] == ["2"]
    assert [(r.ref, r.code) for r in store.ledger.open()] == [
        ("hubspot:contacts:2", "INVALID_OPTION")]  # record 1's earlier reject is resolved
    mirrored = store.mirror.raw()["hubspot:contacts:1"]
    assert mirrored["properties"]["lifecyclestage"] is None  # "" reads back as null
    assert store.mirror.dirty_refs() == []


def test_writes_that_fail_to_record_part_way_leave_no_outcome_anywhere(store, monkeypatch):
    spool, outcomes = _written_batch(store)
    monkeypatch.setattr(store.mirror, "save_writes", failing)
    with pytest.raises(Boom):
        store.record_writes(2, "hubspot", "contacts", spool, outcomes, dry_run=False,
                            mark_dirty=False)
    assert spool.sent() == 0
    assert len(store.journal.intents(2)) == 2  # both still only intended
    assert [r.ref for r in store.ledger.open()] == ["hubspot:contacts:1"]  # only the old one
    assert store.mirror.raw()["hubspot:contacts:1"]["properties"]["lifecyclestage"] == "lead"


def test_a_dry_run_records_only_the_spool(store):
    spool, outcomes = _written_batch(store)
    dry = [WriteOutcome(o.spool_id, o.change, o.status, o.code, o.message) for o in outcomes]
    store.record_writes(2, "hubspot", "contacts", spool, dry, dry_run=True, mark_dirty=False)
    assert spool.sent() == 2
    assert len(store.journal.intents(2)) == 2
    assert [r.ref for r in store.ledger.open()] == ["hubspot:contacts:1"]


# ---- planned -----------------------------------------------------------------------------------

def test_planned_clears_the_dirty_flags_and_remembers_the_mapping_of_a_full_plan(store):
    store.checkpoint_page("hubspot", "contacts", [("1", contact("1", "a@x.example")),
                                                  ("2", contact("2", "b@x.example"))],
                          T0, 1, cap=T0)
    store.planned("changed", "sha-1", replan=["hubspot:contacts:2"])
    assert store.mirror.dirty_refs() == ["hubspot:contacts:2"]
    assert store.meta("planned_mapping") is None
    store.planned("all", "sha-2")
    assert (store.mirror.dirty_refs(), store.meta("planned_mapping")) == ([], "sha-2")


def test_planned_that_fails_part_way_keeps_every_dirty_flag(store, monkeypatch):
    store.checkpoint_page("hubspot", "contacts", [("1", contact("1", "a@x.example"))],
                          T0, 1, cap=T0)
    monkeypatch.setattr(store, "set_meta", failing)
    with pytest.raises(Boom):
        store.planned("all", "sha-1")
    assert store.mirror.dirty_refs() == ["hubspot:contacts:1"]


# ---- the seam and the package's names ---------------------------------------------------------

def test_the_store_implements_the_store_protocol(store):
    assert isinstance(store, StateStoreProtocol)
    for repo, protocol in ((store.lock, RunLockProtocol), (store.journal, JournalProtocol),
                           (store.cursors, CursorsProtocol), (store.mirror, MirrorProtocol),
                           (store.ledger, LedgerProtocol)):
        assert isinstance(repo, protocol), protocol.__name__


def test_a_run_is_found_by_its_id_however_old(store):
    ids = [store.journal.start_run("sync") for _ in range(12)]
    assert store.journal.run(ids[0]).id == ids[0]  # beyond the latest ten
    assert store.journal.run(10_000) is None


def test_every_name_the_package_exports_exists():
    assert sorted(state.__all__) == sorted(set(state.__all__))
    for name in state.__all__:
        assert getattr(state, name) is not None, name


def test_database_errors_inside_an_operation_leave_as_state_store_errors(store,
                                                                         store_backend):
    if store_backend == "sqlite":
        store.db.execute("PRAGMA query_only = ON")
    else:  # as a read-only replica answers
        store.db.raw.execute("SET default_transaction_read_only = on")
    with pytest.raises(StateStoreError, match=r"read-only|readonly"):
        store.planned("all", "sha-1")
