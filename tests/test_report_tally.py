"""The report's tally and each run's totals, kept by real runs against the sandbox: they
must equal a recount of the mirror from scratch, and agree with the audit log."""

from __future__ import annotations

import copy
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from connector.catalog import CATALOG
from connector.core import plan_records
from connector.model import Person
from connector.normalize import normalise
from connector.sandbox import Sandbox
from connector.state import MIGRATIONS, StateStore, StateStoreProtocol
from connector.state.protocol import SnapshotsProtocol
from tests.helpers import edit_across_systems, engine_for

SEED = 40


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=SEED) as sb:
        yield sb


def live_mirror(store: StateStore) -> list[tuple[str, dict]]:
    return [(ref, orjson.loads(record)) for ref, record in store.db.execute(
        "SELECT ref, record FROM mirror WHERE NOT deleted ORDER BY ref")]


def own_stage(mapping, ref: str, raw: dict) -> str | bool | None:
    """The stage a person record holds, None if it names none, False if it is not counted
    (not a person, unreadable, or a converted lead)."""
    system, obj, _ = ref.split(":", 2)
    view = normalise(mapping, system, obj, raw)
    if not isinstance(view, Person) or view.converted_refs:
        return False
    return view.stage.value if view.stage else None


def recount(store: StateStore, mapping) -> dict:
    """The numbers worked out from scratch: every live mirrored record, one pass of the core."""
    records = live_mirror(store)
    funnel: dict[str, Counter] = {"hubspot": Counter(), "salesforce": Counter()}
    counted: dict[str, str | None] = {}
    for ref, raw in records:
        stage = own_stage(mapping, ref, raw)
        if stage is not False:
            funnel[ref.split(":")[0]][stage or "none"] += 1
            counted[ref] = stage
    today = datetime.now(UTC).date()
    core = plan_records(mapping, ((r.split(":")[0], r.split(":")[1], raw) for r, raw in records),
                        today, store.mirror.link_texts())
    reconciled = Counter(str(p.stage.value) if p.stage else "none"
                         for p in core.reconciled.persons)
    linked = sum(1 for p in core.reconciled.persons
                 if {r.system.value for r in p.refs if r.key in counted} == {"hubspot",
                                                                               "salesforce"})
    fit = Counter(o.fit.fit if o.fit else None for o in core.reconciled.organizations)
    return {"funnel": {s: dict(c) for s, c in funnel.items()}, "reconciled": dict(reconciled),
            "linked": linked, "fit": fit[True], "not_fit": fit[False],
            "organizations": len(core.reconciled.organizations)}


def assert_totals_equal_a_recount(totals: dict, expected: dict) -> None:
    assert totals["left"]["funnel"] == expected["funnel"]
    assert totals["people"]["reconciled"] == expected["reconciled"]
    assert sum(n for _, _, n in totals["left"]["agreement"]) == expected["linked"]
    orgs = totals["organizations"]
    assert (orgs["total"], orgs["fit"], orgs["not_fit"]) == (
        expected["organizations"], expected["fit"], expected["not_fit"])


def test_totals_kept_by_incremental_runs_equal_a_recount_of_the_mirror(sandbox, tmp_path):
    with engine_for(sandbox, tmp_path / "state.db") as engine:
        backfill = engine.backfill()
        assert_totals_equal_a_recount(engine.store.snapshots.of_run(backfill.run_id).totals,
                                      recount(engine.store, engine.mapping))
        edit_across_systems(sandbox)
        lead = next(r for r in sandbox.salesforce_records("Lead") if not r.get("IsConverted"))
        sandbox.update_salesforce("Lead", lead["Id"], {"Status": "Nurturing"})  # unreadable
        contact = sandbox.hubspot_records("contacts")[0]
        sandbox.delete_hubspot("contacts", contact["id"])
        sync = engine.sync()
        assert sync.plan_scope == "changed" and sync.applied > 0 and sync.deleted == 1
        totals = engine.store.snapshots.of_run(sync.run_id).totals
        before = engine.store.snapshots.of_run(backfill.run_id).totals
        expected = recount(engine.store, engine.mapping)
    assert_totals_equal_a_recount(totals, expected)
    # the deleted contact and the unreadable lead left the systems' counts
    assert sum(totals["found"]["funnel"]["hubspot"].values()) == sum(
        before["left"]["funnel"]["hubspot"].values()) - 1
    assert sum(totals["found"]["funnel"]["salesforce"].values()) == sum(
        before["left"]["funnel"]["salesforce"].values()) - 1


