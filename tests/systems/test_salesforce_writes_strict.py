"""Salesforce writes against an org configured as real ones are: duplicate rules, heavy
automation, fields the org does not have, and refused logins. Real SDK, real HTTPS."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.exceptions import ConfigurationError, CredentialsRejected, SettingsError
from connector.sandbox import Sandbox
from connector.settings import load_settings
from connector.systems.base import RecordUpdate

from .helpers import FAST_LIMITS, salesforce_for

ROOT = Path(__file__).resolve().parents[2]


def people(leads: int, contacts: int, *, shared: int = 0) -> dict[str, Any]:
    """`leads` Leads and `contacts` Contacts; the first `shared` of each share an e-mail
    (in another case), as the standard duplicate rules match them."""
    lead_rows = [{"LastName": f"Lead {n}", "Company": "Polder B.V.",
                  "Status": "Open - Not Contacted", "Email": f"lead{n}@polder.nl"}
                 for n in range(leads)]
    contact_rows = [{"LastName": f"Contact {n}",
                     "Email": (f"LEAD{n}@polder.nl" if n < shared else f"contact{n}@polder.nl")}
                    for n in range(contacts)]
    return {"salesforce": {"Lead": lead_rows, "Contact": contact_rows}}


@pytest.fixture
def duplicates() -> Iterator[Sandbox]:
    """Three Leads, each sharing its e-mail with a Contact; duplicate rules on (default)."""
    with Sandbox(fixture=people(3, 3, shared=3), **FAST_LIMITS) as sb:
        yield sb


def composite_calls(sb: Sandbox) -> int:
    return sb.counters()["requests"].get("salesforce.composite", 0)


def ids(sb: Sandbox, sobject: str) -> list[str]:
    return [r["Id"] for r in sb.salesforce_records(sobject)]


# ---- 5. duplicate rules --------------------------------------------------------------------


def test_a_lead_sharing_an_email_with_a_contact_gets_its_write_applied(
    duplicates: Sandbox,
) -> None:
    salesforce = salesforce_for(duplicates)
    leads = ids(duplicates, "Lead")
    results = salesforce.write("Lead", [RecordUpdate(i, {"Priority__c": "fit"}) for i in leads])
    assert [(r.status, r.code) for r in results] == [("applied", None)] * 3
    assert {duplicates.salesforce_record("Lead", i)["Priority__c"] for i in leads} == {"fit"}
    contacts = ids(duplicates, "Contact")
    results = salesforce.write(
        "Contact", [RecordUpdate(i, {"Lifecycle_Stage__c": "SQL"}) for i in contacts])
    assert {r.status for r in results} == {"applied"}
    assert composite_calls(duplicates) == 2


def test_without_allow_save_the_duplicate_is_rejected_naming_the_rule_and_setting(
    duplicates: Sandbox,
) -> None:
    salesforce = salesforce_for(duplicates, salesforce_allow_save_on_duplicates=False)
    lead = ids(duplicates, "Lead")[0]
    contact = next(r["Id"] for r in duplicates.salesforce_records("Contact")
                   if r["Email"] == "LEAD0@polder.nl")
    [result] = salesforce.write("Lead", [RecordUpdate(lead, {"Priority__c": "fit"})])
    assert (result.status, result.code) == ("rejected", "DUPLICATES_DETECTED")
    assert result.message is not None
    assert result.message.startswith("Use one of these records?")
    assert contact in result.message
    assert "CRMSYNC_SALESFORCE_ALLOW_SAVE_ON_DUPLICATES" in result.message
    assert duplicates.salesforce_record("Lead", lead)["Priority__c"] is None


# ---- 6. org automation limits ----------------------------------------------------------------


def test_a_whole_collection_failing_a_governor_limit_is_resent_at_half_the_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="connector.systems.salesforce")
    with Sandbox(fixture=people(0, 260), salesforce_automation_max_batch=60,
                 **FAST_LIMITS) as sb:
        salesforce = salesforce_for(sb)
        contacts = ids(sb, "Contact")
        updates = [RecordUpdate(i, {"Lifecycle_Stage__c": "SQL"}) for i in contacts[:200]]
        results = salesforce.write("Contact", updates)
        assert [r.status for r in results] == ["applied"] * 200
        assert {sb.salesforce_record("Contact", i)["Lifecycle_Stage__c"]
                for i in contacts[:200]} == {"SQL"}
        # 200 fails, 100 fails, then 50 at a time: 4 collections.
        assert composite_calls(sb) == 2 + 4
        assert salesforce.write_batch_size == 50
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        assert "sending 50 records a collection for the rest of this run" in warnings[-1]
        assert "LimitException" in warnings[-1]
        # The rest of the run starts at the halved size: no failing call first.
        more = [RecordUpdate(i, {"Lifecycle_Stage__c": "MQL"}) for i in contacts[200:]]
        assert {r.status for r in salesforce.write("Contact", more)} == {"applied"}
        assert composite_calls(sb) == 6 + 2


def test_the_collection_size_is_a_setting() -> None:
    with Sandbox(fixture=people(0, 200), salesforce_automation_max_batch=60,
                 **FAST_LIMITS) as sb:
        salesforce = salesforce_for(sb, salesforce_write_batch_size=40)
        updates = [RecordUpdate(i, {"Lifecycle_Stage__c": "SQL"}) for i in ids(sb, "Contact")]
        assert {r.status for r in salesforce.write("Contact", updates)} == {"applied"}
        assert composite_calls(sb) == 5


def test_a_single_record_that_still_fails_the_limit_is_rejected_with_the_message() -> None:
    with Sandbox(fixture=people(0, 4), salesforce_automation_max_batch=0,
                 **FAST_LIMITS) as sb:
        salesforce = salesforce_for(sb)
        updates = [RecordUpdate(i, {"Lifecycle_Stage__c": "SQL"}) for i in ids(sb, "Contact")]
        results = salesforce.write("Contact", updates)
        assert [(r.status, r.code) for r in results] == [
            ("rejected", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY")] * 4
        assert all("System.LimitException" in (r.message or "") for r in results)
        assert composite_calls(sb) == 1 + 1 + 4  # 4 fail, 2 fail, then each alone
        assert salesforce.write_batch_size == 1


@pytest.mark.parametrize("value", ["0", "201", "many"])
def test_the_collection_size_setting_is_checked(value: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_SALESFORCE_WRITE_BATCH_SIZE", value)
    with pytest.raises(SettingsError, match="CRMSYNC_SALESFORCE_WRITE_BATCH_SIZE"):
        load_settings(env_file=None, secrets_dir=tmp_path)


# ---- 7. whole-request INVALID_FIELD ----------------------------------------------------------


def test_an_unknown_field_stops_writing_after_one_call_with_a_configuration_error() -> None:
    with Sandbox(fixture=people(200, 0), **FAST_LIMITS) as sb:
        salesforce = salesforce_for(sb)
        updates = [RecordUpdate(i, {"Priority__c": "fit", "Hiring_Surge__c": True})
                   for i in ids(sb, "Lead")]
        with pytest.raises(ConfigurationError) as caught:
            salesforce.write("Lead", updates)
        message = str(caught.value)
        assert "Lead field Hiring_Surge__c" in message
        assert "crmsync check" in message
        assert composite_calls(sb) == 1
        assert sb.counters()["records_written"].get("salesforce.composite", 0) == 0


# ---- 8. refused logins -------------------------------------------------------------------------


def test_a_short_wrong_secret_does_not_blank_the_words_of_the_login_error() -> None:
    with Sandbox(fixture=people(1, 0), **FAST_LIMITS) as sb:
        salesforce = salesforce_for(sb, salesforce_client_secret="cred")
        with pytest.raises(CredentialsRejected) as caught:
            salesforce.write("Lead", [RecordUpdate(ids(sb, "Lead")[0], {"Priority__c": "fit"})])
        assert "client_credentials login refused: invalid_client" in str(caught.value)
        assert "CRMSYNC_SALESFORCE_CLIENT_SECRET" in str(caught.value)


def test_crmsync_sync_with_a_wrong_client_secret_exits_2_naming_the_settings(
    tmp_path: Path,
) -> None:
    wrong = "wrong-secret-" + "7f3a9c" * 5
    with Sandbox(seed=10, **FAST_LIMITS) as sb:
        env = {**sb.settings_env(), "CRMSYNC_SALESFORCE_CLIENT_SECRET": wrong,
               "CRMSYNC_RETRY_INITIAL_WAIT_SECONDS": "0.01",
               "CRMSYNC_RETRY_MAX_WAIT_SECONDS": "0.1"}
        env_file = tmp_path / "sandbox.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        process_env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")}
        process_env["PYTHONPATH"] = str(ROOT)
        done = subprocess.run(
            [sys.executable, "-m", "connector", "sync", "--allow-empty-state", "--env-file",
             str(env_file),
             "--state", str(tmp_path / "state.db")],
            cwd=tmp_path, env=process_env, capture_output=True, text=True, timeout=180,
            check=False,
        )
        assert sb.counters()["statuses"]["salesforce.token"] == {"400": 1}
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "client_credentials login refused: invalid_client" in " ".join(output.split())
    assert "CRMSYNC_SALESFORCE_CLIENT_SECRET" in output
    assert wrong not in output
