"""Salesforce writes through Bulk API 2.0 against sObject Collections, end to end: the same
final CRM state and the same audit from both paths; a run killed after a job's UploadComplete,
or stopped while a job stalls, is collected by the next run without a second job; `status`
lists open jobs; progress shows each job's state and records processed.

Kills are real SIGKILLs of a real `crmsync backfill`, sent by the sandbox from inside the
request that closed the job (after it was served), as tests/test_audit_intents.py does."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.model import Change, System
from connector.runtime import RichProgress, open_engine
from connector.sandbox import Sandbox
from connector.settings import Settings
from connector.state import MIGRATIONS, StateStore
from connector.sync import Progress, write
from connector.sync.write import _record_slices
from tests.helpers import FAST_RETRIES, engine_for, linked_early_contact
from tests.runs import cli, snapshot, write_env

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SEED = 60
# Bulk for every Salesforce write and backfill read, against neither
BULK = {"salesforce_bulk_min_records": 1, "salesforce_bulk_poll_seconds": 0.05,
        "salesforce_bulk_query_min_records": 1}
COLLECTIONS = {"salesforce_bulk_min_records": 0, "salesforce_bulk_query_min_records": 0}
BULK_ENV = [f"CRMSYNC_{name.upper()}={value}" for name, value in BULK.items()]


def salesforce_state(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """Every Salesforce record, all fields but the modification stamps."""
    return {f"{sobject}:{r['Id']}": {k: v for k, v in r.items()
                                     if k not in ("SystemModstamp", "LastModifiedDate")}
            for sobject in ("Account", "Contact", "Lead", "Opportunity")
            for r in sandbox.salesforce_records(sobject)}


def audit(state: Path) -> Counter:
    """The audit log as (record, field, before, after, status, step), run and time aside."""
    with closing(sqlite3.connect(state)) as db:
        return Counter(db.execute("SELECT system, object_type, record_id, field, before, after, "
                                  "status, step FROM audit").fetchall())


def bulk_jobs(state: Path) -> list[tuple]:
    with closing(sqlite3.connect(state)) as db:
        return db.execute("SELECT job_id, object_type, run_id, state, records, collected_at "
                          "FROM bulk_jobs ORDER BY created_at").fetchall()


def bulk_env(sandbox: Sandbox, folder: Path, *extra: str) -> Path:
    env_file = write_env(sandbox, folder)
    with env_file.open("a") as out:
        out.write("\n".join([*BULK_ENV, *extra]) + "\n")
    return env_file


def uninterrupted(folder: Path) -> tuple[dict, dict, dict[str, Any]]:
    """What an uninterrupted Bulk backfill of a twin org leaves: (snapshot, Salesforce
    records, sandbox counters)."""
    with Sandbox(seed=SEED, now=NOW) as twin:
        folder.mkdir()
        run = cli("backfill", cwd=folder, env_file=bulk_env(twin, folder),
                  state=folder / "state.db")
        assert run.returncode in (0, 1), run.stderr
        return snapshot(twin), salesforce_state(twin), twin.counters()


# ---- the two paths --------------------------------------------------------------------------


def test_the_two_write_paths_leave_the_same_crm_state_and_the_same_audit(tmp_path, monkeypatch):
    monkeypatch.setattr(write, "RECORDED_AT_ONCE", 25)  # a job's outcomes in many slices
    reports, states, audits, counters = {}, {}, {}, {}
    for path, settings in (("collections", COLLECTIONS), ("bulk", BULK)):
        # query batches of 50: every object takes more than one, so the Bulk path reads
        # them through query jobs
        with Sandbox(seed=SEED, now=NOW, salesforce_query_batch=50) as sandbox:
            state = tmp_path / f"{path}.db"
            with engine_for(sandbox, state, reread_older_than_seconds=0, **settings) as engine:
                reports[path] = engine.backfill()
            states[path] = (snapshot(sandbox), salesforce_state(sandbox))
            audits[path] = audit(state)
            counters[path] = sandbox.counters()
    bulk, collections = reports["bulk"], reports["collections"]
    assert bulk.exit_code == collections.exit_code == 0, (bulk.message, collections.message)
    assert (bulk.applied, bulk.write_rejected, bulk.retry_later) == (
        collections.applied, collections.write_rejected, collections.retry_later)
    assert collections.bulk_jobs == 0 and bulk.bulk_jobs >= 3
    assert states["bulk"] == states["collections"]
    assert audits["bulk"] == audits["collections"]
    assert sum(audits["bulk"].values()) == bulk.applied > 0
    written = {path: c["records_written"] for path, c in counters.items()}
    assert written["bulk"].get("salesforce.bulk_ingest", 0) > 0
    assert "salesforce.bulk_ingest" not in written["collections"]
    requests = {path: c["requests"] for path, c in counters.items()}
    assert requests["bulk"].get("salesforce.composite", 0) < \
        requests["collections"]["salesforce.composite"]
    assert requests["bulk"]["salesforce.bulk_query"] > 0  # the reads went through query jobs
    assert "salesforce.bulk_query" not in requests["collections"]


def test_a_dry_run_sends_no_job_and_asks_no_limits(tmp_path):
    with Sandbox(seed=SEED, now=NOW) as sandbox, \
            engine_for(sandbox, tmp_path / "state.db", **BULK) as engine:
        report = engine.backfill(dry_run=True)
        assert report.status == "ok" and report.planned > 0
        requests = sandbox.counters()["requests"]
        assert "salesforce.bulk_ingest" not in requests
        assert "salesforce.limits" not in requests
        assert report.bulk_jobs == 0


# ---- a run that stops while a job runs ------------------------------------------------------


def test_a_run_killed_after_upload_complete_is_collected_by_the_next_run_without_a_second_job(
        tmp_path):
    expected_snapshot, expected_salesforce, expected_counters = uninterrupted(tmp_path / "twin")
    with Sandbox(seed=SEED, now=NOW) as sandbox:
        state = tmp_path / "state.db"
        env_file = bulk_env(sandbox, tmp_path)
        process = cli("backfill", cwd=tmp_path, env_file=env_file, state=state, popen=True)

        def kill_while_the_job_waits() -> None:
            sandbox.set_bulk_processing(paused=True)  # the org's queue is busy
            os.kill(process.pid, signal.SIGKILL)

        # create, upload, UploadComplete: killed once the org has the job closed
        sandbox.after_request("salesforce.bulk_ingest", 3, kill_while_the_job_waits)
        process.wait(180)
        assert process.returncode == -signal.SIGKILL, process.stderr.read()
        # the queue moves again once the rerun reaches the Bulk API, not before: a rerun
        # that read the records back first would find them unwritten and send them again
        sandbox.before_request("salesforce.bulk_ingest", 1,
                               lambda: sandbox.set_bulk_processing(paused=False))
        [(job_id, sobject, killed, job_state, records, collected)] = bulk_jobs(state)
        assert (job_state, collected) == ("Open", None)  # it died before hearing the answer
        with StateStore(state) as store:
            pending = [e for e in store.journal.intents(killed)
                       if e.ref.object_type == sobject]
        assert len({e.ref.record_id for e in pending}) == records

        rerun = cli("backfill", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert rerun.returncode in (0, 1), rerun.stderr
        report = json.loads(rerun.stdout)
        assert report["intents_resolved"] == {"applied": len(pending), "not_applied": 0}
        assert f"collected 1 Bulk job(s) of an interrupted run ({job_id} JobComplete)" in \
            rerun.stderr
        jobs = bulk_jobs(state)
        assert [j[1] for j in jobs].count(sobject) == 1  # no second job for those records
        assert all(j[5] is not None for j in jobs)
        with StateStore(state) as store:
            made = store.journal.entries(killed)
        assert {(str(e.ref), e.field) for e in made} >= {(str(e.ref), e.field) for e in pending}
        assert snapshot(sandbox) == expected_snapshot
        assert salesforce_state(sandbox) == expected_salesforce
        assert sandbox.counters()["records_written"]["salesforce.bulk_ingest"] == \
            expected_counters["records_written"]["salesforce.bulk_ingest"]


def test_a_stalled_job_stops_the_run_status_lists_it_and_the_next_run_collects_it(tmp_path):
    expected_snapshot, expected_salesforce, expected_counters = uninterrupted(tmp_path / "twin")
    with Sandbox(seed=SEED, now=NOW) as sandbox:
        state = tmp_path / "state.db"
        env_file = bulk_env(sandbox, tmp_path, "CRMSYNC_SALESFORCE_BULK_MAX_WAIT_SECONDS=0.5",
                            "CRMSYNC_SALESFORCE_BULK_QUERY_MIN_RECORDS=0")  # reads go through
        sandbox.set_bulk_processing(paused=True)
        stopped = cli("backfill", cwd=tmp_path, env_file=env_file, state=state)
        assert stopped.returncode == 3, stopped.stderr
        [(job_id, sobject, _, job_state, records, _)] = bulk_jobs(state)
        assert job_state == "UploadComplete"
        assert f"Bulk job {job_id} is still UploadComplete" in stopped.stderr
        assert "the next run collects its results" in stopped.stderr

        status = cli("status", cwd=tmp_path, env_file=env_file, state=state)
        assert status.returncode == 0, status.stderr
        assert "open Bulk API jobs: 1" in status.stdout
        assert job_id in status.stdout and "UploadComplete" in status.stdout
        assert f"salesforce.{sobject}" in status.stdout
        listed = json.loads(cli("status", "--json", cwd=tmp_path, env_file=env_file,
                                state=state).stdout)["bulk_jobs"]
        assert [(j["job_id"], j["state"], j["processed"], j["records"]) for j in listed] == [
            (job_id, "UploadComplete", 0, records)]

        sandbox.set_bulk_processing(paused=False)
        rerun = cli("backfill", cwd=tmp_path, env_file=env_file, state=state)
        assert rerun.returncode in (0, 1), rerun.stderr
        after = json.loads(cli("status", "--json", cwd=tmp_path, env_file=env_file,
                               state=state).stdout)
        assert after["bulk_jobs"] == []
        assert [j[1] for j in bulk_jobs(state)].count(sobject) == 1
        assert snapshot(sandbox) == expected_snapshot
        assert salesforce_state(sandbox) == expected_salesforce
        assert sandbox.counters()["records_written"]["salesforce.bulk_ingest"] == \
            expected_counters["records_written"]["salesforce.bulk_ingest"]


# ---- what a person sees ---------------------------------------------------------------------


class Recording(Progress):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start(self, key: str, total: int | None = None) -> None:
        self.calls.append(("start", key, total))

    def advance(self, key: str, count: int) -> None:
        self.calls.append(("advance", key, count))

    def status(self, key: str, text: str) -> None:
        self.calls.append(("status", key, text))


def test_progress_shows_each_jobs_state_and_the_records_it_processed(tmp_path):
    progress = Recording()
    with Sandbox(seed=SEED, now=NOW) as sandbox:
        settings = Settings.from_env_map(sandbox.settings_env(), state_path=tmp_path / "s.db",
                                         **FAST_RETRIES, **BULK)
        with open_engine(settings=settings, progress=progress) as engine:
            sandbox.set_bulk_processing(chunk_seconds=0.05)
            report = engine.backfill()
    assert report.bulk_jobs >= 3
    jobs = {key: total for kind, key, total in progress.calls
            if kind == "start" and " Bulk job 750" in key}
    assert len(jobs) == report.bulk_jobs
    for key, total in jobs.items():
        states = [text for kind, k, text in progress.calls if kind == "status" and k == key]
        assert states[0] == "Open" and states[-1] == "JobComplete", states
        assert "UploadComplete" in states or "InProgress" in states
        assert sum(n for kind, k, n in progress.calls if kind == "advance" and k == key) == total


def test_the_progress_bar_label_carries_the_jobs_state():
    bars = RichProgress()
    bars.start("salesforce.Lead Bulk job 750Dn0000000001AAA", total=10)
    bars.status("salesforce.Lead Bulk job 750Dn0000000001AAA", "InProgress")
    assert [t.description for t in bars.bars.tasks] == [
        "salesforce.Lead Bulk job 750Dn0000000001AAA: InProgress"]


def test_an_edit_made_after_the_read_survives_a_bulk_write(tmp_path, caplog):
    """As tests/test_engine_hardening.py's collections case: the Contact is set to Evangelist
    after the run read it; the Bulk path's re-read (what changed since the read) finds it."""
    with Sandbox(seed=SEED) as sandbox, \
            engine_for(sandbox, tmp_path / "state.db", **BULK) as engine:
        engine.backfill()
        contact = linked_early_contact(sandbox)
        sf_id = contact["properties"]["salesforcecontactid"]
        sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "opportunity"})
        offset = timedelta()

        class AfterReading(Progress):
            def finish(self, key: str) -> None:
                nonlocal offset
                if key == "salesforce.Opportunity":
                    sandbox.update_salesforce("Contact", sf_id,
                                              {"Lifecycle_Stage__c": "Evangelist"})
                    offset = timedelta(minutes=1)

        engine.clock = lambda: datetime.now(UTC) + offset
        engine.progress = AfterReading()
        caplog.set_level("INFO", logger="crmsync.sync")
        report = engine.sync()
        assert sandbox.salesforce_record("Contact", sf_id)["Lifecycle_Stage__c"] == "Evangelist"
        assert report.reread_changed == 1  # found by the Bulk path's re-read:
        assert any(r.getMessage().startswith("salesforce.Contact: ") and "Bulk API 2.0 jobs" in
                   r.getMessage() for r in caplog.records)
        assert not any(c["record_id"] == sf_id and c["status"] == "applied"
                       for c in report.changes)


