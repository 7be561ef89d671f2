"""Refused credentials are a setting to fix (exit 2, naming the setting); a garbled answer
from a token endpoint is a fault to retry, never a crash."""

from __future__ import annotations

from pathlib import Path

from connector.sandbox import Sandbox
from tests.runs import cli, write_env
from tests.systems.helpers import salesforce_for


def test_a_wrong_hubspot_token_is_a_configuration_error_naming_the_setting(tmp_path: Path):
    with Sandbox(seed=5) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        text = env_file.read_text().replace(sandbox.hubspot_access_token, "pat-na1-wrong-token")
        env_file.write_text(text)
        result = cli("sync", "--allow-empty-state", "--json", cwd=tmp_path, env_file=env_file,
                     state=tmp_path / "state.db")
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "CRMSYNC_HUBSPOT_ACCESS_TOKEN" in result.stdout + result.stderr
    assert "pat-na1-wrong-token" not in result.stdout + result.stderr


def test_a_garbled_token_answer_is_retried_not_a_crash():
    with Sandbox(seed=5) as sandbox:
        salesforce = salesforce_for(sandbox)
        sandbox.set_faults("salesforce.token:truncated=1,seed=1")
        sandbox.before_request("salesforce.token", 2, lambda: sandbox.set_faults(None))
        assert salesforce.count("Lead") is not None
        assert sandbox.counters()["requests"]["salesforce.token"] >= 2
