"""Hypothesis strategies for the core's property tests: records as the CRMs return them.

`world()` draws a few people and organisations in both systems, with the overlaps and
duplicates (shared e-mails, linked ids, a converted lead) that reconciling must get right.
Stages and statuses are drawn from the shipped mapping's picklists.
"""

from __future__ import annotations

from hypothesis import strategies as st

from connector.mapping import load_mapping

MAPPING = load_mapping()


def _values(system: str, obj: str, field: str) -> list[str]:
    maps = {m.field: m for m in MAPPING.picklists[(system, obj)]}
    return list(maps[field].values)


EMAILS = st.sampled_from(["a@x.io", "A@X.io", "b@y.io", "c@z.io", "C@z.IO", None])
DATES = st.sampled_from([None, "2026-11-01", "2026-06-01", "2024-02-02", "2026-11-23"])
COMPANY_IDS = st.sampled_from(["501", "502", "503"])
ACCOUNT_IDS = st.sampled_from(["001A", "001B", "001C"])


@st.composite
def hubspot_contact(draw, index: int):
    props = {
        "email": draw(EMAILS),
        "lifecyclestage": draw(st.sampled_from(["", *_values("hubspot", "contacts",
                                                             "lifecyclestage")])),
        "hs_lead_status": draw(st.sampled_from(["", *_values("hubspot", "contacts",
                                                             "hs_lead_status")])),
        "associatedcompanyid": draw(st.one_of(st.none(), COMPANY_IDS)),
        "salesforcecontactid": draw(st.sampled_from([None, "003A", "003B"])),
    }
    return ("hubspot", "contacts", {"id": f"10{index}", "properties": props})


@st.composite
def salesforce_person(draw, index: int):
    if draw(st.booleans()):
        converted = draw(st.booleans())
        status = draw(st.sampled_from(_values("salesforce", "Lead", "Status")[:6]))
        record = {"Id": f"00Q{index}", "Email": draw(EMAILS), "Status": status,
                  "IsConverted": converted,
                  "ConvertedContactId": "003A" if converted else None}
        return ("salesforce", "Lead", {"attributes": {"type": "Lead"}, **record})
    record = {"Id": draw(st.sampled_from(["003A", "003B", f"003X{index}"])),
              "Email": draw(EMAILS), "AccountId": draw(st.one_of(st.none(), ACCOUNT_IDS)),
              "Lifecycle_Stage__c": draw(st.sampled_from(
                  [None, *_values("salesforce", "Contact", "Lifecycle_Stage__c")]))}
    return ("salesforce", "Contact", {"attributes": {"type": "Contact"}, **record})


@st.composite
def organization(draw, index: int):
    facts = {
        "Industry": draw(st.sampled_from(["Technology", "Retail", None])),
        "NumberOfEmployees": draw(st.sampled_from([10, 200, None])),
        "BillingCountry": draw(st.sampled_from(["NO", "Brazil", None])),
        "AnnualRevenue": draw(st.sampled_from([1e6, 8e6, None])),
    }
    if draw(st.booleans()):
        props = {"domain": draw(st.sampled_from(["a.io", "b.io", None])),
                 "salesforceaccountid": draw(st.one_of(st.none(), ACCOUNT_IDS)),
                 "industry": "COMPUTER_SOFTWARE" if facts["Industry"] else None,
                 "recent_funding_date": draw(DATES),
                 "cost_savings_announced_date": draw(DATES),
                 "type": draw(st.sampled_from([None, "PROSPECT", "PARTNER"]))}
        return ("hubspot", "companies", {"id": draw(COMPANY_IDS), "properties": props})
    record = {"Id": draw(ACCOUNT_IDS), "Website": draw(st.sampled_from(["https://a.io", None])),
              "Type": draw(st.sampled_from([None, "Prospect", "Customer - Direct", "Kunde"])),
              "Expansion_Date__c": draw(DATES), **facts}
    return ("salesforce", "Account", {"attributes": {"type": "Account"}, **record})


@st.composite
def world(draw):
    """A few people and organisations in both systems, with overlaps and duplicates."""
    records = []
    for i in range(draw(st.integers(0, 4))):
        records.append(draw(hubspot_contact(i)))
    for i in range(draw(st.integers(0, 4))):
        records.append(draw(salesforce_person(i)))
    for i in range(draw(st.integers(0, 3))):
        records.append(draw(organization(i)))
    unique = {}
    for record in records:  # one record per id, as a CRM would hold
        unique[(record[0], record[1], record[2].get("id") or record[2].get("Id"))] = record
    return list(unique.values())
