"""The seeded generator: deterministic, and full of the cases a sync must survive."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest

from connector.sandbox import generate_dataset
from connector.sandbox.generator import ICP_COUNTRIES, ICP_INDUSTRIES
from connector.sandbox.schema import LEAD_STATUSES, SALESFORCE_FIELDS, SALESFORCE_KEY_PREFIXES
from connector.sandbox.store import Dataset, salesforce_id
from tests.sandbox.clients import NOW


@pytest.fixture(scope="module")
def data() -> Dataset:
    return generate_dataset(seed=1000, organisations=1000, now=NOW)


def _hs(data: Dataset, object_type: str) -> list[dict[str, Any]]:
    return [r["properties"] for r in data.hubspot_records(object_type)]


def _emails(records: list[dict[str, Any]], key: str) -> set[str]:
    return {r[key].lower() for r in records if r.get(key)}


def test_same_seed_and_now_give_identical_data() -> None:
    first = generate_dataset(seed=7, organisations=60, now=NOW).dump()
    again = generate_dataset(seed=7, organisations=60, now=NOW).dump()
    other = generate_dataset(seed=8, organisations=60, now=NOW).dump()
    assert first == again
    assert first != other


def test_size_follows_organisations(data: Dataset) -> None:
    accounts, companies = len(data.salesforce["Account"]), len(data.hubspot["companies"])
    assert 800 < accounts < 900 and 800 < companies < 900
    persons = len(data.hubspot["contacts"]) + len(data.salesforce["Lead"])
    assert 2500 < persons < 4500


def test_generating_1000_organisations_gives_about_three_persons_each() -> None:
    data = generate_dataset(seed=1, organisations=1000, now=NOW)
    assert len(data.hubspot_records("companies")) > 500
    assert 2_000 < len(data.hubspot_records("contacts")) + len(
        data.salesforce_records("Lead")) < 8_000


def test_people_linked_by_id_email_or_not_at_all(data: Dataset) -> None:
    contacts = _hs(data, "contacts")
    sf_contacts = {r["Id"]: r for r in data.salesforce_records("Contact")}
    sf_leads = {r["Id"]: r for r in data.salesforce_records("Lead")}
    by_contact = [c for c in contacts if c.get("salesforcecontactid")]
    by_lead = [c for c in contacts if c.get("salesforceleadid")]
    assert len(by_contact) > 200 and len(by_lead) > 100
    assert all(c["salesforcecontactid"] in sf_contacts for c in by_contact)
    assert all(c["salesforceleadid"] in sf_leads for c in by_lead)
    assert any(sf_leads[c["salesforceleadid"]]["IsConverted"] for c in by_lead), \
        "some HubSpot links point at a converted lead"
    unlinked = [c for c in contacts
                if not c.get("salesforcecontactid") and not c.get("salesforceleadid")]
    sf_emails = _emails([*sf_contacts.values(), *sf_leads.values()], "Email")
    by_email = [c for c in unlinked if c["email"].lower() in sf_emails]
    hubspot_only = [c for c in unlinked if c["email"].lower() not in sf_emails]
    assert len(by_email) > 200 and len(hubspot_only) > 200
    hs_emails = _emails(contacts, "email")
    salesforce_only = [r for r in sf_leads.values() if r["Email"].lower() not in hs_emails]
    assert len(salesforce_only) > 100


def test_email_duplicates_differ_only_in_case(data: Dataset) -> None:
    sf_people = [*data.salesforce_records("Contact"), *data.salesforce_records("Lead")]
    spellings: dict[str, set[str]] = {}
    for person in sf_people:
        spellings.setdefault(person["Email"].lower(), set()).add(person["Email"])
    assert sum(1 for s in spellings.values() if len(s) > 1) > 20
    hs = {c["email"] for c in _hs(data, "contacts")}
    sf_exact = {p["Email"] for p in sf_people}
    differing = [e for e in hs if e not in sf_exact and e.lower() in spellings]
    assert len(differing) > 20


def test_converted_leads_point_at_existing_contacts(data: Dataset) -> None:
    converted = [r for r in data.salesforce_records("Lead") if r["IsConverted"]]
    assert len(converted) > 50
    for lead in converted:
        assert lead["Status"] == "Closed - Converted"
        contact = data.salesforce_record("Contact", lead["ConvertedContactId"])
        assert contact["Email"].lower() == lead["Email"].lower()
        assert data.salesforce_record("Account", lead["ConvertedAccountId"])
        assert lead["ConvertedDate"]
    assert any(lead["ConvertedOpportunityId"] for lead in converted)


def _in_icp(company: dict[str, Any]) -> bool:
    return (company["industry"] in ICP_INDUSTRIES
            and 50 <= int(company["numberofemployees"]) <= 5000
            and company["country"] in ICP_COUNTRIES
            and float(company["annualrevenue"]) >= 5_000_000)


def test_organisations_in_and_out_of_the_icp(data: Dataset) -> None:
    verdicts = Counter(_in_icp(c) for c in _hs(data, "companies"))
    assert verdicts[True] > 200 and verdicts[False] > 200


def test_trigger_dates_fresh_expired_and_suppressing(data: Dataset) -> None:
    today = NOW.date()
    ages = [(today - date.fromisoformat(c[f])).days for c in _hs(data, "companies")
            for f in ("recent_funding_date", "new_executive_date", "expansion_announced_date")
            if c.get(f)]
    assert sum(1 for a in ages if a < 30) > 100
    assert sum(1 for a in ages if a > 365) > 50
    savings = [c for c in _hs(data, "companies") if c.get("cost_savings_announced_date")]
    assert len(savings) > 40
    accounts = data.salesforce_records("Account")
    assert any(a["Funding_Announced_Date__c"] for a in accounts)
    assert any(a["Cost_Savings_Announced_Date__c"] for a in accounts)


def test_localised_labels_and_custom_stages_appear(data: Dataset) -> None:
    localised_status = set(LEAD_STATUSES[4:])
    statuses = Counter(r["Status"] for r in data.salesforce_records("Lead"))
    assert sum(statuses[s] for s in localised_status) > 20
    types = {r["Type"] for r in data.salesforce_records("Account")}
    assert types & {"Prospekti", "Asiakas", "Kunde", "Klant"}
    stages = Counter(c.get("lifecyclestage") for c in _hs(data, "contacts"))
    assert stages["57129481"] > 20 and stages["57129482"] > 20


def test_companies_link_by_account_id_or_by_domain_only(data: Dataset) -> None:
    accounts = {a["Id"]: a for a in data.salesforce_records("Account")}
    companies = _hs(data, "companies")
    linked = [c for c in companies if c.get("salesforceaccountid")]
    assert len(linked) > 300
    assert all(c["salesforceaccountid"] in accounts for c in linked)
    websites = " ".join(a["Website"].lower() for a in accounts.values())
    domain_only = [c for c in companies
                   if not c.get("salesforceaccountid") and c["domain"] in websites]
    assert len(domain_only) > 100


def test_many_records_share_one_modified_timestamp(data: Dataset) -> None:
    stamps = Counter(c["lastmodifieddate"] for c in _hs(data, "contacts"))
    assert stamps.most_common(1)[0][1] > 250
    sf_stamps = Counter(r["SystemModstamp"] for r in data.salesforce_records("Contact"))
    assert sf_stamps.most_common(1)[0][1] > 100


def test_shared_system_modstamp_straddles_the_2000_batch_boundary() -> None:
    big = generate_dataset(seed=5, organisations=1700, now=NOW)
    ordered = sorted(big.salesforce_records("Contact"),
                     key=lambda r: (r["SystemModstamp"], r["Id"]))
    assert len(ordered) > 2050
    assert ordered[1999]["SystemModstamp"] == ordered[2000]["SystemModstamp"]


def test_timestamps_are_consistent_and_in_the_past(data: Dataset) -> None:
    now_hs = NOW.strftime("%Y-%m-%dT%H:%M:%S")
    for sobject in SALESFORCE_FIELDS:
        for record in data.salesforce_records(sobject):
            assert record["CreatedDate"] <= record["LastModifiedDate"] <= record["SystemModstamp"]
            assert record["SystemModstamp"][:19] <= now_hs
    for object_type, modified in (("contacts", "lastmodifieddate"),
                                  ("companies", "hs_lastmodifieddate")):
        for props in _hs(data, object_type):
            assert props["createdate"] <= props[modified]
    oldest = (NOW - timedelta(days=800)).strftime("%Y-%m-%d")
    assert min(p["createdate"] for p in _hs(data, "contacts")) > oldest


def test_salesforce_ids_have_prefix_length_and_checksum(data: Dataset) -> None:
    for sobject, prefix in SALESFORCE_KEY_PREFIXES.items():
        for record in data.salesforce_records(sobject)[:50]:
            assert len(record["Id"]) == 18
            assert record["Id"].startswith(prefix)
            assert _checksum_ok(record["Id"])
    assert salesforce_id("Account", 1) == "001Dn0000000001IAA"
    assert not _checksum_ok("001Dn0000000001AAA")


def _checksum_ok(record_id: str) -> bool:
    """Salesforce's rule: one suffix letter per 5 characters, from which are upper case."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, c in enumerate(record_id[chunk * 5:chunk * 5 + 5]) if c.isupper())
        suffix += alphabet[bits]
    return record_id[15:] == suffix


def test_hubspot_ids_are_numeric_strings(data: Dataset) -> None:
    for object_type in ("contacts", "companies", "deals"):
        records = data.hubspot_records(object_type)
        assert all(r["id"].isdigit() and r["properties"]["hs_object_id"] == r["id"]
                   for r in records)
    deal_links = [d["id"] for d in data.hubspot_records("deals")
                  if data.associated_ids("deals", "companies", d["id"])]
    assert len(deal_links) == len(data.hubspot["deals"])
