"""Incremental planning: a run plans only the records that changed and those tied to them, and
that gives exactly the changes a plan of every record gives. Against the sandbox."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from connector.mapping import load_mapping
from connector.sandbox import Sandbox
from connector.state import MIGRATIONS, StateStore
from tests.helpers import copy_db, edit_across_systems, engine_for, rows

SEED = 40


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=SEED) as sb:
        yield sb


def test_incremental_plan_equals_a_full_plan(sandbox, tmp_path, state_location):
    state = state_location
    with engine_for(sandbox, state) as engine:
        assert engine.backfill().status == "ok"
    edit_across_systems(sandbox)
    copy = copy_db(state, tmp_path / "copy.db")
    with engine_for(sandbox, state) as engine:
        incremental = engine.sync(dry_run=True)
    with engine_for(sandbox, copy) as engine:
        full = engine.sync(dry_run=True, replan_all=True)
    assert (incremental.plan_scope, full.plan_scope) == ("changed", "all")
    assert 0 < incremental.records_planned < full.records_planned / 4
    assert rows(incremental) == rows(full)
    touched = {(system, obj) for system, obj, *_ in rows(full)}
    assert {("salesforce", "Contact"), ("hubspot", "companies")} <= touched


def test_runs_plan_nothing_when_nothing_changed_not_even_on_reading_their_writes(sandbox,
                                                                                 state_location):
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        echo = engine.sync()  # re-reads what the backfill wrote
        assert sum(echo.read.values()) > 0
        assert (echo.plan_scope, echo.records_planned, echo.planned) == ("changed", 0, 0)
        edit_across_systems(sandbox)
        carried = engine.sync()
        assert 0 < carried.records_planned < engine.store.mirror.count()
        assert carried.applied > 0
        echo = engine.sync()
        assert (echo.records_planned, echo.planned) == (0, 0)


@pytest.fixture
def other_icp(tmp_path):
    """The shipped mapping with one ICP bound moved, beside its label packs."""
    source = Path(load_mapping().files[0])
    shutil.copytree(source.parent, tmp_path / "mappings")
    path = tmp_path / "mappings" / source.name
    text = path.read_text(encoding="utf-8")
    assert "between: [50, 5000]" in text
    path.write_text(text.replace("between: [50, 5000]", "between: [60, 5000]"), encoding="utf-8")
    return load_mapping(path)


def test_a_new_mapping_plans_everything(sandbox, tmp_path, other_icp, state_location):
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        everything = engine.store.mirror.count()
        engine.mapping = other_icp
        first = engine.sync()
        assert (first.plan_scope, first.records_planned) == ("all", everything)
        assert engine.sync().plan_scope == "changed"


def test_on_the_day_a_trigger_starts_or_ends_its_organisation_is_planned_though_nothing_changed(
        sandbox, tmp_path, state_location):
    """Funding is active for 180 days: one account's funding ends tomorrow, another's starts."""
    today = date.today()
    quiet = [a for a in sandbox.salesforce_records("Account")
             if not any(a.get(f) for f in ("Funding_Announced_Date__c", "New_Executive_Date__c",
                                          "Expansion_Date__c", "Cost_Savings_Announced_Date__c"))]
    ending, starting = quiet[0]["Id"], quiet[1]["Id"]
    sandbox.update_salesforce("Account", ending, {
        "Funding_Announced_Date__c": (today - timedelta(days=179)).isoformat()})
    sandbox.update_salesforce("Account", starting, {
        "Funding_Announced_Date__c": (today + timedelta(days=1)).isoformat()})
    state = state_location
    with engine_for(sandbox, state) as engine:
        engine.backfill()
        assert engine.sync().records_planned == 0
    copy = copy_db(state, tmp_path / "copy.db")
    tomorrow = today + timedelta(days=1)
    with engine_for(sandbox, state) as engine:
        engine.today = tomorrow
        incremental = engine.sync(dry_run=True)
    with engine_for(sandbox, copy) as engine:
        engine.today = tomorrow
        full = engine.sync(dry_run=True, replan_all=True)
    assert incremental.plan_scope == "changed"
    assert 0 < incremental.records_planned < full.records_planned / 4
    assert rows(incremental) == rows(full)
    flags = {(r["record_id"], r["after"]) for r in full.changes if r["field"] == "Buying_Signal__c"}
    assert {(ending, False), (starting, True)} <= flags
    with engine_for(sandbox, state) as engine:  # the dry run left the work to the real one
        engine.today = tomorrow
        real = engine.sync()
        assert real.records_planned == incremental.records_planned
        assert engine.sync().records_planned == 0


def test_a_dry_run_leaves_its_changes_to_the_next_real_run(sandbox, tmp_path, state_location):
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        edit_across_systems(sandbox)
        dry = engine.sync(dry_run=True)
        real = engine.sync()
        assert dry.planned > 0
        assert real.records_planned == dry.records_planned
        assert real.applied == dry.planned


def test_a_rolled_back_run_is_planned_again(sandbox, tmp_path, state_location):
    """As before incremental planning: the next sync writes the reconciled values again."""
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        edit_across_systems(sandbox)
        carried = engine.sync()
        undone = engine.rollback(carried.run_id)
        assert undone.applied > 0
        again = engine.sync()
        assert again.records_planned > 0
        assert {r["record_id"] for r in again.changes} == {r["record_id"] for r in undone.changes}


def test_writes_that_failed_are_planned_again_though_nothing_changed(sandbox, state_location):
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        edit_across_systems(sandbox)
        sandbox.set_faults("hubspot.batch_update:500=1, salesforce.composite:500=1")
        failed = engine.sync()
        sandbox.set_faults(None)
        retried = engine.sync()
        assert (failed.applied, failed.planned) == (0, failed.retry_later)
        assert failed.retry_later > 0
        assert retried.plan_scope == "changed"
        assert retried.applied == retried.planned == failed.retry_later
        assert engine.sync().planned == 0


def test_the_report_lists_the_first_changes_and_counts_the_rest(sandbox, monkeypatch,
                                                                 state_location):
    monkeypatch.setattr("connector.sync.report.REPORT_CHANGE_ROWS", 7)
    with engine_for(sandbox, state_location) as engine:
        report = engine.backfill(dry_run=True)
    assert len(report.changes) == 7
    assert report.changes_not_listed == report.planned - 7 > 0
    order = [(r["system"], r["object_type"], r["record_id"], r["field"], r["step"])
             for r in report.changes]
    assert order == sorted(order)
    assert order[0][:2] == ("hubspot", "companies")  # the first object in plan order


def test_a_state_db_from_before_the_identity_index_is_indexed_and_planned_whole(sandbox,
                                                                               tmp_path):
    current = tmp_path / "current.db"
    with engine_for(sandbox, current) as engine:
        engine.backfill(dry_run=True)
    legacy = tmp_path / "legacy.db"
    with sqlite3.connect(legacy) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        db.execute("ATTACH DATABASE ? AS cur", (str(current),))
        db.execute("INSERT INTO mirror SELECT ref, system, object_type, record_id, record, "
                   "modified_at, seen_run FROM cur.mirror")
        db.execute("INSERT INTO watermarks SELECT * FROM cur.watermarks")
    with StateStore(legacy) as store:
        assert store.meta("identity_complete") is None
    with engine_for(sandbox, legacy) as engine:
        first = engine.sync(dry_run=True)
        assert (first.plan_scope, first.records_planned) == ("all", engine.store.mirror.count())
        assert engine.store.meta("identity_complete") == "1"
    with engine_for(sandbox, current) as engine:
        whole = engine.sync(dry_run=True, replan_all=True)
    assert rows(first) == rows(whole)
