"""The safe admin loop, as an admin and a scheduler meet it: the CLI in a real process against
the sandbox. The pinned mapping, the project file, the empty-state refusal, the blast-radius
guard, `--objects`, and pause / resume."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
from datetime import date
from pathlib import Path

import pytest

from connector.demo import make_edits
from connector.exceptions import ProjectFileError
from connector.model import Change, System
from connector.project import load_project
from connector.sandbox import Sandbox
from connector.state import StateStore
from connector.state.protocol import AdminProtocol
from connector.sync import BlastRadius, Guards
from connector.sync.guards import PlanSummary, blast_radius_problems, downgrades
from tests.helpers import engine_for
from tests.runs import ROOT, cli, snapshot, write_env, written

SEED = 30
SHIPPED = ROOT / "mappings" / "default.yaml"
INDUSTRY_RULE = "in: [software, finance]"
STAGE_RULE = ("person.stage: {winner: most_advanced, allow_downgrade: false, "
              "tie_breaker: [salesforce, hubspot]}")


def mapping_copy(folder: Path, name: str, old: str, new: str) -> Path:
    """The shipped mapping with one rule changed, beside a copy of its label packs."""
    maps = folder / "maps"
    if not maps.exists():
        shutil.copytree(ROOT / "mappings", maps)
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text, old
    path = maps / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def narrower_icp(folder: Path) -> Path:
    """A mapping whose ICP takes finance only, not software: fit flags and priorities of
    dozens of records differ from the shipped mapping's."""
    return mapping_copy(folder, "acme.yaml", INDUSTRY_RULE, "in: [finance]")


def output(result) -> str:
    return result.stdout + result.stderr


def flat(text: str) -> str:
    """Text as a person reads it, whatever width the report was wrapped at."""
    return " ".join(text.split())


def json_report(result) -> dict:
    return json.loads(result.stdout)


def changed_objects(before: dict, after: dict) -> set[str]:
    """system:object of every record whose written fields differ between two snapshots."""
    return {ref.rsplit(":", 1)[0] for ref in after if after[ref] != before.get(ref)}


def me() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


# ---- 1. the mapping in force is pinned -------------------------------------------------------


