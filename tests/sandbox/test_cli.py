"""`crmsync sandbox serve`: ready fast, publishes its settings, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from typer.testing import CliRunner

from connector.cli import app

SETTINGS = ("CRMSYNC_HUBSPOT_ACCESS_TOKEN", "CRMSYNC_HUBSPOT_BASE_URL",
            "CRMSYNC_SALESFORCE_INSTANCE_URL", "CRMSYNC_SALESFORCE_CLIENT_ID",
            "CRMSYNC_SALESFORCE_CLIENT_SECRET", "CRMSYNC_CA_BUNDLE")


def _serve(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from connector.cli import main; main()",
               "sandbox", "serve", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen[str], limit: float) -> float:
    started = time.monotonic()
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() - started < limit, f"no env file after {limit} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_serve_seed_1000_writes_its_env_file_and_answers(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    process = _serve("--seed", "1000", "--env-file", str(env_file))
    try:
        _wait_for(env_file, process, limit=60.0)  # a hang guard, not a speed target
        settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert tuple(settings) == SETTINGS
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        session = requests.Session()
        session.verify = settings["CRMSYNC_CA_BUNDLE"]
        session.trust_env = False
        page = session.get(
            settings["CRMSYNC_HUBSPOT_BASE_URL"] + "/crm/v3/objects/companies?limit=100",
            headers={"Authorization": "Bearer " + settings["CRMSYNC_HUBSPOT_ACCESS_TOKEN"]},
            timeout=5,
        )
        assert page.status_code == 200 and len(page.json()["results"]) == 100
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert all(f"{key}=" in out for key in SETTINGS)
    assert settings["CRMSYNC_HUBSPOT_ACCESS_TOKEN"] not in err
    assert not env_file.exists(), "the env file goes with the sandbox"


def test_fixture_and_faults_options(tmp_path: Path) -> None:
    fixture = tmp_path / "one.json"
    fixture.write_text('{"hubspot": {"contacts": [{"properties": {"email": "a@b.nl"}}]}}')
    env_file = tmp_path / "sandbox.env"
    process = _serve("--fixture", str(fixture), "--faults", "hubspot.list:503=1",
                     "--env-file", str(env_file))
    try:
        _wait_for(env_file, process, limit=60.0)  # a hang guard, not a speed target
        settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        session = requests.Session()
        session.verify = settings["CRMSYNC_CA_BUNDLE"]
        session.trust_env = False
        base = settings["CRMSYNC_HUBSPOT_BASE_URL"]
        records = session.get(base + "/__sandbox/records/hubspot/contacts", timeout=5).json()
        assert [r["properties"]["email"] for r in records] == ["a@b.nl"]
        answer = session.get(base + "/crm/v3/objects/contacts", timeout=5, headers={
            "Authorization": "Bearer " + settings["CRMSYNC_HUBSPOT_ACCESS_TOKEN"]})
        assert answer.status_code == 503
    finally:
        os.kill(process.pid, signal.SIGINT)
        process.communicate(timeout=10)


def test_help_is_enough_to_point_the_sdks_at_it() -> None:
    result = CliRunner().invoke(app, ["sandbox", "serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for needle in (*SETTINGS, "ssl_ca_cert", "trust_env", "/services/oauth2/token",
                   "client_credentials", "TARGET:KIND=RATE", "hubspot.search", "drop"):
        assert needle in result.output, needle


def test_bad_options_exit_2() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["sandbox", "serve", "--faults", "x:y=1"]).exit_code == 2
    both = runner.invoke(app, ["sandbox", "serve", "--seed", "1", "--fixture", "f.json"])
    assert both.exit_code == 2
    assert runner.invoke(app, ["sandbox", "serve", "--churn", "fast"]).exit_code == 2


def test_churn_changes_records_while_it_serves(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    process = _serve("--seed", "20", "--churn", "50/s", "--env-file", str(env_file))
    try:
        _wait_for(env_file, process, limit=60.0)
        settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        session = requests.Session()
        session.verify = settings["CRMSYNC_CA_BUNDLE"]
        session.trust_env = False
        dump = settings["CRMSYNC_HUBSPOT_BASE_URL"] + "/__sandbox/dump"
        before = session.get(dump, timeout=10).json()
        time.sleep(1.0)
        after = session.get(dump, timeout=10).json()
        assert after != before
    finally:
        os.kill(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert "churn: changing records at 50/s" in err
    assert "hubspot.edit" in err or "salesforce.edit" in err  # the closing tally
