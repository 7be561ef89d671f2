"""The admin's loop through the real CLI on both state stores: what a person runs after
`backfill` (pause, resume, status, explain, history, report) works the same on a SQLite file
and on a tenant's rows in PostgreSQL. Each command reads or writes repositories added for it
(the pin and pause, the report's tally and snapshots, the audit's history), so each must speak
both dialects."""

from __future__ import annotations

import json

from connector.sandbox import Sandbox
from tests.runs import cli, write_env


def test_backfill_sync_pause_explain_history_and_report_on_each_store(state_location, tmp_path):
    state = str(state_location)
    with Sandbox(seed=12) as sandbox:
        env = write_env(sandbox, tmp_path)

        def run(*args: str, with_env: bool = True):
            return cli(*args, "--state", state, cwd=tmp_path,
                       env_file=env if with_env else None)

        backfill = run("backfill", "--json")
        assert backfill.returncode == 0, backfill.stderr[-2000:]
        written = json.loads(backfill.stdout)["changes"]
        assert written, "the seeded sandbox needs changes to show"
        ref = f"{written[0]['system']}:{written[0]['object_type']}:{written[0]['record_id']}"
        assert run("sync").returncode == 0

        assert run("pause", "--reason", "fixing the ICP", with_env=False).returncode == 0
        paused = run("sync")
        assert paused.returncode == 0 and "fixing the ICP" in paused.stdout + paused.stderr
        status = run("status", with_env=False)
        assert status.returncode == 0 and "PAUSED" in status.stdout
        assert run("resume", with_env=False).returncode == 0

        explained = run("explain", ref)
        assert explained.returncode == 0, explained.stderr
        assert ref in explained.stdout
        history = run("history", ref, "--json")
        assert history.returncode == 0, history.stderr
        assert written[0]["field"] in history.stdout
        report = run("report", "--json", with_env=False)
        assert report.returncode == 0, report.stderr
        data = json.loads(report.stdout)
        assert [run["kind"] for run in data["history"]][:2] == ["backfill", "sync"]
        assert data["funnel"]["after"], report.stdout[:500]
