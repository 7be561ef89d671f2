"""`crmsync history RECORD`: every change crmsync made to a person's or organisation's
records, run by run, with before and after, rule, reason and what became of the write, from
the audit log, as a person reads it in a terminal or a pipe."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from connector.state import StateStore
from tests.record_story import Story, story
from tests.runs import ROOT


@pytest.fixture(scope="module")
def told(tmp_path_factory) -> Story:
    with story(tmp_path_factory.mktemp("history")) as told:
        yield told


def _runs(text: str) -> list[tuple[int, str]]:
    """(run id, kind) of each run heading, in the order printed."""
    return [(int(m[1]), m[2]) for m in re.finditer(r"^run (\d+) (\w+) ", text, re.M)]


def test_history_lists_each_run_with_its_before_and_after_in_order(told):
    result = told.run("history", told.hubspot_ref, state=told.synced)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # the backfill (run 1) and the sync (run 3); the dry run (2) wrote nothing, so no entry
    assert _runs(out) == [(1, "backfill"), (3, "sync")]
    backfill, sync = out.split("\nrun 3 sync ")
    for ref in (told.hubspot_ref, told.salesforce_ref):
        system, obj, record_id = ref.split(":")
        for name, (before, after) in told.backfill[ref].items():
            assert f"{system} {obj} {record_id} {name}: {before!r} -> {after!r}  applied" \
                in backfill, (ref, name)
    record_id = told.salesforce_ref.rsplit(":", 1)[1]
    before, after = told.sync[told.salesforce_ref]["Lifecycle_Stage__c"]
    assert after == "SQL"
    change = f"salesforce Contact {record_id} Lifecycle_Stage__c: {before!r} -> 'SQL'  applied"
    assert change in sync
    lines = sync.splitlines()
    at = next(i for i, line in enumerate(lines) if change in line)
    assert lines[at + 1].strip().startswith("because stage sql: ")
    assert re.match(r"rule write_back\.salesforce\.Contact\.Lifecycle_Stage__c "
                    r"\(default\.yaml:\d+\) <- ", lines[at + 2].strip()), lines[at + 2]
    # plain lines in a pipe: no table borders
    assert not set("│┃┏━") & set(out)


def test_history_of_an_email_is_the_whole_persons_and_json_has_each_change(told):
    result = told.run("history", told.email, "--json", state=told.synced)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["records"] == sorted([told.hubspot_ref, told.salesforce_ref])
    assert [(run["run"], run["kind"], run["dry_run"]) for run in report["runs"]] == \
        [(1, "backfill", False), (3, "sync", False)]
    changes = [(c["record"], c["field"], c["before"], c["after"], c["status"])
               for run in report["runs"] for c in run["changes"]]
    expected_backfill = [(ref, name, before, after, "applied")
                         for ref in (told.hubspot_ref, told.salesforce_ref)
                         for name, (before, after) in told.backfill[ref].items()]
    assert sorted(c for c in changes if c in expected_backfill) == sorted(expected_backfill)
    stage = next(c for run in report["runs"] for c in run["changes"]
                 if c["field"] == "Lifecycle_Stage__c")
    assert stage["after"] == "SQL" and stage["reason"].startswith("stage sql: ")
    assert "(default.yaml:" in stage["rule"]


def test_a_rolled_back_run_shows_as_rolled_back_and_the_rollback_as_a_run(told):
    state = told.copy_of(told.synced, "rolled-back.db")
    rollback = told.run("rollback", "3", state=state)
    assert rollback.returncode == 0, rollback.stderr
    result = told.run("history", told.salesforce_ref, state=state)
    assert result.returncode == 0, result.stderr
    assert _runs(result.stdout) == [(1, "backfill"), (3, "sync"), (4, "rollback")]
    record_id = told.salesforce_ref.rsplit(":", 1)[1]
    before = told.sync[told.salesforce_ref]["Lifecycle_Stage__c"][0]
    assert (f"salesforce Contact {record_id} Lifecycle_Stage__c: {before!r} -> 'SQL'  "
            "rolled back by run 4") in result.stdout
    assert (f"salesforce Contact {record_id} Lifecycle_Stage__c: 'SQL' -> {before!r}  "
            "applied") in result.stdout
    assert "rule rollback of run 3" in result.stdout


def test_writes_that_did_not_go_through_show_their_status(told):
    """An interrupted run's unresolved intent, and a write the CRM refused."""
    state = told.copy_of(told.synced, "statuses.db")
    record_id = told.salesforce_ref.rsplit(":", 1)[1]
    with StateStore(state) as store, store.transaction():
        run = store.journal.start_run("sync")
        [first, _unresolved] = store.journal.record_intents(run, 1, [_change(record_id, "Lead"),
                                                                _change(record_id, "MQL")])
        store.journal.resolve_intents([(first, "rejected")])
    result = told.run("history", told.salesforce_ref, state=state)
    assert result.returncode == 0, result.stderr
    assert "Lifecycle_Stage__c: 'SQL' -> 'Lead'  rejected by salesforce" in result.stdout
    assert ("Lifecycle_Stage__c: 'SQL' -> 'MQL'  intended (the run ended before salesforce "
            "answered") in result.stdout
    assert "because a test says so" in result.stdout


def _change(record_id: str, after: str):
    from connector.model import Change, System  # noqa: PLC0415

    return Change(System.SALESFORCE, "Contact", record_id, "Lifecycle_Stage__c", "SQL", after,
                  "a test rule (test.yaml:1)", "a test says so")


def test_a_record_crmsync_never_changed_says_so(told):
    result = told.run("history", told.nurturing_lead, state=told.synced)
    assert result.returncode == 0, result.stderr
    assert f"crmsync has not changed {told.nurturing_lead}" in result.stdout


def test_unknown_record_is_a_clear_error_naming_the_state_db(told):
    result = told.run("history", "salesforce:Contact:003NOSUCH", state=told.synced)
    assert result.returncode == 2
    assert "no record salesforce:Contact:003NOSUCH" in result.stderr
    assert str(told.synced) in result.stderr


def test_history_in_a_terminal_is_a_table(told):
    """stdout a terminal: a table per run; the same facts as the plain lines."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="160", LINES="50", TERM="xterm")
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "history", told.salesforce_ref,
         "--state", str(told.synced), "--env-file", str(told.env_file)],
        cwd=told.folder, env=env, stdin=secondary, stdout=secondary, stderr=subprocess.PIPE)
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    process.wait(30)
    os.close(primary)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
    assert process.returncode == 0, process.stderr.read()
    assert "│" in text or "┃" in text, text
    assert "run 3 sync" in text
    assert "Lifecycle_Stage__c" in text and "'SQL'" in text


def test_a_records_history_is_read_through_the_audit_record_index(told):
    """However long the audit log grows, one record's history reads only its own rows."""
    from connector.state import parse_ref  # noqa: PLC0415

    with StateStore(told.synced) as store:
        statements: list[str] = []
        store.db.set_trace_callback(statements.append)
        entries = store.journal.history([parse_ref(told.salesforce_ref)])
        store.db.set_trace_callback(None)
        plans = [store.db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                 for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    assert {str(e.ref) for e in entries} == {told.salesforce_ref}
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert plans and all("USING INDEX audit_record" in str(plan) for plan in plans), plans
