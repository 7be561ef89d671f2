from __future__ import annotations

from datetime import date

import pytest

from connector.model import DealStatus, LifecycleStage, Organization, Person, Rejection
from connector.normalize import normalise
from tests.helpers import hs, sf


def view(mapping, record):
    return normalise(mapping, *record)


def test_hubspot_contact_becomes_a_person_with_provenance(mapping):
    person = view(mapping, hs("contacts", "7", email=" Ann@Example.COM ",
                              lifecyclestage="marketingqualifiedlead", salesforceleadid="00Q1",
                              associatedcompanyid="55"))
    assert isinstance(person, Person)
    assert person.email == "ann@example.com"
    assert person.stage.value is LifecycleStage.MQL
    assert person.stage.provenance.field == "lifecyclestage"
    assert person.stage.provenance.raw == "marketingqualifiedlead"
    assert "picklists.hubspot.contacts.lifecyclestage" in person.stage.provenance.rule
    assert [str(r) for r in person.linked_refs] == ["salesforce:Lead:00Q1"]
    assert [str(r) for r in person.organization_refs] == ["hubspot:companies:55"]


def test_lead_status_is_consulted_when_lifecyclestage_is_empty(mapping):
    person = view(mapping, hs("contacts", "7", lifecyclestage="", hs_lead_status="CONNECTED"))
    assert person.stage.value is LifecycleStage.SQL
    assert person.stage.provenance.field == "hs_lead_status"


def test_tilde_value_means_no_stage(mapping):
    person = view(mapping, hs("contacts", "7", hs_lead_status="BAD_TIMING"))
    assert person.stage is None


def test_unknown_picklist_value_is_a_rejection_not_an_exception(mapping):
    rejection = view(mapping, sf("Lead", "00Q1", Status="Vague"))
    assert isinstance(rejection, Rejection)
    assert rejection.field == "Status"
    assert "unknown Lead.Status 'Vague' -> add it under picklists.salesforce.Lead.Status" \
        in rejection.reason
    assert "default.yaml:" in rejection.reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (("hubspot", "contacts", {"properties": {"email": "a@b.c"}}), "record has no id"),
        (("hubspot", "contacts", {"id": "1", "properties": "oops"}), "no readable fields"),
        (("salesforce", "Lead", ["not", "a", "dict"]), "record has no id"),
        (sf("Account", "001", NumberOfEmployees="lots"), "should be a number"),
        (sf("Account", "001", Funding_Announced_Date__c="last week"), "is not a date"),
        (sf("Contact", "003", Email=42), "not text"),
        (sf("Opportunity", "006", StageName="Custom Stage"), "no mapped field gives this deal"),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(mapping, record, reason):
    result = normalise(mapping, *record)
    assert isinstance(result, Rejection)
    assert reason in result.reason


def test_converted_lead_points_at_its_contact_and_has_no_stage(mapping):
    person = view(mapping, sf("Lead", "00Q1", Status="Closed - Converted", IsConverted=True,
                              ConvertedContactId="0031", ConvertedAccountId="0011"))
    assert person.stage is None
    assert [str(r) for r in person.converted_refs] == ["salesforce:Lead:00Q1"]
    assert [str(r) for r in person.linked_refs] == ["salesforce:Contact:0031"]
    assert [str(r) for r in person.organization_refs] == ["salesforce:Account:0011"]


def test_opportunity_custom_stage_falls_through_to_flags(mapping):
    deal = view(mapping, sf("Opportunity", "006", StageName="Our Custom Stage", IsWon=True,
                            IsClosed=True, ContactId="003", AccountId="001"))
    assert deal.status.value is DealStatus.WON
    assert deal.status.provenance.field == "IsWon"
    lost = view(mapping, sf("Opportunity", "007", StageName="Mystery", IsWon=False, IsClosed=True))
    assert lost.status.value is DealStatus.LOST


def test_organization_facts_fit_assertion_and_triggers(mapping):
    org = view(mapping, sf("Account", "001", Website="https://www.Acme.io/about",
                           Industry="Technology", NumberOfEmployees=120, BillingCountry="FI",
                           AnnualRevenue=7.5e6, Type="Prospekti",
                           Funding_Announced_Date__c="2026-10-01",
                           Cost_Savings_Announced_Date__c=None))
    assert isinstance(org, Organization)
    assert org.domain == "acme.io"
    assert org.facts["industry"].value == "software"
    assert org.facts["country"].value == "Finland"
    assert org.facts["employees"].value == 120.0
    assert org.asserted_fit.value is True
    assert "fi.yaml" in org.asserted_fit.provenance.rule
    [trigger] = org.triggers
    assert (trigger.type, trigger.occurred_at) == ("funding", date(2026, 10, 1))
    assert trigger.expires_at == date(2027, 3, 30)


def test_hubspot_epoch_millisecond_dates(mapping):
    org = view(mapping, hs("companies", "5", recent_funding_date="1767225600000"))
    assert org.triggers[0].occurred_at == date(2026, 1, 1)
