"""What a person or a pipe sees: the real `crmsync` command in a subprocess against the
sandbox, its stdout, stderr and exit code.

A run's report leads with a summary (by system, object, field and transition, downgrades,
clears and priority moves flagged), then a short list of changes, then rejects grouped by
cause with the mapping line to fix them. In a pipe it is plain lines, one record per line,
whatever the width; a closed pipe ends the command quietly with its own exit code; a dry run
never says "applied"; --json on a configuration error is a JSON object.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from connector.mapping import load_mapping
from connector.model import LifecycleStage
from connector.sandbox import Sandbox
from connector.state import StateStore
from tests.helpers import copy_db
from tests.runs import ROOT, cli, write_env

SEED = 20
DEFAULT_YAML = ROOT / "mappings" / "default.yaml"
BOX = set("┏┃┡│└┗━─╇╭╰")


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def yaml_line(path: Path, *keys: str) -> int:
    """The line of a nested key in a YAML file, found by its indentation (not by crmsync)."""
    text = path.read_text().splitlines()
    found = 0  # the line of the key found last (1-based); the next key is looked for after it
    for depth, key in enumerate(keys):
        found = next(number for number, line in enumerate(text, start=1)
                     if number > found and line.startswith(" " * 2 * depth + f"{key}:"))
    return found


# ---- one backfilled world, shared by the read-only tests (each works on a copy of its DB) ----


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, folder)
        state = folder / "backfilled.db"
        result = cli("backfill", cwd=folder, env_file=env_file, state=state)
        assert result.returncode == 0, result.stderr[-2000:]
        yield sandbox, env_file, state


@pytest.fixture(scope="module")
def fresh_world(tmp_path_factory):
    """A sandbox crmsync never wrote to: a plan from an empty state DB changes most records."""
    folder = tmp_path_factory.mktemp("fresh")
    with Sandbox(seed=SEED) as sandbox:
        yield write_env(sandbox, folder)


@pytest.fixture
def downgrading_mapping(tmp_path) -> Path:
    """The shipped mapping with Salesforce winning stages and downgrades allowed: a change
    that plans lifecycle downgrades (HubSpot's in two steps) and priority moves."""
    text = DEFAULT_YAML.read_text()
    old = ("person.stage: {winner: most_advanced, allow_downgrade: false, "
           "tie_breaker: [salesforce, hubspot]}")
    assert old in text
    path = tmp_path / "salesforce-wins.yaml"
    path.write_text(text.replace(old, "person.stage: {winner: salesforce, allow_downgrade: true}"))
    return path


def _stage(system: str, obj: str, field: str, value) -> LifecycleStage | None:
    field_map = load_mapping().field_map(system, obj, field)
    meaning = field_map.values.get(str(value)) if field_map and value not in (None, "") else None
    return meaning.stage if meaning else None


_LADDER = ["subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist"]


def _downgrades(changes: list[dict]) -> int:
    """Stage moves down the ladder (or off it), counted from the listed changes: a
    clear-then-set counted once, as the move from its first before to its last after."""
    first_before = {(c["system"], c["object_type"], c["record_id"], c["field"]): c["before"]
                    for c in changes if c["step"] == 0}
    count = 0
    for c in changes:
        key = (c["system"], c["object_type"], c["record_id"], c["field"])
        if c["step"] == 0 and any(d["step"] == 1 and (d["system"], d["object_type"],
                                                      d["record_id"], d["field"]) == key
                                  for d in changes):
            continue
        old = _stage(c["system"], c["object_type"], c["field"], first_before[key])
        new = _stage(c["system"], c["object_type"], c["field"], c["after"])
        if old is None or new is None or old.value not in _LADDER:
            continue
        if new.value not in _LADDER or _LADDER.index(new.value) < _LADDER.index(old.value):
            count += 1
    return count


def test_a_plan_leads_with_its_summary_and_lists_a_few_changes_after_it(
        fresh_world, downgrading_mapping, tmp_path):
    env_file = fresh_world
    state = tmp_path / "state.db"
    as_json = cli("plan", "--json", "--mapping", str(downgrading_mapping), cwd=tmp_path,
                  env_file=env_file, state=tmp_path / "json.db")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    report = json.loads(as_json.stdout)
    changes = report["changes"]
    downgrades = _downgrades(changes)
    assert downgrades > 0 and len(changes) > 40 and not report["changes_not_listed"]

    # --json: the summary counts every change by field and transition, flags downgrades
    summary = report["summary"]
    two_steps = sum(c["step"] == 1 for c in changes)
    assert summary["changes"] == len(changes) - two_steps
    assert summary["two_step"] == two_steps > 0
    assert summary["records"] == len({(c["system"], c["record_id"]) for c in changes})
    assert summary["flagged"]["downgrade"] == downgrades
    by_field: dict[str, int] = {}
    for c in changes:
        if c["step"] == 0:
            key = f"{c['system']}.{c['object_type']}.{c['field']}"
            by_field[key] = by_field.get(key, 0) + 1
    assert summary["by_field"] == by_field
    # a clear-then-set is one transition, from the value before to the value after
    hubspot_stage = [t for t in summary["transitions"] if t["field"] == "lifecyclestage"]
    assert hubspot_stage and all(t["after"] is not None for t in hubspot_stage)
    assert any(t["steps"] == 2 and "downgrade" in t["flags"] for t in hubspot_stage)

    # text in a pipe: counts, summary, then 25 changes and how to see the rest
    text = cli("plan", "--mapping", str(downgrading_mapping), cwd=tmp_path, env_file=env_file,
               state=state)
    assert text.returncode == 0, text.stderr[-2000:]
    out = text.stdout.splitlines()
    first_change = next(i for i, line in enumerate(out) if line.startswith("change: "))
    assert max(i for i, line in enumerate(out) if line.startswith("summary: ")) < first_change
    assert f"flagged: {downgrades} lifecycle downgrade(s)" in text.stdout
    assert re.search(r"^summary: hubspot contacts lifecyclestage: \S+ -> \S+: \d+ planned "
                     r"\[downgrade\]$", text.stdout, re.MULTILINE)
    assert not re.search(r"lifecyclestage: \S+ -> ∅", text.stdout)  # no half of a two-step
    assert len(lines(text.stdout, "change: ")) == 25
    assert f"... and {len(changes) - 25} more change(s): --all lists every one" in text.stdout
    # the reason once per change: a priority's rule is not repeated after its reason
    priority = next(line for line in lines(text.stdout, "change: ") if "priority " in line
                    and "because priority" in line)
    reason = priority.split("because ", 1)[1].split("; rule ", 1)[0]
    assert priority.count(reason.split(": ", 1)[1]) == 1, priority

    every = cli("plan", "--all", "--mapping", str(downgrading_mapping), cwd=tmp_path,
                env_file=env_file, state=state)
    assert len(lines(every.stdout, "change: ")) == len(changes)
    assert "more change(s)" not in every.stdout


@pytest.mark.parametrize("columns", ["40", "300"])
def test_a_pipe_gets_plain_lines_whatever_the_width(world, fresh_world, tmp_path, columns,
                                                    monkeypatch):
    _, _, backfilled = world
    monkeypatch.setenv("COLUMNS", columns)
    plan = cli("plan", "--all", cwd=tmp_path, env_file=fresh_world, state=tmp_path / "p.db")
    status = cli("status", cwd=tmp_path, state=copy_db(backfilled, tmp_path / "state.db"))
    for result in (plan, status):
        assert result.returncode == 0, result.stderr[-2000:]
        assert not BOX & set(result.stdout), result.stdout[:2000]
    # one change, one line, and one run, one line: nothing wrapped onto a line of its own
    changes = lines(plan.stdout, "change: ")
    assert len(changes) > 100
    assert all(" -> " in line and "; because " in line and "; rule write_back." in line
               for line in changes)
    [run] = lines(status.stdout, "run: ")
    assert run.startswith("run: 1 backfill ok;") and "; API calls (hs/sf) " in run
    assert all(line.startswith(("state:", "run:", "watermark:", "open rejects:",
                                "duplicate records:", "mapping in force:", "PAUSED:", "    "))
               for line in status.stdout.splitlines()), status.stdout


def test_a_dry_run_says_would_apply_and_never_applied(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        assert cli("backfill", cwd=tmp_path, env_file=env_file, state=state).returncode == 0
        contact = next(c for c in sandbox.hubspot_records("contacts")
                       if c["properties"].get("lifecyclestage") == "lead")
        sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "customer"})
        dry = cli("sync", "--dry-run", cwd=tmp_path, env_file=env_file, state=state)
        dry_json = cli("sync", "--dry-run", "--json", cwd=tmp_path, env_file=env_file,
                       state=state)
        with StateStore(state) as store:
            backfill_id = store.journal.runs(10)[-1].id
        rollback = cli("rollback", str(backfill_id), "--dry-run", cwd=tmp_path,
                       env_file=env_file, state=state)
        status = cli("status", cwd=tmp_path, state=state)
        status_json = json.loads(cli("status", "--json", cwd=tmp_path, state=state).stdout)

    assert dry.returncode == 0, dry.stderr[-2000:]
    report = json.loads(dry_json.stdout)
    assert report["dry_run"] and report["planned"] > 0
    assert (report["applied"], report["would_apply"]) == (0, report["planned"])
    assert {c["status"] for c in report["changes"]} == {"would_apply"}
    assert set(report["summary"]["by_status"]) == {"would_apply"}
    for result in (dry, rollback):
        assert result.returncode == 0, result.stderr[-2000:]
        assert "would apply" in result.stdout
        assert not re.search(r"\bapplied\b", result.stdout), result.stdout
    dry_runs = [r for r in status_json["runs"] if r["dry_run"]]
    assert len(dry_runs) == 3
    assert all(r["counts"]["applied"] == 0 and r["counts"]["would_apply"] > 0 for r in dry_runs)
    for line in lines(status.stdout, "run: "):
        assert ("(dry run)" in line) == ("would apply" in line), line
        assert ("(dry run)" in line) != ("applied" in line), line