def test_a_forgotten_mapping_refuses_and_accepting_the_change_pins_it(tmp_path):
    acme = narrower_icp(tmp_path)
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        first = cli("backfill", "--mapping", str(acme), "--json", cwd=tmp_path,
                    env_file=env_file, state=state)
        assert first.returncode == 0, first.stderr[-2000:]

        before, calls = written(sandbox), sandbox.counters()["total_requests"]
        forgot = cli("sync", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert forgot.returncode == 2, output(forgot)[-2000:]
        report = json_report(forgot)
        assert report["status"] == "config_error" and report["refused_by"] == "mapping_pin"
        # the refusal plans as a dry run would, and lists what would change
        assert report["planned"] > 0 and report["applied"] == 0
        assert report["changes"] and {c["status"] for c in report["changes"]} == {"planned"}
        message = report["message"]
        assert str(acme) in message and "--accept-mapping-change" in message
        assert "crmsync plan" in message
        assert "crmsync_icp_fit" in message  # counts by system, object and field
        # nothing written, and not even read: the summary comes from the state DB's mirror
        assert written(sandbox) == before
        assert sandbox.counters()["total_requests"] == calls

        text = cli("sync", cwd=tmp_path, env_file=env_file, state=state)
        assert text.returncode == 2 and "--accept-mapping-change" in text.stdout

        dry = cli("sync", "--dry-run", cwd=tmp_path, env_file=env_file, state=state)
        assert dry.returncode == 2, "a dry run says what the real run would do"

        accepted = cli("sync", "--accept-mapping-change", "--json", cwd=tmp_path,
                       env_file=env_file, state=state)
        assert accepted.returncode in (0, 1), output(accepted)[-2000:]
        assert json_report(accepted)["applied"] > 0 and written(sandbox) > before

        again = cli("sync", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert again.returncode in (0, 1), output(again)[-2000:]
        assert json_report(again)["applied"] == 0
        back = cli("sync", "--mapping", str(acme), cwd=tmp_path, env_file=env_file,
                   state=state)
        assert back.returncode == 2 and "--accept-mapping-change" in back.stdout


def test_an_accepted_mapping_that_pre_flight_refuses_is_not_pinned(tmp_path):
    missing = mapping_copy(tmp_path, "typo.yaml",
                           "      crmsync_priority: {from: person.priority}",
                           "      crmsync_priorty: {from: person.priority}")
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        assert cli("backfill", cwd=tmp_path, env_file=env_file, state=state).returncode == 0
        refused = cli("sync", "--mapping", str(missing), "--accept-mapping-change",
                      "--replan-all", cwd=tmp_path, env_file=env_file, state=state)
        assert refused.returncode == 2 and "crmsync_priorty" in output(refused)
        with StateStore(state) as store:  # nothing written with it: the pin stays
            assert store.admin.pinned_mapping().path == str(SHIPPED.resolve())
        assert cli("sync", cwd=tmp_path, env_file=env_file, state=state).returncode in (0, 1)


def test_plan_and_apply_are_the_reviewed_way_to_change_the_mapping(tmp_path):
    acme = narrower_icp(tmp_path)
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        assert cli("backfill", cwd=tmp_path, env_file=env_file, state=state).returncode == 0
        plan_file = tmp_path / "plan.json"
        plan = cli("plan", "--mapping", str(acme), "-o", str(plan_file), cwd=tmp_path,
                   env_file=env_file, state=state)
        assert plan.returncode in (0, 1), output(plan)[-2000:]
        assert "differs from the pinned mapping" in plan.stdout
        applied = cli("apply", str(plan_file), "--mapping", str(acme), "--json", cwd=tmp_path,
                      env_file=env_file, state=state)
        assert applied.returncode in (0, 1), output(applied)[-2000:]
        assert json_report(applied)["applied"] > 0
        # apply pinned the reviewed mapping: the schedule goes on with it, without a flag
        follow = cli("sync", "--mapping", str(acme), cwd=tmp_path, env_file=env_file,
                     state=state)
        assert follow.returncode in (0, 1), output(follow)[-2000:]
        with StateStore(state) as store:
            assert store.admin.pinned_mapping().path == str(acme.resolve())


def test_a_project_file_names_mapping_state_and_env_file_so_runs_need_no_flags(tmp_path):
    acme = narrower_icp(tmp_path)
    with Sandbox(seed=SEED) as sandbox:
        write_env(sandbox, tmp_path)
        (tmp_path / "crmsync.toml").write_text(
            '# the schedule runs here\nmapping = "maps/acme.yaml"\nstate = "var/acme.db"\n'
            'env_file = "sandbox.env"\n', encoding="utf-8")
        # the project file beats a setting naming another state DB
        env_file = tmp_path / "sandbox.env"
        env_file.write_text(env_file.read_text() + "CRMSYNC_STATE_PATH=elsewhere.db\n")
        backfill = cli("backfill", "--json", cwd=tmp_path)
        assert backfill.returncode == 0, output(backfill)[-2000:]
        assert (tmp_path / "var" / "acme.db").exists()
        assert not (tmp_path / "crmsync.db").exists() and not (tmp_path / "elsewhere.db").exists()
        sync = cli("sync", cwd=tmp_path)
        assert sync.returncode in (0, 1), output(sync)[-2000:]
        with StateStore(tmp_path / "var" / "acme.db") as store:
            assert store.admin.pinned_mapping().path == str(acme.resolve())
        # an explicit flag beats the project file
        shipped = cli("sync", "--mapping", str(SHIPPED), cwd=tmp_path)
        assert shipped.returncode == 2 and "--accept-mapping-change" in shipped.stdout
        status = cli("status", "--json", cwd=tmp_path)
        assert status.returncode == 0 and json.loads(status.stdout)["state"].endswith("acme.db")


@pytest.mark.parametrize(("text", "says"), [
    ('mapping = "a.yaml"\nmappings = "b.yaml"\n', "line 2: unknown key 'mappings'"),
    ('state = 5\n', "line 1: state must be a path (a string), not 5"),
    ('mapping = "a.yaml\n', "line 1"),
])
def test_a_bad_project_file_is_a_configuration_error_naming_file_and_line(tmp_path, text, says):
    (tmp_path / "crmsync.toml").write_text(text, encoding="utf-8")
    result = cli("sync", cwd=tmp_path)
    assert result.returncode == 2, output(result)[-2000:]
    assert "Traceback" not in result.stderr
    assert "crmsync.toml" in result.stderr and says in result.stderr, result.stderr


def test_init_writes_a_project_file_the_runs_then_use(tmp_path):
    acme = narrower_icp(tmp_path)
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        init = cli("init", "--mapping", str(acme), "--state", "acme.db", "--env-file",
                   str(env_file), cwd=tmp_path)
        assert init.returncode == 0, output(init)
        assert "crmsync.toml" in init.stdout
        again = cli("init", cwd=tmp_path)
        assert again.returncode == 2 and "--force" in again.stderr
        backfill = cli("backfill", cwd=tmp_path)
        assert backfill.returncode == 0, output(backfill)[-2000:]
        assert (tmp_path / "acme.db").exists()


def test_a_sync_on_an_empty_state_db_refuses_and_points_at_backfill(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        sandbox.reset_counters()
        refused = cli("sync", cwd=tmp_path, env_file=env_file, state=state)
        assert refused.returncode == 2, output(refused)[-2000:]
        assert "crmsync backfill" in refused.stdout and "--allow-empty-state" in refused.stdout
        assert sandbox.counters()["total_requests"] == 0
        allowed = cli("sync", "--allow-empty-state", "--json", cwd=tmp_path,
                      env_file=env_file, state=state)
        assert allowed.returncode in (0, 1), output(allowed)[-2000:]
        assert json_report(allowed)["applied"] > 0
        with StateStore(state) as store:
            assert store.admin.pinned_mapping().path == str(SHIPPED.resolve())


# ---- 2. the blast-radius guard ---------------------------------------------------------------


def test_the_guard_stops_a_big_write_lets_a_normal_sync_through_and_a_flag_confirms(tmp_path):
    with Sandbox(seed=100) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        first = cli("backfill", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert first.returncode == 0, output(first)[-2000:]
        assert json_report(first)["applied"] > 1000  # a first backfill writes a lot, by design

        make_edits(sandbox, date.today())  # a normal day's edits
        normal = cli("sync", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert normal.returncode in (0, 1), output(normal)[-2000:]
        assert json_report(normal)["applied"] > 0

        today = date.today().isoformat()
        for company in sandbox.hubspot_records("companies"):  # a bulk import
            sandbox.update_hubspot("companies", company["id"], {"recent_funding_date": today})
        before = written(sandbox)
        stopped = cli("sync", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert stopped.returncode == 2, output(stopped)[-2000:]
        report = json_report(stopped)
        assert report["refused_by"] == "blast_radius"
        assert "--confirm-large" in report["message"]
        assert "CRMSYNC_MAX_SHARE_WRITTEN" in report["message"]
        assert report["planned"] > 100 and report["changes"]
        assert written(sandbox) == before
        confirmed = cli("sync", "--confirm-large", "--json", cwd=tmp_path, env_file=env_file,
                        state=state)
        assert confirmed.returncode in (0, 1), output(confirmed)[-2000:]
        assert json_report(confirmed)["applied"] >= report["planned"]


def test_the_guard_counts_lifecycle_downgrades(tmp_path):
    downgrading = mapping_copy(tmp_path, "sf-wins.yaml", STAGE_RULE,
                               "person.stage: {winner: salesforce, allow_downgrade: true}")
    with Sandbox(seed=100) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        assert cli("backfill", cwd=tmp_path, env_file=env_file, state=state).returncode == 0
        # sales resets its contacts' stage in Salesforce; with Salesforce winning and
        # downgrades allowed, their HubSpot contacts would all move back
        for contact in sandbox.salesforce_records("Contact"):
            sandbox.update_salesforce("Contact", contact["Id"],
                                      {"Lifecycle_Stage__c": "Subscriber"})
        before = written(sandbox)
        refused = cli("sync", "--mapping", str(downgrading), "--accept-mapping-change",
                      "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert refused.returncode == 2, output(refused)[-2000:]
        report = json_report(refused)
        assert report["refused_by"] == "blast_radius"
        assert "lifecycle downgrade" in report["message"]
        assert "CRMSYNC_MAX_DOWNGRADES" in report["message"]
        assert written(sandbox) == before
        confirmed = cli("sync", "--mapping", str(downgrading), "--accept-mapping-change",
                        "--confirm-large", cwd=tmp_path, env_file=env_file, state=state)
        assert confirmed.returncode in (0, 1), output(confirmed)[-2000:]
        assert written(sandbox) > before


# ---- 3. --objects limits reads and writes alike ----------------------------------------------


def test_backfill_objects_writes_only_that_object_and_leaves_the_rest_to_the_next_sync(
        tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        assert cli("backfill", cwd=tmp_path, env_file=env_file, state=state).returncode == 0
        today = date.today().isoformat()
        for company in sandbox.hubspot_records("companies"):
            sandbox.update_hubspot("companies", company["id"], {"recent_funding_date": today})
        before = snapshot(sandbox)
        only = cli("backfill", "--objects", "hubspot.companies", "--json", cwd=tmp_path,
                   env_file=env_file, state=state)
        assert only.returncode == 0, output(only)[-2000:]
        report = json_report(only)
        assert set(report["read"]) == {"hubspot.companies"}
        after = snapshot(sandbox)
        assert changed_objects(before, after) == {"hubspot:companies"}
        assert {c["object_type"] for c in report["changes"]} == {"companies"}
        assert "next sync" in report["message"]
        # what it left, the next run writes
        rest = cli("sync", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert rest.returncode in (0, 1), output(rest)[-2000:]
        assert changed_objects(after, snapshot(sandbox)) - {"hubspot:companies"}


def test_sync_and_plan_take_objects_too(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        assert cli("backfill", cwd=tmp_path, env_file=env_file, state=state).returncode == 0
        make_edits(sandbox, date.today())
        plan = cli("plan", "--objects", "salesforce.Lead", "--json", cwd=tmp_path,
                   env_file=env_file, state=state)
        assert plan.returncode in (0, 1), output(plan)[-2000:]
        assert set(json_report(plan)["read"]) == {"salesforce.Lead"}
        assert {c["object_type"] for c in json_report(plan)["changes"]} <= {"Lead"}
        before = snapshot(sandbox)
        sync = cli("sync", "--objects", "hubspot.contacts", "--json", cwd=tmp_path,
                   env_file=env_file, state=state)
        assert sync.returncode in (0, 1), output(sync)[-2000:]
        assert set(json_report(sync)["read"]) == {"hubspot.contacts"}
        assert changed_objects(before, snapshot(sandbox)) <= {"hubspot:contacts"}
        typo = cli("sync", "--objects", "hubspot.compnies", cwd=tmp_path, env_file=env_file,
                   state=tmp_path / "other.db")
        assert typo.returncode == 2 and "unknown object 'hubspot.compnies'" in typo.stderr
        assert not (tmp_path / "other.db").exists()


# ---- 4. pause and resume ---------------------------------------------------------------------


def test_pause_makes_scheduled_runs_exit_0_without_writing_and_resume_restores(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        assert cli("backfill", cwd=tmp_path, env_file=env_file, state=state).returncode == 0
        paused = cli("pause", "--reason", "fixing the ICP rules", cwd=tmp_path, state=state)
        assert paused.returncode == 0, output(paused)
        make_edits(sandbox, date.today())
        plan_file = tmp_path / "plan.json"
        plan = cli("plan", "-o", str(plan_file), cwd=tmp_path, env_file=env_file, state=state)
        assert plan.returncode in (0, 1), output(plan)[-2000:]
        assert "paused" in plan.stdout  # plan still runs, and says so

        sandbox.reset_counters()
        before = written(sandbox)
        for args in (("sync",), ("backfill",), ("apply", str(plan_file)),
                     ("sync", "--dry-run")):
            result = cli(*args, cwd=tmp_path, env_file=env_file, state=state)
            assert result.returncode == 0, (args, output(result)[-2000:])
            assert f"by {me()}: fixing the ICP rules" in flat(result.stdout), result.stdout
            assert "paused since " in flat(result.stdout)
        assert written(sandbox) == before
        assert sandbox.counters()["total_requests"] == 0
        as_json = cli("sync", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert json_report(as_json)["status"] == "paused"
        status = cli("status", cwd=tmp_path, state=state)
        assert "paused since" in status.stdout

        resumed = cli("resume", cwd=tmp_path, state=state)
        assert resumed.returncode == 0 and "resumed" in resumed.stdout
        sync = cli("sync", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert sync.returncode in (0, 1), output(sync)[-2000:]
        assert json_report(sync)["applied"] > 0 and written(sandbox) > before


def test_pause_and_resume_need_an_existing_state_db(tmp_path):
    result = cli("pause", cwd=tmp_path, state=tmp_path / "typo.db")
    assert result.returncode == 2 and "no state DB" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_after_a_rollback_the_report_says_the_next_run_writes_the_same_again(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        backfill = cli("backfill", "--json", cwd=tmp_path, env_file=env_file, state=state)
        run_id = str(json_report(backfill)["run_id"])
        cli("pause", "--reason", "mapping under review", cwd=tmp_path, state=state)
        paused = cli("rollback", run_id, "--dry-run", cwd=tmp_path, env_file=env_file,
                     state=state)
        assert paused.returncode in (0, 1), output(paused)[-2000:]
        assert "crmsync resume" in flat(paused.stdout)
        assert "mapping under review" in flat(paused.stdout)
        cli("resume", cwd=tmp_path, state=state)
        rollback = cli("rollback", run_id, cwd=tmp_path, env_file=env_file, state=state)
        assert rollback.returncode in (0, 1), output(rollback)[-2000:]
        assert "the next run will write the same values again" in flat(rollback.stdout)
        assert "crmsync pause" in flat(rollback.stdout)


def test_a_pause_during_a_run_stops_it_before_its_next_write(tmp_path):
    """An admin pausing while a run writes: the run stops before its next batch."""
    with Sandbox(seed=100) as sandbox:
        state = tmp_path / "state.db"

        def pause_now() -> None:
            with StateStore(state) as other:
                other.admin.pause("stop the writes", by="admin@elsewhere")

        sandbox.before_request("hubspot.batch_update", 2, pause_now)
        with engine_for(sandbox, state) as engine:
            report = engine.backfill(guards=Guards())
        assert report.status == "paused" and report.exit_code == 0
        assert "admin@elsewhere" in report.message and "stop the writes" in report.message
        assert 0 < report.applied < report.planned
        with StateStore(state) as store:
            store.admin.resume()
        with engine_for(sandbox, state) as engine:
            rest = engine.backfill(guards=Guards())
        assert rest.exit_code in (0, 1) and rest.applied > 0, rest.message


# ---- the parts, in process -------------------------------------------------------------------


def test_the_pin_and_the_pause_live_in_the_state_db(tmp_path):
    with StateStore(tmp_path / "state.db") as store:
        assert isinstance(store.admin, AdminProtocol)
        assert store.admin.pinned_mapping() is None and store.admin.paused() is None
        store.admin.pin_mapping("/etc/crmsync/acme.yaml", "ab" * 32,
                                {"hubspot": {"contacts": ["email"]}}, by="ann@ops")
        first, made = store.admin.pause("new ICP", by="ann@ops")
        again, made_again = store.admin.pause("another reason", by="bob@ops")
        assert made and not made_again and again == first  # the first pause stands
    with StateStore(tmp_path / "state.db") as store:  # another process, later
        pin = store.admin.pinned_mapping()
        assert (pin.path, pin.sha256, pin.by) == ("/etc/crmsync/acme.yaml", "ab" * 32, "ann@ops")
        assert pin.fields_read == {"hubspot": {"contacts": ["email"]}}
        assert str(store.admin.paused()).endswith("by ann@ops: new ICP")
        assert store.admin.resume() == first
        assert store.admin.paused() is None and store.admin.resume() is None


def test_a_project_file_resolves_paths_against_its_folder(tmp_path):
    project = tmp_path / "crmsync.toml"
    project.write_text('mapping = "maps/acme.yaml"\nstate = "/var/lib/crmsync/crmsync.db"\n')
    found = load_project(project)
    assert found.mapping == tmp_path / "maps" / "acme.yaml"
    assert found.state == Path("/var/lib/crmsync/crmsync.db") and found.env_file is None
    project.write_text('mapping = "a.yaml"\n\n[env]\nfile = "x"\n')
    with pytest.raises(ProjectFileError, match=r"crmsync.toml: line 3: unknown key 'env'"):
        load_project(project)
    project.write_text('mappin = "a.yaml"\n')
    with pytest.raises(ProjectFileError, match="did you mean 'mapping'"):
        load_project(project)


def stage_change(record: str, before, after, step: int = 0,
                 obj: str = "contacts", name: str = "lifecyclestage") -> Change:
    system = System.HUBSPOT if obj == "contacts" else System.SALESFORCE
    return Change(system=system, object_type=obj, record_id=record, field=name, before=before,
                  after=after, rule="r", reason="why", step=step)


def test_a_downgrade_is_a_stage_moved_back_or_off_the_ladder_counted_once(mapping):
    changes = [
        stage_change("1", "customer", "", 0), stage_change("1", "", "lead", 1),  # two steps
        stage_change("2", "lead", "salesqualifiedlead"),  # forward: no downgrade
        stage_change("3", "Customer", "Disqualified", obj="Contact",
                     name="Lifecycle_Stage__c"),  # off the ladder
        stage_change("4", None, "lead"),  # a first stage: nothing to move back from
    ]
    found = downgrades(mapping, changes)
    assert [(ref, before, after) for ref, _, before, after in found] == [
        ("hubspot:contacts:1", "customer", "lead"),
        ("salesforce:Contact:3", "Customer", "Disqualified")]


def test_the_share_limit_starts_past_a_floor_and_a_first_full_run_skips_record_limits():
    limits = BlastRadius(max_records=1000, max_share=0.2, max_downgrades=2)

    def summary(records: int, downgraded: int = 0) -> PlanSummary:
        return PlanSummary(records, records, [], [("r", "f", "a", "b")] * downgraded)

    assert blast_radius_problems(summary(90), limits, 100, first_full_run=False) == []
    assert blast_radius_problems(summary(101), limits, 10_000, first_full_run=False) == []
    [share] = blast_radius_problems(summary(101), limits, 400, first_full_run=False)
    assert "CRMSYNC_MAX_SHARE_WRITTEN" in share
    [count] = blast_radius_problems(summary(1001), limits, 10**6, first_full_run=False)
    assert "CRMSYNC_MAX_RECORDS_WRITTEN" in count
    assert blast_radius_problems(summary(5000), limits, 5000, first_full_run=True) == []
    [downgrade] = blast_radius_problems(summary(5000, 3), limits, 5000, first_full_run=True)
    assert "CRMSYNC_MAX_DOWNGRADES=2" in downgrade
