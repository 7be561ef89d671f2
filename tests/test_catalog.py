"""The catalog: one place for each CRM's record shape, read the same by every part."""

from __future__ import annotations

from dataclasses import replace

from connector.catalog import (
    CATALOG,
    CATALOG_VERSION,
    FORWARD_ONLY_FIELDS,
    HubSpotCatalog,
    SalesforceCatalog,
    catalog_version,
)
from connector.core import plan_records
from connector.state import mirror_text
from tests.helpers import hs, hs_deal, sf

# `Mapping.fields_read` of the shipped mapping before the catalog existed (the mapping then
# carried the link fields itself): the requests a run makes must not change.
FIELDS_READ_BEFORE = {
    "hubspot": {
        "companies": [
            "annualrevenue", "cost_savings_announced_date", "country", "crmsync_icp_fit",
            "crmsync_priority", "crmsync_trigger_active", "crmsync_trigger_date",
            "crmsync_trigger_type", "domain", "expansion_announced_date", "hs_lastmodifieddate",
            "industry", "name", "new_executive_date", "numberofemployees",
            "recent_funding_date", "salesforceaccountid", "type"],
        "contacts": [
            "associatedcompanyid", "crmsync_icp_fit", "crmsync_priority", "email",
            "firstname", "hs_lead_status", "lastmodifieddate", "lastname", "lifecyclestage",
            "salesforcecontactid", "salesforceleadid"],
        "deals": ["dealname", "dealstage", "hs_lastmodifieddate"],
    },
    "salesforce": {
        "Account": [
            "AnnualRevenue", "BillingCountry", "Buying_Signal_Date__c", "Buying_Signal_Type__c",
            "Buying_Signal__c", "Cost_Savings_Announced_Date__c", "Expansion_Date__c",
            "Funding_Announced_Date__c", "ICP_Fit__c", "Industry", "Name",
            "New_Executive_Date__c", "NumberOfEmployees", "Priority__c", "SystemModstamp",
            "Type", "Website"],
        "Contact": [
            "AccountId", "Email", "FirstName", "ICP_Fit__c", "LastName", "Lifecycle_Stage__c",
            "Priority__c", "SystemModstamp"],
        "Lead": [
            "Company", "ConvertedAccountId", "ConvertedContactId", "Email", "FirstName",
            "ICP_Fit__c", "IsConverted", "LastName", "Priority__c", "Status", "SystemModstamp"],
        "Opportunity": [
            "AccountId", "ContactId", "IsClosed", "IsWon", "Name", "StageName",
            "SystemModstamp"],
    },
}


def test_the_shipped_mapping_reads_the_same_fields_as_before(mapping):
    for system, expected in FIELDS_READ_BEFORE.items():
        read = {obj: sorted(fields) for obj, fields in mapping.fields_read(system).items()}
        assert read == expected


def test_fields_read_holds_every_catalog_link_and_modified_field(mapping):
    for system, catalog in CATALOG.items():
        read = mapping.fields_read(system)
        for obj, spec in catalog.objects.items():
            assert set(spec.link_fields) | set(spec.modified_fields) <= read[obj], (system, obj)


def test_each_system_lists_its_objects_by_kind():
    assert CATALOG["hubspot"].objects_of("person") == ("contacts",)
    assert CATALOG["salesforce"].objects_of("person") == ("Lead", "Contact")
    assert CATALOG["salesforce"].read_order == ("Account", "Lead", "Contact", "Opportunity")
    assert CATALOG["hubspot"].read_order == ("companies", "contacts", "deals")
    forward_only = {("hubspot", "contacts", "lifecyclestage"),
                    ("hubspot", "companies", "lifecyclestage")}
    assert forward_only == FORWARD_ONLY_FIELDS


def test_a_change_to_link_fields_changes_the_catalog_version():
    """The mapping fingerprint folds in CATALOG_VERSION: a code change to what is always
    read must make the next run plan every record again, as a mapping change does."""
    assert catalog_version(CATALOG.values()) == CATALOG_VERSION

    class MoreLinks(SalesforceCatalog):
        objects = {**SalesforceCatalog.objects,  # noqa: RUF012 - a test's variant
                   "Account": replace(SalesforceCatalog.objects["Account"],
                                      link_fields=("Name", "Website", "ParentId"))}

    assert catalog_version([HubSpotCatalog(), MoreLinks()]) != CATALOG_VERSION


def test_the_mirror_keeps_what_the_state_db_kept():
    """The mirror's bytes must stay what the state DB wrote before the catalog (canonical
    JSON without modification times), or every mirrored record would look changed."""
    hubspot = {"id": "1", "updatedAt": "2026-01-01T00:00:00Z", "properties": {
        "email": "a@acme.nl", "lastmodifieddate": "2026-01-01", "hs_lastmodifieddate": "x"}}
    salesforce = {"attributes": {"type": "Lead"}, "Id": "00Q1", "Email": "a@acme.nl",
                  "SystemModstamp": "2026-01-01T00:00:00.000+0000",
                  "LastModifiedDate": "2026-01-01T00:00:00.000+0000"}
    assert mirror_text("hubspot", hubspot) == b'{"id":"1","properties":{"email":"a@acme.nl"}}'
    assert mirror_text("salesforce", salesforce) == (
        b'{"Email":"a@acme.nl","Id":"00Q1","attributes":{"type":"Lead"}}')


def test_hubspot_reads_a_cleared_property_back_as_null():
    assert CATALOG["hubspot"].as_read_back({"a": "", "b": "x"}) == {"a": None, "b": "x"}
    assert CATALOG["salesforce"].as_read_back({"a": "", "b": "x"}) == {"a": "", "b": "x"}


def test_plan_records_runs_each_stage_once_in_order(mapping, today):
    records = [
        hs("contacts", "1", email="kari@nordlys.no", lifecyclestage="lead"),
        sf("Contact", "0031", Email="kari@nordlys.no", Lifecycle_Stage__c="Customer"),
        hs_deal("9", "closedwon", contacts=["1"]),
        ("salesforce", "Lead", {"attributes": {"type": "Lead"}}),  # no id: rejected
    ]
    heard: list[str] = []
    result = plan_records(mapping, records, today, timer=heard.append)
    assert heard == ["normalise", "reconcile", "plan"]
    assert [r.reason for r in result.rejections] == ["record has no id"]
    assert len(result.views) == 3
    assert [sorted(str(r) for r in p.refs) for p in result.reconciled.persons] == [
        ["hubspot:contacts:1", "salesforce:Contact:0031"]]
    assert {c.ref.key for c in result.changes} >= {"hubspot:contacts:1"}