def test_rejects_are_grouped_by_cause_with_the_mapping_line_to_fix_them(tmp_path):
    status_line = yaml_line(DEFAULT_YAML, "picklists", "salesforce", "Lead", "Status")
    fix = f"add it under picklists.salesforce.Lead.Status (default.yaml:{status_line})"
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        assert cli("backfill", cwd=tmp_path, env_file=env_file, state=state).returncode == 0
        leads = [r["Id"] for r in sandbox.salesforce_records("Lead") if not r.get("IsConverted")]
        nurturing, recycled = leads[:4], leads[4:6]
        for lead in nurturing:
            sandbox.update_salesforce("Lead", lead, {"Status": "Nurturing"})
        for lead in recycled:
            sandbox.update_salesforce("Lead", lead, {"Status": "Recycled"})
        sync = cli("sync", cwd=tmp_path, env_file=env_file, state=state)
    grouped = cli("rejects", cwd=tmp_path, state=state)
    every = cli("rejects", "--records", cwd=tmp_path, state=state)
    as_json = json.loads(cli("rejects", "--json", cwd=tmp_path, state=state).stdout)

    assert sync.returncode == 1, sync.stderr[-2000:]
    for out in (sync.stdout, grouped.stdout):
        assert "rejected on read: 6 record(s), 2 cause(s)" in out
        [first, second] = lines(out, "reject: ")
        assert first.startswith(f"reject: read: unknown Lead.Status 'Nurturing': 4 record(s) "
                                f"-> {fix} (e.g. ")
        assert second.startswith(f"reject: read: unknown Lead.Status 'Recycled': 2 record(s) "
                                 f"-> {fix} (e.g. ")
        assert "and 1 more (--records lists them)" in first
    # --records: every record on a line of its own, with its cause
    assert sorted(lines(every.stdout, "reject: ")) == sorted(
        [f"reject: read: salesforce:Lead:{lead}: unknown Lead.Status 'Nurturing': 4 record(s) "
         f"-> {fix}" for lead in nurturing]
        + [f"reject: read: salesforce:Lead:{lead}: unknown Lead.Status 'Recycled': 2 record(s) "
           f"-> {fix}" for lead in recycled])
    assert {(r["record"], r["cause"], r["fix"]) for r in as_json} == (
        {(f"salesforce:Lead:{lead}", "unknown Lead.Status 'Nurturing'", fix)
         for lead in nurturing}
        | {(f"salesforce:Lead:{lead}", "unknown Lead.Status 'Recycled'", fix)
           for lead in recycled})


