"""The engine under the things that go wrong in production: edits racing a run's writes, plan
files that say anything, a lock lost mid-write, a broken or full state DB, file permissions,
search lag and secrets. Against the sandbox through the real SDKs wherever a CRM is involved."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.exceptions import ConfigurationError, StateStoreError, register_secret
from connector.model import Change, System
from connector.sandbox import Sandbox
from connector.state import StateStore
from connector.sync import PlanDocument, Progress
from tests.helpers import edit_across_systems, engine_for, linked_early_contact, wrap, written
from tests.runs import cli, write_env

SEED = 40
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=SEED) as sb:
        yield sb


class AfterReading(Progress):
    """Runs `action` once every object is read: an edit between a run's read and its write."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action

    def finish(self, key: str) -> None:
        if key == "salesforce.Opportunity":
            self.action()


# ---- 1. an edit between the read and the write -----------------------------------------------


def test_an_edit_made_after_the_read_survives_the_write_and_is_carried_next_run(sandbox,
                                                                                 state_location):
    """The Contact is read at MQL-ish, then set to Evangelist before the write: the run must
    not write Opportunity over it (a downgrade the mapping forbids)."""
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        contact = linked_early_contact(sandbox)
        sf_id = contact["properties"]["salesforcecontactid"]
        sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "opportunity"})
        offset = timedelta()

        def edit_and_let_time_pass() -> None:
            nonlocal offset
            sandbox.update_salesforce("Contact", sf_id, {"Lifecycle_Stage__c": "Evangelist"})
            offset = timedelta(minutes=1)  # the read is now older than the re-read age

        engine.clock = lambda: datetime.now(UTC) + offset
        engine.progress = AfterReading(edit_and_let_time_pass)
        report = engine.sync()
        assert sandbox.salesforce_record("Contact", sf_id)["Lifecycle_Stage__c"] == "Evangelist"
        assert not any(c["record_id"] == sf_id and c["status"] == "applied"
                       for c in report.changes)
        assert report.reread_records > 0 and report.reread_calls > 0
        assert report.reread_changed == 1
        engine.progress, engine.clock = Progress(), lambda: datetime.now(UTC)
        carried = engine.sync()  # the group is planned again: HubSpot follows the Evangelist
        assert carried.status == "ok", carried.message
        assert sandbox.hubspot_record("contacts", contact["id"])["properties"][
            "lifecyclestage"] == "evangelist"


def test_a_quick_run_rereads_nothing_and_a_forced_reread_costs_a_read_per_write_batch(
        sandbox, tmp_path):
    with engine_for(sandbox, tmp_path / "state.db", reread_older_than_seconds=3600) as engine:
        quick = engine.backfill(dry_run=True)
        assert (quick.reread_records, quick.reread_calls) == (0, 0)
    with engine_for(sandbox, tmp_path / "other.db", reread_older_than_seconds=0) as engine:
        sandbox.reset_counters()
        forced = engine.backfill()
    assert forced.status == "ok", forced.message
    assert forced.applied == quick.planned
    assert forced.reread_changed == 0  # what was read by id is what the reads had mirrored
    written_records = {(c["system"], c["record_id"]) for c in forced.changes}
    assert forced.reread_records == len(written_records)
    requests = sandbox.counters()["requests"]
    reads_by_id = requests.get("hubspot.batch_read", 0)
    assert 0 < forced.reread_calls <= reads_by_id + requests.get("salesforce.query", 0)


def test_apply_mirrors_what_it_read_not_a_stale_copy(sandbox, tmp_path):
    with engine_for(sandbox, tmp_path / "state.db") as engine:
        engine.backfill()
        contact = linked_early_contact(sandbox)
        sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "salesqualifiedlead"})
        _, document = engine.plan()
        target = next(c for c in document.changes
                      if c.system.value == "salesforce" and c.object_type == "Contact")
        sandbox.update_salesforce("Contact", target.record_id, {"LastName": "Renamed-After-Plan"})
        assert engine.apply(document).status == "ok"
        [mirrored] = engine.store.mirror.raw(
            [target.ref]).values()
    assert mirrored["LastName"] == "Renamed-After-Plan"
    assert mirrored[target.field] == target.after


