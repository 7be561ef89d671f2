"""Fixtures in and out, reading records back, and the counters the benchmarks read."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hubspot.crm.contacts import PublicObjectSearchRequest

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW, hubspot_client, salesforce_client, salesforce_session


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    with Sandbox(seed=40, now=NOW) as original:
        original.update_hubspot("contacts", original.hubspot_records("contacts")[0]["id"],
                                {"crmsync_priority": "fit"})
        dumped = original.dump()
        path = original.dump_to(tmp_path / "scenario.json")
    with Sandbox(fixture=path, now=NOW) as from_file:
        assert from_file.dump() == dumped
    with Sandbox(fixture=json.loads(path.read_text("utf-8")), now=NOW) as from_dict:
        assert from_dict.dump() == dumped
    assert dumped["hubspot"]["associations"]["contacts/companies"]


def test_a_minimal_fixture_is_filled_in() -> None:
    fixture = {
        "hubspot": {
            "contacts": [{"properties": {"email": "Anna.Jansen@polder.nl",
                                         "lifecyclestage": "lead"}}],
            "companies": [{"id": "500123", "properties": {"name": "Polder B.V.",
                                                          "domain": "polder.nl"}}],
            "associations": {"contacts/companies": [["100001", "500123"]]},
        },
        "salesforce": {"Lead": [{"LastName": "Jansen", "Company": "Polder B.V.",
                                 "Status": "Nieuw", "Email": "anna.jansen@polder.nl"}]},
    }
    with Sandbox(fixture=fixture, now=NOW) as sb:
        contact = sb.hubspot_record("contacts", "100001")
        assert contact["properties"]["hs_object_id"] == "100001"
        assert contact["properties"]["createdate"].startswith("2025-06-02T12:00")
        assert sb.hubspot_associations("companies", "contacts", "500123") == ["100001"]
        lead = sb.salesforce_records("Lead")[0]
        assert lead["Id"].startswith("00Q") and len(lead["Id"]) == 18
        assert lead["IsConverted"] is False and lead["IsDeleted"] is False
        assert lead["SystemModstamp"] == lead["CreatedDate"]
        found = salesforce_client(sb).query("SELECT Id, Status FROM Lead")["records"]
        assert [r["Status"] for r in found] == ["Nieuw"]


def test_fixture_with_unknown_object_is_refused() -> None:
    with pytest.raises(ValueError, match="Widget"):
        Sandbox(fixture={"salesforce": {"Widget": [{}]}}, now=NOW)


def test_records_read_back_through_the_admin_endpoint(seeded: Sandbox) -> None:
    session = salesforce_session(seeded)
    contact = seeded.hubspot_records("contacts")[0]
    answer = session.get(f"{seeded.base_url}/__sandbox/records/hubspot/contacts/{contact['id']}")
    assert answer.json() == contact
    lead = seeded.salesforce_records("Lead")[0]
    answer = session.get(f"{seeded.base_url}/__sandbox/records/salesforce/Lead/{lead['Id']}")
    assert answer.json() == lead
    assert session.get(f"{seeded.base_url}/__sandbox/records/salesforce/Lead/00Q").status_code \
        == 404


def test_helpers_change_data_as_a_user_would(fresh: Sandbox) -> None:
    created = fresh.create_hubspot("contacts", {"email": "new@example.com"},
                                   associations={"companies": [
                                       fresh.hubspot_records("companies")[0]["id"]]})
    before = created["properties"]["lastmodifieddate"]
    time.sleep(0.002)
    changed = fresh.update_hubspot("contacts", created["id"], {"lifecyclestage": "subscriber"})
    assert changed["properties"]["lifecyclestage"] == "subscriber"
    assert changed["properties"]["lastmodifieddate"] > before
    account = fresh.create_salesforce("Account", {"Name": "Fjord AS", "Type": "Kunde"})
    assert fresh.salesforce_record("Account", account["Id"][:15])["Name"] == "Fjord AS"
    with pytest.raises(KeyError):
        fresh.update_salesforce("Account", account["Id"], {"Nope__c": 1})


def test_counters_count_requests_and_records(fresh: Sandbox) -> None:
    hs = hubspot_client(fresh)
    fresh.reset_counters()
    for _ in range(3):
        hs.crm.contacts.basic_api.get_page(limit=7)
    hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=5))
    sf = salesforce_client(fresh)
    returned = len(sf.query("SELECT Id FROM Lead")["records"])
    account = fresh.salesforce_records("Account")[0]["Id"]
    sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "id": account, "Priority__c": "fit"}]})
    counters = fresh.counters()
    assert counters["requests"]["hubspot.list"] == 3
    assert counters["records_returned"]["hubspot.list"] == 21
    assert counters["records_returned"]["hubspot.search"] == 5
    assert counters["records_returned"]["salesforce.query"] == returned
    assert counters["records_written"]["salesforce.composite"] == 1
    assert counters["statuses"]["hubspot.list"] == {"200": 3}
    assert counters["requests"]["salesforce.token"] == 1
    assert counters["total_requests"] == 7
    over_https = salesforce_session(fresh).get(fresh.base_url + "/__sandbox/counters").json()
    assert over_https == counters
    fresh.reset_counters()
    assert fresh.counters()["total_requests"] == 0


def test_chunked_request_bodies_are_read(seeded: Sandbox) -> None:
    """Clients that stream a body (no Content-Length) still get a proper answer."""
    session = salesforce_session(seeded)
    ids = [r["id"] for r in seeded.hubspot_records("contacts") if not r["archived"]][:2]
    body = json.dumps({"inputs": [{"id": i} for i in ids], "properties": ["email"]}).encode()
    answer = session.post(
        seeded.hubspot_base_url + "/crm/v3/objects/contacts/batch/read",
        data=iter([body[:10], body[10:]]),
        headers={"Authorization": f"Bearer {seeded.hubspot_access_token}",
                 "Content-Type": "application/json"},
    )
    assert answer.status_code == 200
    assert {r["id"] for r in answer.json()["results"]} == set(ids)
    assert session.get(seeded.base_url + "/__sandbox/health").json() == {"ok": True}
