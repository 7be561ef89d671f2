"""`crmsync fields` as an admin runs it: a real process, against the sandbox over HTTPS, and
what a person or a pipe sees."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from connector.catalog import HUBSPOT_FIELD_CREATION_SCOPES, HUBSPOT_SCOPES
from connector.sandbox import Sandbox
from tests.runs import ROOT, cli, write_env

REMOVED = [("contacts", "crmsync_priority"), ("companies", "crmsync_trigger_type"),
           ("companies", "recent_funding_date")]


def _hubspot_properties(sb: Sandbox, object_type: str) -> dict[str, dict]:
    """The portal's properties as its properties API answers (the sandbox's own HTTP API)."""
    response = requests.get(f"{sb.hubspot_base_url}/crm/v3/properties/{object_type}",
                            headers={"Authorization": f"Bearer {sb.hubspot_access_token}"},
                            verify=sb.ca_path, timeout=10)
    return {p["name"]: p for p in response.json()["results"]}


def _check(tmp_path: Path, env: Path) -> tuple[int, list[dict]]:
    result = cli("check", "--json", cwd=tmp_path, env_file=env)
    return result.returncode, json.loads(result.stdout)["findings"]


def _missing(findings: list[dict]) -> set[tuple[str, str]]:
    return {(f["object_type"], f["field"]) for f in findings if f["what"] == "field exists"}


def test_the_list_needs_no_credentials_and_marks_custom_and_standard(tmp_path) -> None:
    result = cli("fields", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()
             if line.startswith("  hubspot ") or line.startswith("  salesforce ")}
    priority = lines["contacts.crmsync_priority"]
    assert " custom " in priority and "enumeration/select" in priority
    assert '"trigger_fit", "fit", "nonfit_lead", "other"' in priority
    assert " standard " in lines["contacts.lifecyclestage"]
    assert " standard " in lines["Lead.Status"]
    stage = lines["Contact.Lifecycle_Stage__c"]
    assert " custom " in stage and "Picklist" in stage and '"Disqualified"' in stage
    assert "Checkbox" in lines["Account.Buying_Signal__c"]
    assert " read " in lines["Account.Funding_Announced_Date__c"]
    scopes = re.search(r"scopes this mapping needs: (.*)", result.stdout).group(1).split()
    assert scopes == list(HUBSPOT_SCOPES)


def test_json_lists_every_field_with_its_options(tmp_path) -> None:
    result = cli("fields", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_name = {(f["system"], f["object"], f["field"]): f for f in report["fields"]}
    fit = by_name["hubspot", "companies", "crmsync_icp_fit"]
    assert (fit["custom"], fit["hubspot_type"], fit["hubspot_field_type"]) == (
        True, "bool", "booleancheckbox")
    assert [o["value"] for o in fit["options"]] == ["true", "false"]
    assert by_name["salesforce", "Account", "Type"]["custom"] is False
    assert report["hubspot_field_creation_scopes"] == list(HUBSPOT_FIELD_CREATION_SCOPES)


def test_create_takes_only_hubspot_and_says_what_to_do_for_salesforce(tmp_path) -> None:
    result = cli("fields", "--create", "salesforce", cwd=tmp_path)
    assert result.returncode == 2
    assert "--salesforce-metadata" in result.stderr


def test_create_hubspot_makes_the_missing_properties_that_check_then_finds(tmp_path) -> None:
    with Sandbox(seed=5) as sb:
        env = write_env(sb, tmp_path)
        for object_type, name in REMOVED:
            sb.remove_hubspot_property(object_type, name)
        code, findings = _check(tmp_path, env)
        assert code == 2  # something to fix
        assert _missing(findings) == set(REMOVED)

        # in a pipe nobody can answer the question: nothing is created without --yes
        refused = cli("fields", "--create", "hubspot", cwd=tmp_path, env_file=env)
        assert refused.returncode == 2
        assert "--yes" in refused.stderr and "Nothing was created" in refused.stderr
        assert "create   contacts.crmsync_priority" in refused.stdout
        assert "crmsync_priority" not in _hubspot_properties(sb, "contacts")

        created = cli("fields", "--create", "hubspot", "--yes", cwd=tmp_path, env_file=env)
        assert created.returncode == 0, created.stdout + created.stderr
        for object_type, name in REMOVED:
            assert f"created  {object_type}.{name}" in created.stdout
        assert "Done: 3 created, 8 already there" in created.stdout
        made = _hubspot_properties(sb, "companies")["crmsync_trigger_type"]
        assert (made["type"], made["fieldType"], made["groupName"]) == (
            "enumeration", "select", "companyinformation")
        assert [o["value"] for o in made["options"]] == [
            "cost_savings", "expansion", "funding", "new_executive"]

        code, findings = _check(tmp_path, env)
        assert code == 0, [f for f in findings if f["level"] == "error"]
        assert _missing(findings) == set()

        again = cli("fields", "--create", "hubspot", "--yes", cwd=tmp_path, env_file=env)
        assert again.returncode == 0
        assert "0 properties to create, 11 already there" in again.stdout


def _on_a_terminal(tmp_path: Path, env: Path, answer: str) -> subprocess.CompletedProcess:
    """`crmsync fields --create hubspot` with a terminal (a pty) as stdin, answered `answer`."""
    main, terminal = os.openpty()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")}
    environment["PYTHONPATH"] = str(ROOT)
    try:
        os.write(main, answer.encode() + b"\n")
        return subprocess.run(
            [sys.executable, "-m", "connector", "fields", "--create", "hubspot",
             "--env-file", str(env)],
            cwd=tmp_path, env=environment, stdin=terminal, capture_output=True, text=True,
            timeout=120, check=False)
    finally:
        os.close(terminal)
        os.close(main)


def test_on_a_terminal_it_asks_first_and_no_creates_nothing(tmp_path) -> None:
    with Sandbox(seed=5) as sb:
        env = write_env(sb, tmp_path)
        sb.remove_hubspot_property("contacts", "crmsync_priority")
        declined = _on_a_terminal(tmp_path, env, "n")
        assert declined.returncode == 0, declined.stderr
        assert "Create 1 property in the HubSpot portal at" in declined.stdout
        assert "Nothing was created." in declined.stdout
        assert "crmsync_priority" not in _hubspot_properties(sb, "contacts")

        accepted = _on_a_terminal(tmp_path, env, "y")
        assert accepted.returncode == 0, accepted.stderr
        assert "created  contacts.crmsync_priority" in accepted.stdout
        assert "crmsync_priority" in _hubspot_properties(sb, "contacts")


def test_a_property_of_the_wrong_type_is_reported_and_left_as_it_is(tmp_path) -> None:
    with Sandbox(seed=5) as sb:
        env = write_env(sb, tmp_path)
        sb.retype_hubspot_property("companies", "crmsync_trigger_date", "datetime", "date")
        sb.remove_hubspot_option("contacts", "crmsync_priority", "nonfit_lead")
        result = cli("fields", "--create", "hubspot", "--yes", cwd=tmp_path, env_file=env)
        assert result.returncode == 1
        assert re.search(r"WRONG +companies\.crmsync_trigger_date is a datetime property",
                         result.stdout)
        assert re.search(r"WRONG +contacts\.crmsync_priority lacks the option\(s\) "
                         r"'nonfit_lead'", result.stdout)
        assert "0 properties to create" in result.stdout
        assert _hubspot_properties(sb, "companies")["crmsync_trigger_date"]["type"] == "datetime"
        options = _hubspot_properties(sb, "contacts")["crmsync_priority"]["options"]
        assert "nonfit_lead" not in [o["value"] for o in options]


@pytest.fixture
def least_privilege(tmp_path):
    """A portal whose private app has exactly the scopes README and example.env list."""
    with Sandbox(seed=5, hubspot_scopes=HUBSPOT_SCOPES) as sb:
        yield sb, write_env(sb, tmp_path)


def test_the_listed_scopes_are_enough_to_check_and_backfill(tmp_path, least_privilege) -> None:
    sb, env = least_privilege
    code, findings = _check(tmp_path, env)
    assert code == 0, [f for f in findings if f["level"] == "error"]
    backfill = cli("backfill", cwd=tmp_path, env_file=env, state=tmp_path / "crmsync.db")
    assert backfill.returncode in (0, 1), backfill.stderr
    assert "scope" not in backfill.stderr.lower()
    # it wrote to HubSpot with no scope beyond the list
    assert sb.counters()["records_written"].get("hubspot.batch_update", 0) > 0


def test_creating_properties_needs_the_optional_scopes_and_says_which(
    tmp_path, least_privilege
) -> None:
    sb, env = least_privilege
    sb.remove_hubspot_property("contacts", "crmsync_priority")
    result = cli("fields", "--create", "hubspot", "--yes", cwd=tmp_path, env_file=env)
    assert result.returncode == 2
    assert "crm.schemas.contacts.write" in result.stderr
    assert "crmsync_priority" not in _hubspot_properties(sb, "contacts")


def test_check_names_the_one_scope_list_when_a_scope_is_missing(tmp_path) -> None:
    with Sandbox(seed=5, hubspot_scopes=set(HUBSPOT_SCOPES) - {"crm.schemas.deals.read"}) as sb:
        code, findings = _check(tmp_path, write_env(sb, tmp_path))
    assert code == 2  # something to fix
    fix = next(f["fix"] for f in findings if f["what"] == "scopes")
    needed = re.search(r"crmsync needs the scopes (.*?) \(and", fix).group(1).split()
    optional = re.search(r"fields --create hubspot`, (.*?)\)", fix).group(1).split()
    assert needed == list(HUBSPOT_SCOPES)
    assert optional == list(HUBSPOT_FIELD_CREATION_SCOPES)
    assert fix.startswith("grant crm.schemas.deals.read ")


def test_salesforce_metadata_is_written_and_says_how_to_deploy(tmp_path) -> None:
    result = cli("fields", "--salesforce-metadata", "sf-fields", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sf project deploy start" in result.stdout
    assert "sf org assign permset --name Crmsync_Integration" in result.stdout
    assert (tmp_path / "sf-fields" / "force-app" / "main" / "default" / "objects" / "Account"
            / "fields" / "Priority__c.field-meta.xml").exists()
    refused = cli("fields", "--salesforce-metadata", "sf-fields/force-app", cwd=tmp_path)
    assert refused.returncode == 2
    assert "not empty" in refused.stderr