# ---- 2. apply accepts only what the mapping could produce -------------------------------------


def _change(record_id: str, field: str, after: Any, obj: str = "Contact", before: Any = None,
            system: str = "salesforce") -> Change:
    return Change(System(system), obj, record_id, field, before, after, "rule", "reason")


@pytest.mark.parametrize(("make", "complaint"), [
    (lambda rid: _change(rid, "Email", "attacker@example.com"), "not written back"),
    (lambda rid: _change(rid, "Lifecycle_Stage__c", "Hacked"), "cannot produce"),
    (lambda rid: _change(rid, "Priority__c", "p0"), "cannot produce"),
    (lambda rid: _change("003NOTMIRRORED00001", "Lifecycle_Stage__c", "Customer"), "not in"),
])
def test_apply_refuses_a_plan_with_a_change_the_mapping_cannot_make(sandbox, tmp_path, make,
                                                                    complaint):
    with engine_for(sandbox, tmp_path / "state.db") as engine:
        engine.backfill()
        contact = sandbox.salesforce_records("Contact")[0]
        good = _change(contact["Id"], "Lifecycle_Stage__c", "Customer",
                       before=contact["Lifecycle_Stage__c"])
        bad = make(contact["Id"])
        document = PlanDocument(datetime.now(UTC).isoformat(), engine._mapping_sha256(),
                                "2026-11-23", [good, bad])
        before = written(sandbox)
        refused = engine.apply(PlanDocument.from_json(document.to_json()))
    assert (refused.status, refused.exit_code) == ("config_error", 2)
    assert complaint in refused.message and bad.field in refused.message
    assert written(sandbox) == before  # the whole plan is refused, the good change too


def _plan_text(change: dict) -> str:
    return json.dumps({"crmsync_plan": 1, "created_at": "x", "mapping_sha256": "x",
                       "today": "2026-11-23", "changes": [change]})


@pytest.mark.parametrize(("edit", "complaint"), [
    ({"object_type": "User"}, "unknown object"),
    ({"record_id": "0" * 20_000}, "record id"),
    ({"after": {"$set": "Customer"}}, "not a single value"),
    ({"before": ["a", "b"]}, "not a single value"),
    ({"field": ""}, "field"),
])
def test_a_plan_file_that_could_not_come_from_crmsync_is_refused_clearly(edit, complaint):
    change = {"system": "salesforce", "object_type": "Contact", "record_id": "003A",
              "field": "Lifecycle_Stage__c", "before": "MQL", "after": "SQL", "rule": "r",
              "reason": "x", "step": 0, **edit}
    with pytest.raises(ConfigurationError, match=complaint):
        PlanDocument.from_json(_plan_text(change), "plan.json")


# ---- 3. the run lock during long writes ---------------------------------------------------------


def _heartbeat(state: Path) -> float | None:
    with sqlite3.connect(state) as db:
        row = db.execute("SELECT heartbeat FROM lock").fetchone()
    return row[0] if row else None


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> bool:
    done = threading.Event()
    while not done.wait(0.05):
        if condition():
            return True
        timeout -= 0.05
        if timeout <= 0:
            return False
    return False


def test_the_lock_heartbeat_moves_while_a_slow_write_runs(sandbox, tmp_path, monkeypatch):
    state = tmp_path / "state.db"
    moved: list[bool] = []

    def slow_first_write(obj, updates) -> None:
        if not moved:
            first = _heartbeat(state)
            moved.append(_wait_for(lambda: _heartbeat(state) != first))

    with engine_for(sandbox, state, lock_stale_seconds=1.0) as engine:  # a beat every 0.2 s
        wrap(engine, hubspot={"on_write": slow_first_write})
        report = engine.backfill()
    assert report.status == "ok", report.message
    assert moved == [True]