def audit_deltas(store: StateStore, mapping, run_id: int) -> dict[str, Counter]:
    """Per system, what the run's audited writes did to its funnel: each written person
    record's stage with the fields it wrote put back to their before-values, and as it is."""
    first_before: dict[str, dict[str, object]] = {}
    for entry in store.journal.entries(run_id):
        first_before.setdefault(str(entry.ref), {}).setdefault(entry.field, entry.before)
    mirrored = dict(live_mirror(store))
    deltas = {"hubspot": Counter(), "salesforce": Counter()}
    for ref, befores in first_before.items():
        raw = mirrored[ref]
        then = copy.deepcopy(raw)
        fields = CATALOG[ref.split(":")[0]].record_fields(then)
        fields.update(befores)
        old, new = own_stage(mapping, ref, then), own_stage(mapping, ref, raw)
        if old is False or new is False:
            continue
        deltas[ref.split(":")[0]][old or "none"] -= 1
        deltas[ref.split(":")[0]][new or "none"] += 1
    return deltas


@pytest.mark.parametrize("kind", ["backfill", "sync"])
def test_after_less_before_is_what_the_audit_log_says_the_run_wrote(sandbox, tmp_path, kind):
    with engine_for(sandbox, tmp_path / "state.db") as engine:
        run = engine.backfill()
        if kind == "sync":
            edit_across_systems(sandbox)
            run = engine.sync()
        totals = engine.store.snapshots.of_run(run.run_id).totals
        deltas = audit_deltas(engine.store, engine.mapping, run.run_id)
    stage_moves = sum(abs(n) for d in deltas.values() for n in d.values())
    assert stage_moves > 0  # the run moved stages: the check below checks something
    for system in ("hubspot", "salesforce"):
        found, left = Counter(totals["found"]["funnel"][system]), totals["left"]["funnel"][system]
        found.update(deltas[system])
        assert {s: n for s, n in found.items() if n} == left, system
    # writing stages makes the systems agree more, never less
    agreeing = {side: sum(n for a, b, n in totals[side]["agreement"] if a == b)
                for side in ("found", "left")}
    assert agreeing["left"] > agreeing["found"]


def test_a_dry_run_leaves_what_it_found_and_a_quiet_run_keeps_a_reference(sandbox, tmp_path):
    with engine_for(sandbox, tmp_path / "state.db") as engine:
        dry = engine.backfill(dry_run=True)
        dry_totals = engine.store.snapshots.of_run(dry.run_id).totals
        assert dry_totals["found"] == dry_totals["left"]
        assert dry_totals["found"]["funnel"]["hubspot"]  # it did count
        first = engine.sync()
        quiet = engine.sync()
        again = engine.sync()
        assert (quiet.planned, again.planned) == (0, 0)
        kept = engine.store.snapshots.of_run(again.run_id)
        row = engine.store.db.execute("SELECT totals, same_as FROM snapshots WHERE run_id = ?",
                                      (again.run_id,)).fetchone()
    assert first.applied > 0
    assert row == (None, quiet.run_id)  # a reference, a few bytes
    assert kept.source_run == quiet.run_id and kept.run_id == again.run_id
    assert kept.totals["found"] == kept.totals["left"]