def test_outcomes_are_recorded_in_slices_that_keep_a_records_changes_together():
    def change(record: str, field: str) -> tuple[int, Change]:
        return 0, Change(system=System.SALESFORCE, object_type="Lead", record_id=record,
                         field=field, before=None, after="x", rule="r", reason="r")

    batch = [change("a", "f"), change("a", "g"), change("b", "f"), change("c", "f"),
             change("c", "g"), change("c", "h"), change("d", "f")]
    assert list(_record_slices(batch, 2)) == [(0, 3), (3, 7)]
    assert list(_record_slices(batch, 1)) == [(0, 2), (2, 3), (3, 6), (6, 7)]
    assert list(_record_slices(batch, 10)) == [(0, 7)]
    assert list(_record_slices([], 10)) == []


# ---- the state DB ---------------------------------------------------------------------------


def test_jobs_are_kept_open_until_collected_and_a_run_does_not_see_its_own(tmp_path):
    with StateStore(tmp_path / "state.db") as store:
        with store.transaction():
            store.jobs.opened("750A", "salesforce", "Lead", 4, 2, 5_000)
            store.jobs.opened("750B", "salesforce", "Contact", 5, 1, 300, step=0)
            store.jobs.seen("750A", "InProgress", 1_200, 3)
        assert [j.job_id for j in store.jobs.open()] == ["750A", "750B"]
        assert [j.job_id for j in store.jobs.open(not_run=5)] == ["750A"]
        job = store.jobs.get("750A")
        assert job is not None
        assert (job.state, job.processed, job.failed, job.batch) == ("InProgress", 1_200, 3, 2)
        with store.transaction():
            store.jobs.collected("750A", "JobComplete")
        assert [j.job_id for j in store.jobs.open()] == ["750B"]
        assert store.jobs.get("750A").collected_at is not None  # type: ignore[union-attr]


