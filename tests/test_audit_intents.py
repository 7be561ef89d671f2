"""Audit before write: a change that reached a CRM is in the audit log with its run's id, even
when crmsync died between the CRM accepting the batch and crmsync hearing the answer.

The kill is a real SIGKILL of a real `crmsync backfill` process, sent by the sandbox from inside
the request: after it has applied the batch and built its answer, before the answer leaves
(`Sandbox.after_request`). So the CRM holds the batch, and the client never learns it did.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from connector.model import Change, System
from connector.plan import same_value
from connector.sandbox import Sandbox
from connector.state import StateStore
from tests.runs import cli, snapshot, write_env

SEED = 30
FIRST_WRITE = "hubspot.batch_update"  # hubspot objects are written first


def _kill(pid: int) -> Callable[[], None]:
    return lambda: os.kill(pid, signal.SIGKILL)


def _killed_backfill(sandbox: Sandbox, folder: Path, state: Path | str, *,
                     after: bool) -> int:
    """Run `crmsync backfill` and kill it at its first write request: once the sandbox applied
    it (`after`), or as it arrives (the caller makes the sandbox refuse it); returns the killed
    run's id."""
    env_file = write_env(sandbox, folder)
    process = cli("backfill", cwd=folder, env_file=env_file, state=state, popen=True)
    hook = sandbox.after_request if after else sandbox.before_request
    hook(FIRST_WRITE, 1, _kill(process.pid))
    process.wait(180)
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    with StateStore(state) as store:
        [run] = store.journal.runs()
    return run.id


def _changed(before: dict[str, dict], after: dict[str, dict]) -> dict[tuple[str, str], tuple]:
    return {(ref, name): (values[name], after[ref][name])
            for ref, values in before.items() for name in values
            if values[name] != after[ref][name]}


def test_changes_a_crm_accepted_before_a_kill_are_audited_with_the_killed_run(tmp_path,
                                                                              state_location):
    with Sandbox(seed=SEED) as sandbox:
        state = state_location
        untouched = snapshot(sandbox)
        killed = _killed_backfill(sandbox, tmp_path, state, after=True)
        accepted = _changed(untouched, snapshot(sandbox))
        assert accepted, "the first batch changed nothing: the test proves nothing"

        env_file = tmp_path / "sandbox.env"
        rerun = cli("backfill", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert rerun.returncode in (0, 1), rerun.stderr
        with StateStore(state) as store:
            audited = {(str(e.ref), e.field): (e.before, e.after)
                       for e in store.journal.entries(killed)}
        missing = sorted(set(accepted) - set(audited))
        assert not missing, f"{len(missing)} of {len(accepted)} accepted changes not audited " \
                            f"for run {killed}, e.g. {missing[:3]}"
        for key, (before, after) in accepted.items():
            assert same_value(audited[key][0], before) and audited[key][1] == after, key
        assert set(audited) <= set(accepted), "audited as applied but not in the CRM"

        rollback = cli("rollback", str(killed), "--json", cwd=tmp_path, env_file=env_file,
                       state=state)
        assert rollback.returncode in (0, 1), rollback.stderr
        restored = snapshot(sandbox)
        not_restored = {key: restored[key[0]][key[1]] for key, (before, _) in accepted.items()
                        if restored[key[0]][key[1]] != before}
        assert not not_restored, f"rollback left {len(not_restored)} field(s): {not_restored}"


def test_a_batch_killed_before_it_was_sent_is_audited_as_not_applied(tmp_path, state_location):
    with Sandbox(seed=SEED) as sandbox:
        state = state_location
        untouched = snapshot(sandbox)
        sandbox.set_faults(f"{FIRST_WRITE}:503=1.0")  # the write arrives but is not made
        killed = _killed_backfill(sandbox, tmp_path, state, after=False)
        sandbox.set_faults(None)
        assert snapshot(sandbox) == untouched
        with StateStore(state) as store:
            pending = store.journal.intents(killed)
        assert pending, "no intent was recorded before the write was sent"

        rerun = cli("backfill", "--json", cwd=tmp_path, env_file=tmp_path / "sandbox.env",
                    state=state)
        assert rerun.returncode in (0, 1), rerun.stderr
        report = json.loads(rerun.stdout)
        assert report["intents_resolved"] == {"applied": 0, "not_applied": len(pending)}
        with StateStore(state) as store:
            assert store.journal.entries(killed) == []
            assert store.journal.intents(killed) == []
            assert store.journal.entries(killed, status="not_applied") != []


def test_intents_get_the_outcome_of_their_own_change(state_location):
    def change(rid: str, after: str) -> Change:
        return Change(system=System.SALESFORCE, object_type="Lead", record_id=rid,
                      field="Status", before=None, after=after, rule="r", reason="why")

    with StateStore(state_location) as store:
        with store.transaction():
            store.journal.audit(1, change("00Q0", "x").ref, "Status", None, "x", "old row")
            first = store.journal.record_intents(2, 1, [change("00Q1", "a"), change("00Q2", "b")])
            second = store.journal.record_intents(2, 2, [change("00Q3", "c")])
        with store.transaction():
            store.journal.resolve_intents([(first[0], "applied"), (first[1], "rejected"),
                                           (second[0], "applied")])
        assert [(e.ref.record_id, e.after, e.batch) for e in store.journal.entries(2)] == [
            ("00Q1", "a", 1), ("00Q3", "c", 2)]
        assert [e.ref.record_id for e in store.journal.entries(2, status="rejected")] == ["00Q2"]
        assert store.journal.intents(not_run=3) == [] and store.journal.applied_count() == 3
