"""What a person or a scheduler sees when something goes wrong: the real `crmsync` command in a
subprocess, its exit code and its stderr. Every failure ends with a documented exit code (2
configuration, 3 stopped and resumable, 4 failed) and one clear line, never a traceback unless
asked for with --verbose or --log-level debug."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connector.sandbox import Sandbox
from connector.state import StateStore
from tests.runs import ROOT, cli, write_env

COMMANDS = [
    ["sync"], ["backfill"], ["plan"], ["apply"], ["rollback"], ["status"], ["rejects"],
    ["check"], ["demo"], ["mappings", "validate"], ["mappings", "explain"],
    ["mappings", "schema"], ["sandbox", "serve"],
]


def assert_one_clean_line(stderr: str) -> str:
    """The stderr of a failed command: no traceback, and the last line says what went wrong."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    return lines[-1]


# --- hostile values from a CRM -------------------------------------------------------------


@pytest.mark.parametrize("columns", ["80", "200"])  # blocks on narrow terminals, a table on wide
def test_crm_values_that_look_like_rich_markup_are_printed_as_they_are(
    columns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    with Sandbox(seed=10) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        contact = sandbox.hubspot_records("contacts")[0]
        sandbox.update_hubspot("contacts", contact["id"], {"crmsync_priority": "[/red]"})
        result = cli("plan", cwd=tmp_path, env_file=env_file, state=tmp_path / "state.db")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "[/red]" in result.stdout


# --- configuration mistakes: exit 2 with one message naming the culprit ----------------------


def test_rollback_of_a_run_id_too_big_for_sqlite_is_no_such_run(tmp_path: Path) -> None:
    with Sandbox(seed=10) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        for run_id in ("99999999999999999999999", "424242"):
            result = cli("rollback", run_id, cwd=tmp_path, env_file=env_file, state=state)
            assert result.returncode == 2, result.stderr[-2000:]
            assert f"no run {run_id}" in assert_one_clean_line(result.stderr)


def test_a_latin1_env_file_is_a_configuration_error_naming_file_and_byte(tmp_path: Path) -> None:
    env_file = tmp_path / "latin1.env"
    env_file.write_bytes(b"CRMSYNC_SALESFORCE_USERNAME=ren\xe9@acme.com\n")
    result = cli("sync", cwd=tmp_path, env_file=env_file, state=tmp_path / "state.db")
    assert result.returncode == 2
    line = assert_one_clean_line(result.stderr)
    assert str(env_file) in line and "offset 31" in line and "UTF-8" in line


@pytest.mark.parametrize("value", ["inf", "nan", "-5", "0"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(value: str, tmp_path: Path) -> None:
    with Sandbox(seed=10) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        env_file.write_text(env_file.read_text() + f"CRMSYNC_HTTP_TIMEOUT_SECONDS={value}\n")
        sandbox.reset_counters()
        result = cli("sync", cwd=tmp_path, env_file=env_file, state=tmp_path / "state.db")
        assert sandbox.counters()["total_requests"] == 0
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "CRMSYNC_HTTP_TIMEOUT_SECONDS" in result.stderr


@pytest.mark.parametrize("command", [["sync"], ["check"], ["status"]])
def test_an_env_file_that_is_missing_or_a_directory_is_refused(
    command: list[str], tmp_path: Path
) -> None:
    for env_file, says in ((tmp_path / "prod.env", "not found"), (tmp_path, "not a file")):
        result = cli(*command, cwd=tmp_path, env_file=env_file)
        assert result.returncode == 2, (command, result.stderr[-2000:])
        line = assert_one_clean_line(result.stderr)
        assert str(env_file) in line and says in line


def test_log_format_and_log_level_accept_only_their_values(tmp_path: Path) -> None:
    for option, value in (("--log-format", "xml"), ("--log-level", "chatty")):
        result = cli("sync", option, value, cwd=tmp_path, env_file=tmp_path / "none.env")
        assert result.returncode == 2
        assert value in result.stderr and option in result.stderr
        assert "Traceback" not in result.stderr


def test_every_command_offers_the_same_logging_options() -> None:
    for command in COMMANDS:
        result = subprocess.run([sys.executable, "-m", "connector", *command, "--help"],
                                capture_output=True, text=True, check=False,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})
        assert result.returncode == 0, (command, result.stderr)
        for option in ("--verbose", "--log-level", "--log-format"):
            assert option in result.stdout, (command, option)


# --- failures: exit 4 (or the class's own code) and one line, whatever raised --------------

PATCHED_MAIN = """
import sys
import connector.exceptions as errors
import connector.reporting as reporting

def fail(*args, **kwargs):
    raise {error}

reporting.status_data = fail
from connector.cli import main
sys.argv = ["crmsync", *sys.argv[1:]]
main()
"""


def run_with_status_failing(tmp_path: Path, error: str, *args: str):
    """`crmsync status` in a real process whose status query raises `error`."""
    state = tmp_path / "state.db"
    StateStore(state).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", PATCHED_MAIN.format(error=error), "status", "--state", str(state),
         *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=60)


def test_an_unexpected_exception_is_exit_4_with_one_line(tmp_path: Path) -> None:
    result = run_with_status_failing(tmp_path, 'KeyError("watermarks")')
    assert result.returncode == 4
    assert assert_one_clean_line(result.stderr) == (
        "crmsync failed unexpectedly: KeyError: 'watermarks'; rerun with --log-level debug for "
        "details")


@pytest.mark.parametrize("flag", [["--verbose"], ["--log-level", "debug"]])
def test_verbose_shows_the_traceback_of_an_unexpected_exception(
    flag: list[str], tmp_path: Path
) -> None:
    result = run_with_status_failing(tmp_path, 'KeyError("watermarks")', *flag)
    assert result.returncode == 4
    assert "Traceback" in result.stderr and "KeyError: 'watermarks'" in result.stderr


@pytest.mark.parametrize(("error", "code", "says"), [
    ('errors.SettingsError("CRMSYNC_X is wrong")', 2, "configuration error: CRMSYNC_X is wrong"),
    ('errors.RunLockHeld("another run holds the lock")', 3,
     "stopped: another run holds the lock"),
    ('errors.FatalApiError("no access", system="hubspot", operation="read", status=403)', 4,
     "crmsync failed: hubspot read HTTP 403: no access"),
    ('errors.CrmsyncError("state DB is damaged")', 4, "crmsync failed: state DB is damaged"),
])
def test_crmsync_errors_escaping_a_command_end_with_their_exit_code(
    error: str, code: int, says: str, tmp_path: Path
) -> None:
    result = run_with_status_failing(tmp_path, error)
    assert result.returncode == code, result.stderr
    assert assert_one_clean_line(result.stderr) == says


def test_a_run_that_fails_on_api_errors_exits_4_with_a_clean_message(tmp_path: Path) -> None:
    with Sandbox(seed=10, faults="hubspot.*:500=1") as sandbox:
        env_file = write_env(sandbox, tmp_path)
        result = cli("sync", "--allow-empty-state", cwd=tmp_path, env_file=env_file,
                     state=tmp_path / "state.db")
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    assert re.search(r"ERROR crmsync\.sync: run 1 failed.*hubspot .*HTTP 500", result.stderr)


# --- retries are visible ---------------------------------------------------------------------


def test_every_retry_is_logged_on_stderr_with_attempt_and_wait(tmp_path: Path) -> None:
    with Sandbox(seed=10, faults="*:503=0.15, seed=3") as sandbox:
        env_file = write_env(sandbox, tmp_path)
        result = cli("backfill", "--json", cwd=tmp_path, env_file=env_file,
                     state=tmp_path / "state.db")
    assert result.returncode == 0, result.stderr[-2000:]
    retries = sum(u["retries"] for u in json.loads(result.stdout)["api_calls"].values())
    lines = re.findall(r"WARNING crmsync\.retry: (hubspot|salesforce) \S+ failed \(attempt \d+ "
                       r"of \d+\): .*HTTP 503.*; retrying in \d+\.\d+ s", result.stderr)
    assert retries > 0
    assert len(lines) == retries


def test_log_level_error_hides_retries_and_progress(tmp_path: Path) -> None:
    with Sandbox(seed=10, faults="*:503=0.15, seed=3") as sandbox:
        env_file = write_env(sandbox, tmp_path)
        result = cli("backfill", "--log-level", "error", cwd=tmp_path, env_file=env_file,
                     state=tmp_path / "state.db")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