def test_a_state_db_of_the_previous_schema_gains_the_jobs_table(tmp_path):
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:
        jobs = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE bulk_jobs" in m)
        for version, migration in enumerate(MIGRATIONS[:jobs], start=1):
            db.executescript(migration)
            db.execute(f"PRAGMA user_version = {version}")
        db.commit()
        assert "bulk_jobs" not in {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    with StateStore(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.jobs.open() == []


@pytest.mark.parametrize("value", ["-1", "abc"])
def test_a_bad_threshold_is_a_configuration_error_naming_the_setting(tmp_path, value):
    with Sandbox(seed=1, now=NOW) as sandbox:
        env_file = bulk_env(sandbox, tmp_path, f"CRMSYNC_SALESFORCE_BULK_MIN_RECORDS={value}")
        run = cli("sync", cwd=tmp_path, env_file=env_file, state=tmp_path / "state.db")
    assert run.returncode == 2
    assert "CRMSYNC_SALESFORCE_BULK_MIN_RECORDS" in run.stderr


def test_the_bulk_benchmark_still_runs_and_finds_both_paths_identical():
    """`python -m bench --smoke --only bulk` (a few thousand records): the figures in
    bench/RESULTS.md come from the same code at full size."""
    completed = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--only", "bulk"],
                               capture_output=True, text=True, timeout=300, check=False,
                               cwd=Path(__file__).resolve().parents[1])
    assert completed.returncode == 0, completed.stderr[-2000:]
    out = completed.stdout
    assert "## Salesforce backfill: collections against Bulk API 2.0" in out
    identical = [line for line in out.splitlines() if line.startswith(("| final", "| audit"))]
    assert len(identical) == 2 and all(line.rstrip(" |").endswith("yes") for line in identical)
