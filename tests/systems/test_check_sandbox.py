"""`crmsync check` against the sandbox: the real properties API and describe, and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.sandbox import Sandbox
from connector.systems.check import run_check

from .helpers import SANDBOX_MAPPING as MAPPING
from .helpers import settings_for


def test_check_lists_missing_and_read_only_fields(small_sandbox: Sandbox) -> None:
    report = run_check(settings_for(small_sandbox), MAPPING)
    problems = {(f.system, f.object_type, f.field, f.what) for f in report.errors}
    assert problems == {
        ("hubspot", "contacts", "no_such_property", "field exists"),
        ("hubspot", "companies", "hs_object_id", "field writable"),
        ("salesforce", "Lead", "No_Such_Field__c", "field exists"),
    }
    ok = {(f.system, f.what) for f in report.findings if f.level == "ok"}
    assert ("hubspot", "connectivity and authentication") in ok
    assert ("salesforce", "connectivity and authentication") in ok
    fixes = " ".join(f.fix for f in report.errors)
    assert "Object Manager > Lead" in fixes and "/crm/v3/properties/contacts" in fixes


def test_cli_check_passes_with_the_default_mapping(sandbox_env: Sandbox) -> None:
    result = CliRunner().invoke(app, ["check", "--json"])
    report = json.loads(result.stdout)
    assert [f for f in report["findings"] if f["level"] == "error"] == []
    assert result.exit_code == 0


def test_cli_check_fails_on_bad_credentials_without_leaking_them(
    sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "pat-na1-" + "e" * 32
    monkeypatch.setenv("CRMSYNC_HUBSPOT_ACCESS_TOKEN", secret)
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 2  # a login to fix, as a run exits on it
    assert "authentication" in result.stdout
    assert secret not in result.stdout


def test_cli_check_exits_2_on_missing_settings(
    sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRMSYNC_HUBSPOT_ACCESS_TOKEN")
    result = CliRunner().invoke(app, ["check", "--json"])
    report = json.loads(result.stdout)
    settings_errors = [f for f in report["findings"] if f["what"] == "settings"]
    assert settings_errors and "CRMSYNC_HUBSPOT_ACCESS_TOKEN" in settings_errors[0]["detail"]
    assert result.exit_code == 2
    # Salesforce was still checked.
    assert any(f["system"] == "salesforce" and f["level"] == "ok" for f in report["findings"])
