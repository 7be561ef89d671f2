"""`crmsync report` as a person and a dashboard use it: a real process over a state DB that
real runs made against the sandbox."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.report.html import CHARTS
from connector.sandbox import Sandbox
from tests.helpers import copy_db, edit_across_systems, engine_for
from tests.runs import cli

SEED = 30
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Iterator[Path]:
    """A state DB after a backfill, people's edits (one of them unreadable, with markup in
    it) and an incremental sync."""
    path = tmp_path_factory.mktemp("report") / "state.db"
    with Sandbox(seed=SEED) as sandbox, engine_for(sandbox, path) as engine:
        engine.backfill()
        edit_across_systems(sandbox)
        lead = next(r for r in sandbox.salesforce_records("Lead")
                    if not r.get("IsConverted"))
        sandbox.update_salesforce("Lead", lead["Id"], {"Status": HOSTILE})
        engine.sync()
    return path


TOP_LEVEL = {"report_version", "generated_at", "state_db", "mapping_files", "run", "since",
             "totals_note", "funnel", "agreement", "organizations", "changes", "stuck",
             "history"}


def test_json_gives_the_documented_fields_and_writes_no_file(state, tmp_path):
    result = cli("report", "--json", cwd=tmp_path, state=state)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == TOP_LEVEL
    assert list(tmp_path.iterdir()) == []  # --json alone writes nothing
    assert set(data["run"]) == {"id", "kind", "status", "dry_run", "started_at", "ended_at",
                                "message"}
    assert (data["run"]["id"], data["run"]["kind"], data["report_version"]) == (2, "sync", 1)
    funnel = data["funnel"]
    assert funnel["stages"][:2] == ["subscriber", "lead"] and funnel["stages"][-1] == "none"
    for side in ("before", "after"):
        assert set(funnel[side]) == {"hubspot", "salesforce", "reconciled"}
        assert all(list(counts) == funnel["stages"] for counts in funnel[side].values())
        matrix = data["agreement"][side]
        assert set(matrix) == {"stages", "linked_people", "agreeing", "matrix"}
        assert sum(map(sum, matrix["matrix"])) == matrix["linked_people"] > 0
    assert set(data["organizations"][-1]) == {"run_id", "started_at", "organizations",
                                              "people_priority"}
    assert set(data["organizations"][-1]["organizations"]) == {
        "total", "fit", "not_fit", "unknown_fit", "triggers", "priority"}
    assert set(data["organizations"][-1]["people_priority"]) <= {
        "trigger_fit", "fit", "nonfit_lead", "other"}
    changes = data["changes"]
    assert set(changes) == {"changes", "downgrades", "clears", "by_field", "transitions",
                            "not_written"}
    assert set(changes["transitions"][0]) == {"system", "object", "field", "before", "after",
                                              "changes", "downgrade", "clear"}
    assert sum(f["changes"] for f in changes["by_field"]) == changes["changes"] > 0
    stuck = data["stuck"]
    assert set(stuck) == {"open_rejects", "causes", "duplicate_groups", "duplicates"}
    assert set(stuck["causes"][0]) == {"stage", "field", "reason", "code", "records",
                                       "examples", "systems", "fix"}
    assert stuck["causes"][0]["fix"]["rule"] == "picklists.salesforce.Lead.Status"
    assert [row["run_id"] for row in data["history"]] == [1, 2]
    assert set(data["history"][0]) == {"run_id", "kind", "status", "dry_run", "started_at",
                                       "duration_seconds", "records_read", "changes_written",
                                       "api_calls", "budget_share"}


def test_changes_are_the_runs_audited_fields(state, tmp_path):
    result = cli("report", "--json", "--run", "1", cwd=tmp_path, state=state)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    with sqlite3.connect(state) as db:
        fields = db.execute("SELECT count(*) FROM (SELECT DISTINCT system, object_type, "
                            "record_id, field FROM audit WHERE run_id = 1 AND "
                            "status = 'applied')").fetchone()[0]
    assert (data["run"]["id"], data["changes"]["changes"]) == (1, fields)
    assert [row["run_id"] for row in data["history"]] == [1]  # up to the run reported on
    assert data["funnel"]["before"]["reconciled"] is None  # nothing ran before the backfill
    assert "first run with totals" in data["totals_note"]


def test_writes_one_html_file_that_loads_nothing_from_the_network(state, tmp_path):
    result = cli("report", "-o", "funnel.html", cwd=tmp_path, state=state)
    assert result.returncode == 0, result.stderr
    assert "report written to funnel.html" in result.stdout
    page = tmp_path / "funnel.html"
    text = page.read_text(encoding="utf-8")
    assert stat.S_IMODE(page.stat().st_mode) == 0o600  # it names records
    assert page.stat().st_size < 6_000_000
    assert text.count("* plotly.js v") == 1  # plotly.js once, whatever the number of charts
    assert not re.search(r"<script[^>]*\bsrc=", text)  # no CDN: the library is inlined
    ours = text.split("</script>", 1)[1]  # the page after the inlined library
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", ours)  # nothing fetched
    for chart in CHARTS:
        assert f'id="{chart}"' in text
    assert [p.name for p in tmp_path.iterdir()] == ["funnel.html"]  # no temporary left


def test_values_from_the_crms_are_shown_as_text_never_as_markup(state, tmp_path):
    result = cli("report", "-o", "report.html", cwd=tmp_path, state=state)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert HOSTILE not in text
    assert html_escaped(HOSTILE) in text  # in the table of what is stuck, as text


def html_escaped(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_since_limits_the_history_and_a_later_day_shows_none(state, tmp_path):
    result = cli("report", "--json", "--since", "2999-01-01", cwd=tmp_path, state=state)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["since"], data["history"], data["run"]["id"]) == ("2999-01-01", [], 2)


@pytest.mark.parametrize(("args", "message"), [
    (["--run", "999"], "no run 999 in state DB"),
    (["--run", "0"], "no run 0: run ids start at 1"),
    (["--since", "2026-13-01"], "--since '2026-13-01' is not a date: give it as YYYY-MM-DD"),
    (["--since", "last week"], "--since 'last week' is not a date"),
    (["--mapping", "missing.yaml"], "missing.yaml"),
    (["-o", "no/such/folder/report.html"], "cannot write the report to no/such/folder"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(state, tmp_path, args, message):
    result = cli("report", *args, cwd=tmp_path, state=state)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_no_state_db_and_a_state_db_without_runs(tmp_path):
    missing = cli("report", cwd=tmp_path, state=tmp_path / "nowhere.db")
    assert missing.returncode == 2
    assert f"no state DB at {tmp_path / 'nowhere.db'}" in missing.stderr
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    fresh = cli("report", cwd=tmp_path, state=empty)
    assert fresh.returncode == 2
    assert "has no runs yet: run `crmsync backfill`" in fresh.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_help_says_what_the_report_holds(tmp_path):
    result = cli("report", "--help", cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for words in ("funnel per system", "--run", "--since", "--json", "no API calls",
                  "--verbose", "--log-level", "--log-format", "--state", "--mapping"):
        assert words in text


def test_a_run_from_before_totals_were_kept_still_gets_a_report_that_says_so(state, tmp_path):
    old = copy_db(state, tmp_path / "old.db")
    with sqlite3.connect(old) as db:  # as if both runs ran before this crmsync version
        db.execute("DELETE FROM snapshots")
    result = cli("report", "--json", "-o", "old.html", cwd=tmp_path, state=old)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["totals_note"].startswith("run 2 kept no totals")
    assert (data["funnel"]["before"], data["funnel"]["after"]) == (None, None)
    assert data["agreement"] == {"before": None, "after": None}
    assert data["organizations"] == []
    assert data["changes"]["changes"] > 0 and data["history"]  # from the runs and the audit
    text = (tmp_path / "old.html").read_text(encoding="utf-8")
    assert "run 2 kept no totals" in text
    for chart in CHARTS:
        assert f'id="{chart}"' in text
