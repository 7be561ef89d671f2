"""The emulated org's configuration that sObject Collections updates meet: duplicate rules,
automation governor limits, and whole-request INVALID_FIELD. Driven through the real
simple-salesforce over HTTPS, as a client sees it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW, salesforce_client

ALLOW_SAVE = {"Sforce-Duplicate-Rule-Header": "allowSave=true"}


@pytest.fixture
def org() -> Iterator[Sandbox]:
    """An empty org with the defaults: duplicate rules on, no heavy automation."""
    with Sandbox(now=NOW) as sb:
        yield sb


def _update(sf: Salesforce, records: list[dict[str, Any]],
            headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return sf.restful("composite/sobjects", method="PATCH",
                      json={"allOrNone": False, "records": records}, headers=headers or {})


def _lead(sb: Sandbox, email: str, **fields: Any) -> dict[str, Any]:
    return sb.create_salesforce("Lead", {"LastName": "Jansen", "Company": "Polder B.V.",
                                         "Status": "Open - Not Contacted", "Email": email,
                                         **fields})


def _contact(sb: Sandbox, email: str) -> dict[str, Any]:
    return sb.create_salesforce("Contact", {"LastName": "Jansen", "Email": email})


def _priority(sobject: str, record_id: str, value: str = "fit") -> dict[str, Any]:
    return {"attributes": {"type": sobject}, "id": record_id, "Priority__c": value}


def _stage(record_id: str) -> dict[str, Any]:
    return {"attributes": {"type": "Contact"}, "id": record_id, "Lifecycle_Stage__c": "SQL"}


# ---- duplicate rules --------------------------------------------------------------------------


def test_an_update_matched_by_the_duplicate_rule_fails_without_the_header(org: Sandbox) -> None:
    lead = _lead(org, "Anna.Jansen@polder.nl")
    contact = _contact(org, "anna.jansen@POLDER.nl")
    sf = salesforce_client(org)
    results = _update(sf, [_priority("Lead", lead["Id"]), _stage(contact["Id"])])
    for result, sobject, other in zip(results, ("Lead", "Contact"), (contact, lead), strict=True):
        assert result["success"] is False and "id" not in result
        error = result["errors"][0]
        assert error["statusCode"] == "DUPLICATES_DETECTED"
        assert error["message"] == "Use one of these records?"
        duplicate = error["duplicateResult"]
        assert duplicate["duplicateRuleEntityType"] == sobject
        matched = [r["record"]["Id"] for m in duplicate["matchResults"]
                   for r in m["matchRecords"]]
        assert matched == [other["Id"]]
    assert org.salesforce_record("Lead", lead["Id"])["Priority__c"] is None
    assert org.counters()["records_written"].get("salesforce.composite", 0) == 0


def test_allow_save_in_the_header_saves_the_duplicate(org: Sandbox) -> None:
    lead = _lead(org, "anna@polder.nl")
    _contact(org, "ANNA@polder.nl")
    sf = salesforce_client(org)
    refused = _update(sf, [_priority("Lead", lead["Id"])],
                      {"Sforce-Duplicate-Rule-Header": "allowSave=false; runAsCurrentUser=true"})
    assert refused[0]["errors"][0]["statusCode"] == "DUPLICATES_DETECTED"
    saved = _update(sf, [_priority("Lead", lead["Id"])],
                    {"Sforce-Duplicate-Rule-Header": "includeRecordDetails=false; allowSave=true"})
    assert saved == [{"id": lead["Id"], "success": True, "errors": []}]
    assert org.salesforce_record("Lead", lead["Id"])["Priority__c"] == "fit"
    assert org.counters()["records_written"]["salesforce.composite"] == 1


def test_only_live_unconverted_people_with_the_same_email_match(org: Sandbox) -> None:
    lonely = _lead(org, "solo@polder.nl")
    contact = _contact(org, "converted@polder.nl")
    _lead(org, "converted@polder.nl", IsConverted=True, ConvertedContactId=contact["Id"],
          Status="Closed - Converted")
    deleted = _lead(org, "gone@polder.nl")
    survivor = _contact(org, "gone@polder.nl")
    org.delete_salesforce("Lead", deleted["Id"])
    account = org.create_salesforce("Account", {"Name": "Polder B.V."})
    sf = salesforce_client(org)
    results = _update(sf, [
        _priority("Lead", lonely["Id"]), _stage(contact["Id"]), _stage(survivor["Id"]),
        {"attributes": {"type": "Account"}, "id": account["Id"], "Priority__c": "fit"},
    ])
    assert [r["success"] for r in results] == [True, True, True, True]


def test_the_email_being_written_is_what_the_rule_matches(org: Sandbox) -> None:
    lead = _lead(org, "old@polder.nl")
    _contact(org, "taken@polder.nl")
    sf = salesforce_client(org)
    moved = {"attributes": {"type": "Lead"}, "id": lead["Id"], "Email": "Taken@Polder.nl"}
    assert _update(sf, [moved])[0]["errors"][0]["statusCode"] == "DUPLICATES_DETECTED"
    assert org.salesforce_record("Lead", lead["Id"])["Email"] == "old@polder.nl"


def test_the_duplicate_rule_can_be_turned_off(org: Sandbox) -> None:
    org.set_salesforce_write_rules(duplicate_rule=False)
    lead = _lead(org, "anna@polder.nl")
    _contact(org, "anna@polder.nl")
    assert _update(salesforce_client(org), [_priority("Lead", lead["Id"])])[0]["success"]


def test_validation_errors_come_before_the_duplicate_rule(org: Sandbox) -> None:
    lead = _lead(org, "anna@polder.nl")
    _contact(org, "anna@polder.nl")
    results = _update(salesforce_client(org), [_priority("Lead", lead["Id"], "urgent")])
    assert results[0]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


# ---- automation governor limits ---------------------------------------------------------------


def test_a_collection_over_the_automation_limit_fails_every_record() -> None:
    with Sandbox(now=NOW, salesforce_automation_max_batch=5) as sb:
        contacts = [_contact(sb, f"p{n}@polder.nl") for n in range(6)]
        sf = salesforce_client(sb)
        results = _update(sf, [_stage(c["Id"]) for c in contacts])
        assert len(results) == 6
        for result in results:
            assert result["success"] is False and "id" not in result
            error = result["errors"][0]
            assert error["statusCode"] == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
            assert "System.LimitException: Apex CPU time limit exceeded" in error["message"]
        assert all(sb.salesforce_record("Contact", c["Id"])["Lifecycle_Stage__c"] is None
                   for c in contacts)
        assert sb.counters()["records_written"].get("salesforce.composite", 0) == 0
        five = _update(sf, [_stage(c["Id"]) for c in contacts[:5]])
        assert [r["success"] for r in five] == [True] * 5
        assert sb.counters()["records_written"]["salesforce.composite"] == 5
        assert sb.counters()["statuses"]["salesforce.composite"] == {"200": 2}


def test_restricted_picklists_and_converted_leads_still_answer_per_record() -> None:
    with Sandbox(now=NOW, salesforce_automation_max_batch=5) as sb:
        contact = _contact(sb, "c@polder.nl")
        converted = _lead(sb, "c@polder.nl", IsConverted=True, Status="Closed - Converted",
                          ConvertedContactId=contact["Id"])
        open_lead = _lead(sb, "o@polder.nl")
        results = _update(salesforce_client(sb), [
            _priority("Lead", converted["Id"]), _priority("Lead", open_lead["Id"], "urgent"),
            _stage(contact["Id"]),
        ])
        codes = [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]
        assert codes == ["CANNOT_UPDATE_CONVERTED_LEAD",
                         "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", None]


# ---- whole-request INVALID_FIELD -------------------------------------------------------------


def test_an_unknown_field_fails_the_whole_request_and_writes_nothing(org: Sandbox) -> None:
    first = _contact(org, "a@polder.nl")
    second = _contact(org, "b@polder.nl")
    sf = salesforce_client(org)
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _update(sf, [_stage(first["Id"]), {**_stage(second["Id"]), "Hiring_Surge__c": True}],
                ALLOW_SAVE)
    assert caught.value.status == 400
    assert caught.value.content == [{
        "message": "No such column 'Hiring_Surge__c' on sobject of type Contact",
        "errorCode": "INVALID_FIELD", "fields": ["Hiring_Surge__c"],
    }]
    assert org.salesforce_record("Contact", first["Id"])["Lifecycle_Stage__c"] is None
    counters = org.counters()
    assert counters["statuses"]["salesforce.composite"] == {"400": 1}
    assert counters["requests"]["salesforce.composite"] == 1
    assert counters["records_written"].get("salesforce.composite", 0) == 0
