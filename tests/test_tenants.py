"""Tenants as an operator uses them: `crmsync tenants add|list|check` and `--tenant NAME` on
the run commands, in real processes, each tenant a sandbox of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.sandbox import Sandbox
from connector.state import StateStore
from tests.runs import ROOT, write_env

SEED = 12


def crmsync(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess:
    """The CLI in a process of its own, with no CRMSYNC_ setting from this environment
    unless `env` adds one."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")}
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "connector", *args], cwd=cwd,
                          env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def add(cwd: Path, name: str, sandbox: Sandbox, *extra: str) -> Path:
    folder = cwd / f"{name}-files"
    folder.mkdir()
    env_file = write_env(sandbox, folder)
    done = crmsync("tenants", "add", name, "--env-file", str(env_file), *extra, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert f"added tenant {name}" in done.stdout
    return env_file


def test_a_run_with_tenant_uses_that_tenants_settings_state_and_nobody_elses(tmp_path):
    with Sandbox(seed=SEED) as first, Sandbox(seed=SEED + 1) as second:
        add(tmp_path, "first", first, "--state", str(tmp_path / "first.db"))
        add(tmp_path, "second", second, "--state", str(tmp_path / "second.db"))
        second.reset_counters()
        run = crmsync("sync", "--allow-empty-state", "--tenant", "first", "--json", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["applied"] > 0
        assert second.counters()["total_requests"] == 0  # the other tenant's CRMs: untouched
        assert not (tmp_path / "second.db").exists()
        with StateStore(tmp_path / "first.db") as store:
            assert store.mirror.count() > 0


def test_the_process_environment_never_becomes_a_tenants_setting(tmp_path):
    """A worker serves many tenants: a token in its environment must not override (or fill
    in for) a tenant's own."""
    with Sandbox(seed=SEED) as sandbox:
        add(tmp_path, "acme", sandbox, "--state", str(tmp_path / "acme.db"))
        run = crmsync("sync", "--allow-empty-state", "--tenant", "acme", cwd=tmp_path,
                      env={"CRMSYNC_HUBSPOT_ACCESS_TOKEN": "pat-not-this-tenants-token",
                           "CRMSYNC_STATE_PATH": str(tmp_path / "shared.db")})
        assert run.returncode == 0, run.stderr
        assert (tmp_path / "acme.db").exists() and not (tmp_path / "shared.db").exists()


def test_an_unknown_tenant_or_two_sources_of_settings_are_configuration_errors(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        env_file = add(tmp_path, "acme", sandbox)
        unknown = crmsync("sync", "--allow-empty-state", "--tenant", "acne", cwd=tmp_path)
        assert unknown.returncode == 2
        assert "no tenant 'acne'" in unknown.stderr and "did you mean 'acme'?" in unknown.stderr
        both = crmsync("sync", "--allow-empty-state", "--tenant", "acme", "--env-file",
                       str(env_file), cwd=tmp_path)
        assert both.returncode == 2
        assert "--tenant and --env-file" in both.stderr
        assert sandbox.counters()["total_requests"] == 0


def test_add_refuses_a_bad_mapping_or_missing_settings_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("picklists:\n  hubspot:\n    contacts:\n      lifecyclestage:\n"
                   "        lead: not_a_stage\n", encoding="utf-8")
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        refused = crmsync("tenants", "add", "acme", "--env-file", str(env_file), "--mapping",
                          str(bad), cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        assert "bad.yaml" in refused.stderr
        missing = crmsync("tenants", "add", "acme", "--env-file", str(tmp_path / "nope.env"),
                          cwd=tmp_path)
        assert missing.returncode == 2 and "nope.env not found" in missing.stderr
        both = crmsync("tenants", "add", "acme", "--env-file", str(env_file), "--secrets-dir",
                       str(tmp_path), cwd=tmp_path)
        assert both.returncode == 2 and "exactly one of --env-file and --secrets-dir" \
            in both.stderr
        assert not (tmp_path / "tenants" / "acme.toml").exists()


def test_list_shows_every_tenant_and_names_a_broken_file(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        add(tmp_path, "acme", sandbox, "--sync-every", "5m",
            "--state", "postgresql://crm:hunter2-pw@db.example:5432/crmsync")
        add(tmp_path, "globex", sandbox, "--sync-every", "off")
    (tmp_path / "tenants" / "initech.toml").write_text('env_fil = "x.env"\n', encoding="utf-8")
    listed = crmsync("tenants", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 2
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"acme", "globex"}
    assert (rows["acme"]["sync_every_seconds"], rows["globex"]["sync_every_seconds"]) == \
        (300, None)
    assert "hunter2-pw" not in listed.stdout and ":***@" in rows["acme"]["state"]
    assert "initech.toml: unknown key 'env_fil' (did you mean 'env_file'?)" in listed.stderr


def test_check_reports_each_tenant_and_one_broken_tenant_does_not_stop_the_others(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        add(tmp_path, "good", sandbox, "--state", str(tmp_path / "good.db"))
        broken_env = add(tmp_path, "broken", sandbox)
        broken_env.write_text("CRMSYNC_HTTP_TIMEOUT_SECONDS=-1\n", encoding="utf-8")
        synced = crmsync("sync", "--allow-empty-state", "--tenant", "good", cwd=tmp_path)
        assert synced.returncode == 0, synced.stderr
        checked = crmsync("tenants", "check", "--crm", "--json", cwd=tmp_path)
    assert checked.returncode == 2, checked.stderr
    found = json.loads(checked.stdout)
    by = {(f["tenant"], f["check"]): f for f in found}
    assert by[("broken", "settings")]["level"] == "error"
    assert "CRMSYNC_HTTP_TIMEOUT_SECONDS" in by[("broken", "settings")]["detail"]
    good = [f for f in found if f["tenant"] == "good"]
    assert good and all(f["level"] != "error" for f in good), good
    assert by[("good", "last run")]["detail"].startswith("run 1 sync ok")
    assert any(f["check"].startswith("hubspot:") for f in good)  # --crm logged in


def test_tenants_share_one_postgresql_database_each_with_its_own_rows(tmp_path,
                                                                     postgres_schema):
    from tests.state_backends import POSTGRES_URL  # noqa: PLC0415

    joint = "&" if "?" in POSTGRES_URL else "?"
    shared = f"{POSTGRES_URL}{joint}schema={postgres_schema}"
    with Sandbox(seed=SEED) as first, Sandbox(seed=SEED + 1) as second:
        add(tmp_path, "pg-first", first, "--state", shared)
        add(tmp_path, "pg-second", second, "--state", shared)
        for name in ("pg-first", "pg-second", "pg-first"):
            run = crmsync("sync", "--allow-empty-state", "--tenant", name, "--json", cwd=tmp_path)
            assert run.returncode == 0, run.stderr
        with StateStore(shared, tenant="pg-first") as one, \
                StateStore(shared, tenant="pg-second") as two:
            assert [r.status for r in one.journal.runs()] == ["ok", "ok"]
            assert [r.status for r in two.journal.runs()] == ["ok"]
            for store, sandbox in ((one, first), (two, second)):  # each its own CRMs' records
                assert _emails(store.mirror.raw()) <= {
                    c["properties"].get("email") for c in sandbox.hubspot_records("contacts")}
            assert _emails(one.mirror.raw()) != _emails(two.mirror.raw())


def _emails(mirrored: dict[str, dict]) -> set[str]:
    return {raw["properties"].get("email") for ref, raw in mirrored.items()
            if ref.startswith("hubspot:contacts:")}


@pytest.mark.parametrize("text", ["5", "1d", "-1m", "0s"])
def test_a_schedule_that_is_not_an_interval_is_refused(text, tmp_path):
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.tenants import parse_interval  # noqa: PLC0415

    with pytest.raises(ConfigurationError, match="is not an interval"):
        parse_interval(text, "here")


def test_a_scheduled_tenant_run_meets_the_guards_a_sync_meets(tmp_path, monkeypatch):
    """The worker's run of a tenant: its first sync may start from an empty state DB, but a
    later one whose mapping is not the pinned one stops (as `crmsync sync` does) and writes
    nothing; the admin accepts the change from the command line."""
    from connector.orchestration.tasks import TenantRunFailed, run_tenant  # noqa: PLC0415

    mapping = tmp_path / "acme.yaml"
    mapping.write_text((ROOT / "mappings" / "default.yaml").read_text())
    with Sandbox(seed=SEED) as sandbox:
        add(tmp_path, "acme", sandbox, "--state", str(tmp_path / "acme.db"),
            "--mapping", str(mapping))
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("CRMSYNC_TENANTS_DIR", raising=False)
        first = run_tenant("acme", "sync")
        assert first["status"] == "ok" and first["applied"] > 0, first
        mapping.write_text(mapping.read_text().replace("at_least: 5000000",
                                                       "at_least: 500000000000"))
        written = sum(sandbox.counters()["records_written"].values())
        with pytest.raises(TenantRunFailed, match="pinned"):
            run_tenant("acme", "sync")
        assert sum(sandbox.counters()["records_written"].values()) == written
