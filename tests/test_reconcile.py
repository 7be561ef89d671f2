from __future__ import annotations

from dataclasses import replace

from connector.model import LifecycleStage, Priority, Relationship, SourceRef, System
from tests.helpers import hs, hs_deal, org_with, person_with, run_core, sf

S = LifecycleStage


def refs(entity):
    return sorted(str(r) for r in entity.refs)


def test_links_by_hubspot_salesforce_ids(mapping, today):
    rec, _, _ = run_core(mapping, [
        hs("contacts", "1", email="a@x.io", salesforcecontactid="0031"),
        sf("Contact", "0031", Email="other@x.io"),
        hs("contacts", "2", salesforceleadid="00Q2"),
        sf("Lead", "00Q2"),
    ], today)
    assert refs(person_with(rec, "hubspot:contacts:1")) == [
        "hubspot:contacts:1", "salesforce:Contact:0031"]
    assert refs(person_with(rec, "hubspot:contacts:2")) == ["hubspot:contacts:2",
                                                             "salesforce:Lead:00Q2"]


def test_links_by_email_ignoring_case(mapping, today):
    rec, _, _ = run_core(mapping, [
        hs("contacts", "1", email="Ann.Smith@Acme-Corp.com"),
        sf("Lead", "00Q1", Email="ann.smith@acme-corp.COM "),
        sf("Contact", "0039", Email="someone@else.com"),
    ], today)
    assert len(rec.persons) == 2
    assert refs(person_with(rec, "salesforce:Lead:00Q1")) == [
        "hubspot:contacts:1", "salesforce:Lead:00Q1"]


def test_converted_lead_resolves_to_its_contact(mapping, today):
    rec, plan, _ = run_core(mapping, [
        hs("contacts", "1", salesforceleadid="00Q1", lifecyclestage="opportunity"),
        sf("Lead", "00Q1", IsConverted=True, ConvertedContactId="0031",
           Status="Closed - Converted"),
        sf("Contact", "0031", Lifecycle_Stage__c="SQL"),
    ], today)
    person = person_with(rec, "salesforce:Contact:0031")
    assert refs(person) == ["hubspot:contacts:1", "salesforce:Contact:0031",
                            "salesforce:Lead:00Q1"]
    assert person.stage.value is S.OPPORTUNITY
    assert all(c.object_type != "Lead" for c in plan.changes)
    assert any(c.object_type == "Contact" and c.after == "Opportunity" for c in plan.changes)


def test_stored_links_join_records_nothing_else_would(mapping, today):
    links = [(SourceRef(system=System.HUBSPOT, object_type="contacts", record_id="1"),
              SourceRef(system=System.SALESFORCE, object_type="Contact", record_id="0031"))]
    rec, _, _ = run_core(mapping, [hs("contacts", "1"), sf("Contact", "0031")], today, links)
    assert len(rec.persons) == 1


def test_organizations_link_by_account_id_and_domain(mapping, today):
    rec, _, _ = run_core(mapping, [
        hs("companies", "5", salesforceaccountid="0015"),
        sf("Account", "0015", Website="a.io"),
        hs("companies", "6", domain="WWW.Beta.io"),
        sf("Account", "0016", Website="https://beta.io/en"),
    ], today)
    assert len(rec.organizations) == 2
    assert refs(org_with(rec, "hubspot:companies:6")) == ["hubspot:companies:6",
                                                          "salesforce:Account:0016"]


def test_most_advanced_stage_wins_and_off_ladder_never_does(mapping, today):
    rec, _, _ = run_core(mapping, [
        hs("contacts", "1", email="a@x.io", lifecyclestage="other"),
        sf("Lead", "00Q1", Email="a@x.io", Status="Working - Contacted"),
        sf("Contact", "0031", Email="a@x.io", Lifecycle_Stage__c="Disqualified"),
    ], today)
    person = person_with(rec, "hubspot:contacts:1")
    assert person.stage.value is S.MQL
    assert "most advanced" in person.stage.provenance.rule
    assert len(person.stage_candidates) == 3


def test_winner_system_precedence(mapping, today):
    rule = mapping.precedence["person.stage"]
    hubspot_wins = replace(mapping, precedence={**mapping.precedence,
                                                "person.stage": replace(rule, winner="hubspot")})
    rec, _, _ = run_core(hubspot_wins, [
        hs("contacts", "1", email="a@x.io", lifecyclestage="lead"),
        sf("Contact", "0031", Email="a@x.io", Lifecycle_Stage__c="Customer"),
    ], today)
    assert person_with(rec, "hubspot:contacts:1").stage.value is S.LEAD


def test_deals_imply_stage_and_customer_relationship(mapping, today):
    rec, _, _ = run_core(mapping, [
        hs("contacts", "1", lifecyclestage="salesqualifiedlead"),
        hs("companies", "5"),
        hs_deal("9", "closedwon", contacts=["1"], companies=["5"]),
        sf("Contact", "0031", Email="b@y.io", Lifecycle_Stage__c="Lead"),
        sf("Opportunity", "0061", ContactId="0031", StageName="Negotiation/Review"),
    ], today)
    assert person_with(rec, "hubspot:contacts:1").stage.value is S.CUSTOMER
    assert org_with(rec, "hubspot:companies:5").relationship.value is Relationship.CUSTOMER
    sf_person = person_with(rec, "salesforce:Contact:0031")
    assert sf_person.stage.value is S.OPPORTUNITY
    assert "deal_effects.open" in sf_person.stage.provenance.rule


def test_icp_fit_from_rules_lists_matched_and_failed(mapping, today):
    rec, _, _ = run_core(mapping, [
        sf("Account", "0011", Industry="Retail", NumberOfEmployees=80, BillingCountry="Norway",
           AnnualRevenue=2e7),
    ], today)
    fit = rec.organizations[0].fit
    assert fit.fit is False
    assert fit.failed == ("target industry",)
    assert set(fit.matched) == {"company size", "home markets", "revenue"}


def test_priority_ranking(mapping, today):
    fit_facts = {"Industry": "Finance", "NumberOfEmployees": 300, "BillingCountry": "NL",
                 "AnnualRevenue": 9e6}
    rec, _, _ = run_core(mapping, [
        sf("Account", "A1", **fit_facts, Expansion_Date__c="2026-11-01"),
        sf("Account", "A2", **fit_facts),
        sf("Account", "A3", **fit_facts, Expansion_Date__c="2026-11-01",
           Cost_Savings_Announced_Date__c="2026-06-01"),
        sf("Account", "A4", Industry="Retail"),
        sf("Contact", "C1", AccountId="A1", Lifecycle_Stage__c="Lead"),
        sf("Contact", "C4", AccountId="A4", Lifecycle_Stage__c="Lead"),
        sf("Contact", "C5", AccountId="A4", Lifecycle_Stage__c="Subscriber"),
        sf("Contact", "C6", AccountId="A4", Lifecycle_Stage__c="Disqualified"),
    ], today)
    priority = {ref: org_with(rec, f"salesforce:Account:{ref}").priority.value
                for ref in ("A1", "A2", "A3", "A4")}
    assert priority == {"A1": Priority.TRIGGER_FIT, "A2": Priority.FIT, "A3": Priority.FIT,
                        "A4": Priority.OTHER}
    people = {ref: person_with(rec, f"salesforce:Contact:{ref}").priority.value
              for ref in ("C1", "C4", "C5", "C6")}
    assert people == {"C1": Priority.TRIGGER_FIT, "C4": Priority.NONFIT_LEAD,
                      "C5": Priority.OTHER, "C6": Priority.OTHER}