def test_counting_for_the_report_never_fails_a_run(sandbox, tmp_path, monkeypatch, caplog):
    def broken(*_: object) -> dict:
        raise RuntimeError("a bug in counting")

    monkeypatch.setattr("connector.sync.engine.run_end_totals", broken)
    with caplog.at_level(logging.WARNING, logger="crmsync.sync"), \
            engine_for(sandbox, tmp_path / "state.db") as engine:
        report = engine.backfill()
        recorded = engine.store.journal.run(report.run_id)
        kept = engine.store.snapshots.of_run(report.run_id)
    assert (report.status, recorded.status, kept) == ("ok", "ok", None)
    assert "no totals kept for the report: RuntimeError: a bug in counting" in caplog.text


def test_a_run_is_recorded_finished_with_its_totals_or_not_at_all(tmp_path, monkeypatch):
    with StateStore(tmp_path / "state.db") as store:
        assert isinstance(store.snapshots, SnapshotsProtocol)
        assert isinstance(store, StateStoreProtocol)
        run_id = store.journal.start_run("sync")

        def failing(*_: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(store.snapshots, "save", failing)
        with pytest.raises(Exception, match="disk is full"):
            store.finish_run(run_id, "ok", {}, {}, totals={"people": {}})
        assert store.journal.run(run_id).status == "running"  # the finish went with it
        monkeypatch.undo()
        store.finish_run(run_id, "ok", {}, {}, totals={"people": {"total": 0}})
        assert store.journal.run(run_id).status == "ok"
        assert store.snapshots.of_run(run_id).totals == {"people": {"total": 0}}


def legacy_copy(current: Path, legacy: Path) -> None:
    """`current`'s mirror and cursors in a state DB built by the migrations before the one that
    adds the tally, as crmsync left it then: nothing to plan, mapping planned with known."""
    tally = next(i for i, script in enumerate(MIGRATIONS) if "CREATE TABLE tally" in script)
    with sqlite3.connect(legacy) as db:
        for version, script in enumerate(MIGRATIONS[:tally], start=1):
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {version}")
        db.execute("ATTACH DATABASE ? AS cur", (str(current),))
        for table in ("mirror", "identity", "watermarks", "links", "meta"):
            columns = ", ".join(row[1] for row in db.execute(f"PRAGMA main.table_info({table})"))
            db.execute(f"INSERT OR REPLACE INTO main.{table} ({columns}) "
                       f"SELECT {columns} FROM cur.{table}")
        db.commit()
        db.execute("DETACH DATABASE cur")


def test_a_state_db_from_before_the_tally_is_counted_whole_by_its_next_run(sandbox, tmp_path):
    current, legacy = tmp_path / "current.db", tmp_path / "legacy.db"
    with engine_for(sandbox, current) as engine:
        engine.backfill()
        engine.sync()  # reads the backfill's writes back: nothing left to plan
    legacy_copy(current, legacy)
    with sqlite3.connect(legacy) as db:
        assert db.execute("SELECT count(*) FROM mirror WHERE dirty").fetchone()[0] == 0
        assert db.execute("SELECT value FROM meta WHERE name = 'planned_mapping'").fetchone()
    with engine_for(sandbox, legacy) as engine:
        sync = engine.sync()
        totals = engine.store.snapshots.of_run(sync.run_id).totals
        expected = recount(engine.store, engine.mapping)
        mirrored = engine.store.mirror.count()
    assert (sync.plan_scope, sync.records_planned) == ("all", mirrored)
    assert_totals_equal_a_recount(totals, expected)


def test_a_runs_api_calls_are_its_own_not_the_process_total(sandbox, tmp_path):
    """An engine that runs several times (the demo, a worker) counted every earlier run's
    calls again in each later run's report and history."""
    with engine_for(sandbox, tmp_path / "state.db") as engine:
        engine.backfill()
        sandbox.reset_counters()
        sync = engine.sync()
        requests = sandbox.counters()["requests"]
        recorded = engine.store.journal.run(sync.run_id).api_calls
    for system in ("hubspot", "salesforce"):
        sent = sum(n for endpoint, n in requests.items() if endpoint.startswith(system + "."))
        assert sync.api_calls[system]["calls"] == sent > 0, system
        assert recorded[system]["calls"] == sent
        assert sum(sync.api_calls[system]["by_operation"].values()) == sent