def test_salesforce_write_batches_hold_the_records_the_setting_says(sandbox, tmp_path):
    """The engine's batch is the adapter's request (`salesforce_write_batch_size`): the lock
    check and the re-read before each batch then cover one request, not forty."""
    with engine_for(sandbox, tmp_path / "state.db", salesforce_write_batch_size=3) as engine:
        report = engine.backfill()
        entries = engine.store.journal.entries(report.run_id)
    records_per_batch: dict[int | None, set[str]] = {}
    for entry in entries:
        if entry.ref.system is System.SALESFORCE:
            records_per_batch.setdefault(entry.batch, set()).add(entry.ref.record_id)
    assert len(records_per_batch) > 1
    assert max(len(records) for records in records_per_batch.values()) == 3


def test_a_run_whose_lock_was_taken_stops_before_its_next_write(sandbox, tmp_path):
    state = tmp_path / "state.db"
    batches: list[str] = []

    def lose_the_lock_on_the_first_write(obj, updates) -> None:
        batches.append(obj)
        if len(batches) == 1:  # another run finds our lock stale and takes it
            with StateStore(state) as other:
                other.lock.acquire("crmsync sync (other)", stale_after=0)

    with engine_for(sandbox, state) as engine:
        engine.options = replace(engine.options, write_batch={"hubspot": 5, "salesforce": 5})
        wrap(engine, hubspot={"on_write": lose_the_lock_on_the_first_write},
             salesforce={"on_write": lose_the_lock_on_the_first_write})
        report = engine.backfill()
        holder = engine.store.lock.holder()
    assert (report.status, report.exit_code) == ("stopped", 3)
    assert "lock" in report.message and "another run" in report.message
    assert len(batches) == 1
    assert holder is not None and holder["owner"] == "crmsync sync (other)"  # not released


# ---- 4. writes left for a retry ---------------------------------------------------------------


def test_writes_left_for_a_retry_end_the_run_with_exit_1_and_say_how_many(sandbox, state_location):
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        edit_across_systems(sandbox)
        sandbox.set_faults("hubspot.batch_update:500=1, salesforce.composite:500=1")
        report = engine.sync()
    assert report.retry_later > 0
    assert (report.status, report.exit_code) == ("rejects", 1)
    assert f"{report.retry_later} write(s) pending retry" in report.message


# ---- 5. unexpected errors and a broken state DB ------------------------------------------------


def test_an_unexpected_error_fails_the_run_releases_the_lock_and_exits_4(sandbox, state_location):
    def explode(obj, updates) -> None:
        raise RuntimeError("boom\nwith a second line")

    with engine_for(sandbox, state_location) as engine:
        wrap(engine, hubspot={"on_write": explode})
        report = engine.backfill()
        [run] = engine.store.journal.runs(1)
        holder = engine.store.lock.holder()
    assert (report.status, report.exit_code) == ("failed", 4)
    assert report.message == "RuntimeError: boom with a second line"
    assert (run.status, run.message) == ("failed", report.message)
    assert holder is None


def test_a_corrupt_state_db_is_named_as_such(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is no SQLite file, it was overwritten by mistake\n" * 200)
    with pytest.raises(StateStoreError, match="is not a crmsync database \\(or is corrupt\\)"):
        StateStore(path)


def test_a_read_only_state_db_is_named_as_such(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="crmsync-ro-"))
    try:
        folder.chmod(0o755)
        path = folder / "state.db"
        StateStore(path).close()
        path.chmod(0o644)
        code = ("import sys; from connector.state import StateStore\n"
                "try:\n    StateStore(sys.argv[1]).lock.acquire('crmsync sync')\n"
                "except Exception as e:\n    print(type(e).__name__, e)")
        command = [sys.executable, "-c", code, str(path)]
        if os.geteuid() == 0:  # root may write any file: run as nobody, who may only read it
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        else:
            path.chmod(0o444)
            folder.chmod(0o555)
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=folder,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        assert done.stdout.startswith("StateStoreError"), done.stdout + done.stderr
        assert "read-only" in done.stdout and str(path) in done.stdout
    finally:
        folder.chmod(0o755)
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()