# ---- pipes, errors, flags ----------------------------------------------------------------


def _crmsync(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "connector", *args])


def test_a_closed_pipe_ends_quietly_with_the_command_s_own_exit_code(fresh_world, tmp_path):
    env_file = fresh_world
    state = tmp_path / "state.db"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")},
           "PYTHONPATH": str(ROOT)}
    # --all lists every change of a whole plan: far more than a pipe holds
    for args, code in ((("plan", "--all"), 0), (("status",), 0),
                       (("status", "--state", str(tmp_path / "no.db")), 2)):
        command = _crmsync(*args, "--env-file", str(env_file),
                           *(() if "--state" in args else ("--state", str(state))))
        result = subprocess.run(["bash", "-c", f"{command} | head -1; "
                                 "echo \"exit=${PIPESTATUS[0]}\" >&2"],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.stderr.splitlines()[-1] == f"exit={code}", (args, result.stderr)
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
        assert "Exception ignored" not in result.stderr
        assert len(result.stdout.splitlines()) == (1 if code == 0 else 0)


def test_json_on_a_configuration_error_is_a_json_error_object(tmp_path):
    missing = tmp_path / "missing.env"
    cases = [
        ("sync", "--json", "--env-file", str(missing)),
        ("plan", "--json", "--env-file", str(missing)),
        ("status", "--json", "--state", str(tmp_path / "no.db")),
        ("rejects", "--json", "--state", str(tmp_path / "no.db")),
        ("apply", str(tmp_path / "no-plan.json"), "--json"),
        ("check", "--json", "--env-file", str(missing)),
        ("sync", "--json", "--log-format", "yaml"),
    ]
    for args in cases:
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        error = json.loads(result.stdout)
        assert error["exit_code"] == 2 and error["status"] == "config_error", args
        assert error["error"], args
        if "yaml" not in args:  # the same message on stderr (a usage error: typer's box)
            assert error["error"] in result.stderr, (args, result.stderr)
    # with JSON logs, the error on stderr is a JSON log line too
    result = cli("sync", "--json", "--log-format", "json", "--env-file", str(missing),
                 cwd=tmp_path)
    [line] = result.stderr.splitlines()
    logged = json.loads(line)
    assert (logged["level"], logged["exit_code"]) == ("error", 2)
    assert str(missing) in logged["message"]


def test_log_format_accepts_only_text_and_json(tmp_path):
    for value in ("JSON", "yaml", "Text"):
        result = cli("status", "--log-format", value, cwd=tmp_path)
        assert result.returncode == 2, value
        assert "--log-format" in result.stderr and value in result.stderr


def test_version_is_the_package_s(tmp_path):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = cli("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"crmsync {version}\n")


def _every_command() -> list[list[str]]:
    """Every command the app has, as the words that call it: a command added later is
    checked too."""
    import typer.main  # noqa: PLC0415

    from connector.cli import app  # noqa: PLC0415

    def walk(command, words):
        children = getattr(command, "commands", None)
        if not children:
            return [words]
        return [found for name, child in children.items() for found in walk(child, [*words, name])]

    return walk(typer.main.get_command(app), [])


COMMANDS = _every_command()


def test_every_command_names_the_same_things_the_same_way():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    for command in COMMANDS:
        result = subprocess.run([sys.executable, "-m", "connector", *command, "--help"],
                                capture_output=True, text=True, check=False, env=env)
        assert result.returncode == 0, (command, result.stderr)
        assert "<bool>" not in result.stdout, command
        for option in ("--state", "--env-file", "--mapping"):
            for line in result.stdout.splitlines():
                if re.search(rf"{option}\s", line):
                    assert re.search(rf"{option}\s+PATH\s", line), (command, line)
        usage = next(line for line in result.stdout.splitlines() if "Usage:" in line)
        assert not re.search(r"\{[a-z_]+\}", usage), usage  # {RUN_ID}, not {run_id}
    assert len(COMMANDS) >= 20 and ["init"] in COMMANDS and ["history"] in COMMANDS
    # a paragraph of help is one paragraph, wrapped at the terminal's width, not at the
    # docstring's (whose line breaks fall after "need no" here)
    init = subprocess.run([sys.executable, "-m", "connector", "init", "--help"],
                          capture_output=True, text=True, check=False, env=env).stdout
    assert "so scheduled runs need no flags (flags still win)" in init, init
    check = subprocess.run([sys.executable, "-m", "connector", "check", "--help"],
                           capture_output=True, text=True, check=False, env=env).stdout
    assert re.search(r"--state\s+PATH", check) and "--log-format" in check


# ---- check: exit codes as a run's ------------------------------------------------------------


def test_check_exits_as_a_run_would_and_pipes_whole_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        good = cli("check", cwd=tmp_path, env_file=env_file, state=tmp_path / "new.db")
        broken_state = cli("check", cwd=tmp_path, env_file=env_file, state=corrupt)
        wrong = tmp_path / "wrong-token.env"
        wrong.write_text(env_file.read_text().replace(sandbox.hubspot_access_token,
                                                      "pat-na1-" + "0" * 32))
        refused = cli("check", cwd=tmp_path, env_file=wrong, state=tmp_path / "new.db")
        ca_bundle = sandbox.settings_env()["CRMSYNC_CA_BUNDLE"]
        kept = tmp_path / "ca.pem"  # the sandbox removes its own when it stops
        kept.write_bytes(Path(ca_bundle).read_bytes())
        stopped = tmp_path / "stopped.env"
        stopped.write_text(env_file.read_text().replace(ca_bundle, str(kept)))
    gone = cli("check", cwd=tmp_path, env_file=stopped, state=tmp_path / "new.db")
    empty = tmp_path / "empty.env"
    empty.write_text("")
    unset = cli("check", cwd=tmp_path, env_file=empty, state=tmp_path / "new.db")

    assert good.returncode == 0, good.stdout[-3000:]
    assert "check: crmsync state DB: ok:" in good.stdout
    assert broken_state.returncode == 4, broken_state.stdout[-3000:]
    assert re.search(r"^check: crmsync state DB: error: .*corrupt\.db", broken_state.stdout,
                     re.MULTILINE)
    assert refused.returncode == 2, refused.stdout[-3000:]  # a login to fix, as a run's
    assert "check: hubspot authentication: error:" in refused.stdout
    assert gone.returncode == 4, gone.stdout[-3000:] + gone.stderr  # no CRM to reach: failed
    assert "connectivity: error:" in gone.stdout
    assert unset.returncode == 2
    # the whole variable name and the fix on one line, at 60 columns
    assert re.search(r"^check: hubspot settings: error: .*CRMSYNC_HUBSPOT_ACCESS_TOKEN.* \| "
                     r"fix: ", unset.stdout, re.MULTILINE), unset.stdout
    assert not BOX & set(unset.stdout + good.stdout)


# ---- config/crontab: a log of JSON lines, as it says -------------------------------------


def _crontab_command(folder: Path, env_file: Path) -> str:
    """The shipped crontab's command, with its paths pointed into `folder`."""
    entry = next(line for line in (ROOT / "config" / "crontab").read_text().splitlines()
                 if line.strip() and not line.startswith("#"))
    command = entry.split(None, 6)[6]  # five time fields and the user come first
    for shipped, here in (("/opt/crmsync", str(folder)), ("/etc/crmsync/crmsync.env",
                                                            str(env_file)),
                          ("/var/log/crmsync", str(folder / "log")),
                          ("/tmp/crmsync.lock", str(folder / "lock")),
                          (".venv/bin/crmsync", f"{sys.executable} -m connector")):
        assert shipped in command, shipped
        command = command.replace(shipped, here)
    return command


@pytest.mark.skipif(not Path("/usr/bin/flock").exists() and not Path("/bin/flock").exists(),
                    reason="needs flock, as the crontab does")
def test_the_crontab_s_log_is_json_lines_only(tmp_path):
    (tmp_path / "log").mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")},
           "PYTHONPATH": str(ROOT)}
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        backfill = cli("backfill", cwd=tmp_path, env_file=env_file,
                       state=tmp_path / "crmsync.db")
        assert backfill.returncode == 0, backfill.stderr[-2000:]
        lead = next(r for r in sandbox.salesforce_records("Lead") if not r.get("IsConverted"))
        sandbox.update_salesforce("Lead", lead["Id"], {"Status": "Nurturing"})
        runs = [subprocess.run(["bash", "-c", _crontab_command(tmp_path, env_file)],
                               cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=180, check=False)]
    # and a run that fails on its settings, as a broken deployment would
    runs.append(subprocess.run(["bash", "-c", _crontab_command(tmp_path, tmp_path / "no.env")],
                               cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=180, check=False))
    assert [r.returncode for r in runs] == [1, 2], [r.stderr for r in runs]
    log = (tmp_path / "log" / "sync.log").read_text().splitlines()
    records = [json.loads(line) for line in log]  # every line is one JSON object
    assert any(r["message"].startswith("run ") and r.get("status") == "rejects"
               for r in records)
    assert records[-1]["level"] == "error" and records[-1]["exit_code"] == 2
    assert "no.env" in records[-1]["message"]
