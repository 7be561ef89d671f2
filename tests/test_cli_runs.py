"""The run commands as users and schedulers call them: real processes, kill -9, exit codes."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connector.demo import make_edits
from connector.sandbox import Sandbox
from connector.state import StateStore
from connector.sync import OBJECTS
from tests.runs import (
    account_backfilled,
    cli,
    returned,
    run_to_end,
    snapshot,
    write_env,
    written,
)

SEED = 30
SLOW = "*:slow=1.0,delay=0.03"  # every request takes a little while: room to kill mid-run


def _prepare(kind: str, sandbox: Sandbox, state: Path | str, today: date) -> None:
    if kind == "sync":
        run_to_end("backfill", sandbox, state)
        make_edits(sandbox, today)
        for account in sandbox.salesforce_records("Account")[:5]:
            sandbox.update_salesforce("Account", account["Id"],
                                      {"Expansion_Date__c": today.isoformat()})


KILL_POINTS: dict[str, tuple[str, Callable[[Sandbox, int], bool]]] = {
    "backfill-reading": ("backfill", lambda sb, base: returned(sb) - base >= 150),
    "backfill-writing": ("backfill", lambda sb, base: written(sb) - base >= 60),
    "backfill-late-writing": ("backfill", lambda sb, base: written(sb) - base >= 120),
    "sync-reading": ("sync", lambda sb, base: returned(sb) - base >= 100),
    "sync-writing": ("sync", lambda sb, base: written(sb) - base >= 3),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_kill_9_then_rerun_ends_where_an_uninterrupted_run_ends(point, tmp_path, state_location):
    kind, reached = KILL_POINTS[point]
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()
    with Sandbox(seed=SEED, now=now) as reference:
        _prepare(kind, reference, tmp_path / "reference.db", today)
        run_to_end(kind, reference, tmp_path / "reference.db")
        expected = snapshot(reference)

    with Sandbox(seed=SEED, now=now) as sandbox:
        state = state_location
        _prepare(kind, sandbox, state, today)
        env_file = write_env(sandbox, tmp_path)
        with StateStore(state) as store:
            prepared = max((r.id for r in store.journal.runs()), default=0)
        sandbox.set_faults(SLOW)
        base_returned, base_written = returned(sandbox), written(sandbox)
        process = cli(kind, cwd=tmp_path, env_file=env_file, state=state, popen=True)
        base = base_returned if "reading" in point else base_written
        deadline = time.monotonic() + 120
        while not reached(sandbox, base) and process.poll() is None:
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.005)
        assert process.poll() is None, f"finished before the kill point: {process.stderr.read()}"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        sandbox.set_faults(None)

        rerun = cli(kind, "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert rerun.returncode in (0, 1), rerun.stderr
        assert snapshot(sandbox) == expected

        with StateStore(state) as store:
            statuses = [r.status for r in store.journal.runs()]
            assert "interrupted" in statuses
            afters: dict[tuple, set] = {}
            for run in store.journal.runs(100):
                if run.id <= prepared:
                    continue  # only the killed run and its rerun are one intended change
                for entry in store.journal.entries(run.id):
                    key = (str(entry.ref), entry.field)
                    if key[1] == "lifecyclestage" and entry.after == "":
                        continue  # the clear half of a clear-then-set
                    afters.setdefault(key, set()).add(json.dumps(entry.after))
        twice = {k: v for k, v in afters.items() if len(v) > 1}
        assert not twice, f"fields written with different values: {twice}"


def test_backfill_resumes_with_the_objects_not_yet_done(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        sandbox.set_faults(SLOW)
        process = cli("backfill", cwd=tmp_path, env_file=env_file, state=state, popen=True)
        deadline = time.monotonic() + 120
        while not account_backfilled(state):  # HubSpot and Account done, the rest not yet
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        sandbox.set_faults(None)
        rerun = cli("backfill", "--json", cwd=tmp_path, env_file=env_file, state=state)
        report = json.loads(rerun.stdout)
        assert rerun.returncode == 0, rerun.stderr
        # HubSpot and the first Salesforce object (one query) were done before the kill
        skipped = {f"hubspot.{o}" for o in OBJECTS["hubspot"]} | {"salesforce.Account"}
        assert skipped.isdisjoint(report["read"]), report["read"]
        assert "salesforce.Opportunity" in report["read"]
        with StateStore(state) as store:
            assert all(store.cursors.watermark(s, o) is not None
                       for s, objs in OBJECTS.items() for o in objs)


def test_exit_codes_reports_status_and_rejects_from_the_cli(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        backfill = cli("backfill", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert backfill.returncode == 0, backfill.stderr
        assert json.loads(backfill.stdout)["status"] == "ok"
        lead = next(r for r in sandbox.salesforce_records("Lead") if not r.get("IsConverted"))
        sandbox.update_salesforce("Lead", lead["Id"], {"Status": "Nurturing"})
        sync = cli("sync", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert sync.returncode == 1
        rejects = cli("rejects", "--json", cwd=tmp_path, state=state)
        [reject] = json.loads(rejects.stdout)
        assert reject["record"] == f"salesforce:Lead:{lead['Id']}"
        status = cli("status", "--json", cwd=tmp_path, state=state)
        data = json.loads(status.stdout)
        assert [r["kind"] for r in data["runs"]] == ["sync", "backfill"]
        assert data["open_rejects"] == {"read": 1}
        text = cli("status", cwd=tmp_path, state=state)
        assert "open rejects: read 1" in text.stdout
        missing = cli("status", cwd=tmp_path, state=tmp_path / "nope.db")
        assert missing.returncode == 2 and "no state DB" in missing.stderr


def test_a_malformed_mapping_stops_before_any_read(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "picklists:\n  salesforce:\n    Lead:\n      Status:\n        values: {A: leed}\n"
    )
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        sandbox.reset_counters()
        result = cli("sync", "--mapping", str(bad), cwd=tmp_path, env_file=env_file,
                     state=tmp_path / "state.db")
        assert result.returncode == 2
        assert f"{bad}:5:21: unknown canonical stage 'leed'" in result.stderr
        assert sandbox.counters()["total_requests"] == 0


def test_missing_credentials_are_a_configuration_error(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = cli("sync", cwd=tmp_path, env_file=empty, state=tmp_path / "s.db")
    assert result.returncode == 2
    assert "CRMSYNC_HUBSPOT_ACCESS_TOKEN" in result.stderr


def test_secrets_never_reach_logs_reports_plans_or_the_state_db(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        outputs = []
        for args in (("backfill", "--json", "--log-format", "json"),
                     ("sync", "--log-format", "json"),
                     ("plan", "-o", str(tmp_path / "plan.json"), "--json")):
            result = cli(*args, cwd=tmp_path, env_file=env_file, state=state)
            assert result.returncode in (0, 1), result.stderr
            outputs += [result.stdout, result.stderr]
        assert any('"level": "info"' in o for o in outputs)  # JSON log lines were written
        outputs.append(cli("status", "--json", cwd=tmp_path, state=state).stdout)
        sandbox.expire_salesforce_sessions()
        bad = env_file.read_text().replace(sandbox.salesforce_client_secret, "wrong-secret-123")
        (tmp_path / "bad.env").write_text(bad)
        failed = cli("sync", cwd=tmp_path, env_file=tmp_path / "bad.env", state=state)
        assert failed.returncode in (2, 4)
        outputs += [failed.stdout, failed.stderr]
        secrets = [sandbox.hubspot_access_token, sandbox.salesforce_client_secret,
                   "wrong-secret-123", *sandbox._state._sessions]  # issued session tokens
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
        stored += (tmp_path / "plan.json").read_bytes()
        for secret in secrets:
            assert len(secret) >= 8
            assert all(secret not in text for text in outputs), secret
            assert secret.encode() not in stored, secret


def test_demo_runs_end_to_end(tmp_path):
    result = cli("demo", "--seed", "30", "--state", str(tmp_path / "demo.db"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1. Backfill" in result.stdout
    assert "3. Incremental sync" in result.stdout
    assert "unknown Lead.Status 'Nurturing': 1 record(s) -> add it under" in result.stdout
    assert "4. One more sync: 0 change(s) planned, 0 written" in result.stdout


def test_apply_refuses_a_file_that_is_not_a_plan(tmp_path):
    not_a_plan = tmp_path / "plan.json"
    not_a_plan.write_text('{"changes": []}')
    result = cli("apply", str(not_a_plan), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{not_a_plan}: cannot read plan: not a crmsync plan" in result.stderr
    missing = cli("apply", str(tmp_path / "missing.json"), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_sigterm_stops_cleanly_with_exit_3_and_the_rerun_continues(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        sandbox.set_faults(SLOW)
        process = cli("backfill", "--json", cwd=tmp_path, env_file=env_file, state=state,
                      popen=True)
        deadline = time.monotonic() + 120
        while not account_backfilled(state):  # HubSpot is committed as read, the rest is not
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 3
        report = json.loads(out)
        assert report["status"] == "stopped" and "Rerun to continue" in report["message"]
        with StateStore(state) as store:
            assert store.journal.runs()[0].status == "stopped"
            assert store.lock.holder() is None  # released, not left for the stale check
        sandbox.set_faults(None)
        rerun = cli("backfill", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert rerun.returncode == 0, rerun.stderr
        assert "hubspot.contacts" not in json.loads(rerun.stdout)["read"]