def test_a_full_disk_mid_run_fails_the_run_with_a_clear_message(sandbox, tmp_path):
    with engine_for(sandbox, tmp_path / "state.db") as engine:
        engine.backfill()
        for contact in sandbox.salesforce_records("Contact"):  # plenty to mirror
            sandbox.update_salesforce("Contact", contact["Id"], {"LastName": "L" * 80})
        pages = engine.store.db.execute("PRAGMA page_count").fetchone()[0]
        engine.store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL from here
        report = engine.sync()
        holder = engine.store.lock.holder()
    assert (report.status, report.exit_code) == ("failed", 4)
    assert "disk is full" in report.message and "state.db" in report.message
    assert holder is None


# ---- 6. who may read the state DB and plan files -------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_db_its_wal_and_its_folder_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "new-folder" / "state.db"
        with StateStore(path) as store:
            store.cursors.set_watermark("hubspot", "contacts", datetime.now(UTC))
            modes = {p.name: _mode(p) for p in path.parent.iterdir()}
            folder = _mode(path.parent)
    finally:
        os.umask(old)
    assert modes == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}
    assert folder == 0o700


def test_existing_wal_files_are_made_private(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path).close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").touch()
        Path(f"{path}{suffix}").chmod(0o644)
    with StateStore(path):
        assert _mode(Path(f"{path}-wal")) == 0o600
        assert _mode(Path(f"{path}-shm")) == 0o600


def test_a_saved_plan_file_is_private(sandbox, tmp_path):
    env_file = write_env(sandbox, tmp_path)
    done = cli("plan", "-o", str(tmp_path / "plan.json"), cwd=tmp_path, env_file=env_file,
               state=tmp_path / "state.db")
    assert done.returncode in (0, 1), done.stderr
    assert _mode(tmp_path / "plan.json") == 0o600


# ---- 8. search lag ------------------------------------------------------------------------------


def test_the_sync_watermark_stays_a_safety_lag_behind_the_run_start(sandbox, state_location):
    with engine_for(sandbox, state_location, hubspot_safety_lag_seconds=900) as engine:
        backfill = engine.backfill()
        edit_across_systems(sandbox)
        sync = engine.sync()
        marks = {(s, o): v for s, o, kind, v, _ in engine.store.cursors.watermarks()
                 if kind == "sync"}
        again = engine.sync()
    lags = {"hubspot": timedelta(seconds=900), "salesforce": timedelta(seconds=600)}
    started = datetime.fromisoformat(sync.started_at)
    assert datetime.fromisoformat(backfill.started_at) < started
    for (system, obj), value in marks.items():
        assert value is not None and value <= started - lags[system], (system, obj, value)
    assert again.read["hubspot.contacts"] > 0  # the lag window is read again...
    assert (again.planned, again.applied) == (0, 0)  # ...and the mirror makes it no change


# ---- 9. secrets ---------------------------------------------------------------------------------


def test_every_text_the_store_saves_is_scrubbed_of_registered_secrets(tmp_path):
    secret = "sk-test-3f9a8b7c6d5e"
    register_secret(secret)
    with StateStore(tmp_path / "state.db") as store:
        run = store.journal.start_run("sync")
        ref = Change(System("salesforce"), "Lead", "00Q1", "Status", "a", "b", "r", "x").ref
        store.ledger.reject(str(ref), "write", f"server said: token {secret} is invalid", run,
                            "Status")
        store.journal.audit(run, ref, "Status", "a", "b", f"rule quoting {secret}")
        store.journal.audit_many(run, [(ref, "Status", "a", "b", f"again {secret}")])
        store.journal.finish_run(run, "failed", {}, {}, f"HTTP 401 for {secret}")
        texts = [r.reason for r in store.ledger.open()]
        texts += [e.rule or "" for e in store.journal.entries(run)]
        texts += [r.message or "" for r in store.journal.runs()]
        dump = "\n".join(store.db.iterdump())
    assert all("***" in text for text in texts)
    assert secret not in dump
