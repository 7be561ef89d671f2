"""The sandbox as a busy real portal: garbled 200s, search lag, paged associations, deletions,
merges, routes third-party clients call, and the counting of routes nobody knows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.contacts import ApiException, PublicObjectSearchRequest

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW, hubspot_client, salesforce_session


def _fixture(contacts: int = 8) -> dict:
    """`contacts` contacts, two companies, deal 900001 linked to every contact and to company
    500001, contact 100001 linked to company 500002."""
    return {"hubspot": {
        "contacts": [{"id": str(100001 + n),
                      "properties": {"email": f"p{n}@live.example",
                                     "lastmodifieddate": "2025-01-01T00:00:00.000Z"}}
                     for n in range(contacts)],
        "companies": [{"id": "500001", "properties": {"name": "One"}},
                      {"id": "500002", "properties": {"name": "Two"}}],
        "deals": [{"id": "900001", "properties": {"dealname": "Big"}}],
        "associations": {
            "deals/contacts": [["900001", str(100001 + n)] for n in range(contacts)],
            "deals/companies": [["900001", "500001"]],
            "contacts/companies": [["100001", "500002"]],
        },
    }}


@pytest.fixture
def live() -> Iterator[Sandbox]:
    with Sandbox(fixture=_fixture(), now=NOW, association_page_size=3,
                 search_requests_per_second=1000) as sb:
        yield sb


def _get(sb: Sandbox, path: str, **params: str):
    session = salesforce_session(sb)
    return session.get(sb.base_url + path, params=params, timeout=10,
                       headers={"Authorization": f"Bearer {sb.hubspot_access_token}"})


# ---- 200 answers that are not answers --------------------------------------------------------


@pytest.mark.parametrize(("kind", "check"), [
    ("empty", lambda body: body == b""),
    ("braces", lambda body: body == b"{}"),
    ("html", lambda body: body.startswith(b"<!DOCTYPE html>")),
    ("truncated", lambda body: body.startswith(b'{"results":[') and not body.endswith(b"}")),
])
def test_body_faults_answer_200_with_a_broken_body(live: Sandbox, kind: str, check) -> None:
    live.set_faults(f"hubspot.list:{kind}=1")
    answer = _get(live, "/crm/v3/objects/contacts", limit="5")
    assert answer.status_code == 200
    assert check(answer.content)
    assert live.counters()["faults"]["hubspot.list"][kind] == 1


def test_body_faults_reach_salesforce_endpoints_too(live: Sandbox) -> None:
    live.set_faults("salesforce.limits:braces=1")
    session = salesforce_session(live)
    token = live.salesforce_token(session)
    answer = session.get(live.base_url + "/services/data/v59.0/limits", timeout=10,
                         headers={"Authorization": f"Bearer {token}"})
    assert (answer.status_code, answer.content) == (200, b"{}")


# ---- routes -----------------------------------------------------------------------------------


def test_unknown_routes_are_counted(live: Sandbox) -> None:
    live.reset_counters()
    assert _get(live, "/crm/v3/objects/contacts/100001/nonsense/x").status_code == 404
    assert _get(live, "/services/data/v59.0/nonsense").status_code == 404
    assert _get(live, "/elsewhere").status_code == 404
    counters = live.counters()
    assert counters["requests"]["unknown"] == 3
    assert counters["statuses"]["unknown"] == {"404": 3}
    assert counters["total_requests"] == 3


def test_schemas_and_properties_of_other_standard_types(live: Sandbox) -> None:
    hs = hubspot_client(live)
    assert hs.crm.schemas.core_api.get_all().results == []
    assert json.loads(_get(live, "/crm/v3/schemas").content) == {"results": []}
    tickets = hs.crm.properties.core_api.get_all("tickets").results
    assert "hs_object_id" in {p.name for p in tickets}
    assert _get(live, "/crm/v3/properties/line_items").status_code == 200
    assert _get(live, "/crm/v3/properties/not_a_type").status_code == 400


# ---- search lag -----------------------------------------------------------------------------


def test_search_does_not_see_a_just_modified_record_that_list_sees() -> None:
    with Sandbox(fixture=_fixture(), now=NOW, search_lag_seconds=3600,
                 search_requests_per_second=1000) as sb:
        hs = hubspot_client(sb)
        sb.update_hubspot("contacts", "100002", {"firstname": "Edited"})
        listed = {r.id: r for r in hs.crm.contacts.basic_api.get_page(
            limit=100, properties=["firstname"]).results}
        assert listed["100002"].properties["firstname"] == "Edited"
        found = hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=100))
        ids = {r.id for r in found.results}
        assert "100002" not in ids
        assert {"100001", "100003"} <= ids  # unchanged records are indexed
        assert found.total == 7


def test_without_lag_search_sees_a_change_at_once(live: Sandbox) -> None:
    live.update_hubspot("contacts", "100002", {"firstname": "Edited"})
    found = hubspot_client(live).crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(limit=100, properties=["firstname"]))
    assert {r.id: r.properties["firstname"] for r in found.results}["100002"] == "Edited"


# ---- paged association reads ----------------------------------------------------------------


def test_association_batch_read_pages_per_input(live: Sandbox) -> None:
    api = hubspot_client(live).crm.associations.v4.batch_api
    seen, after, calls = [], None, 0
    while True:
        item = {"id": "900001", **({"after": after} if after else {})}
        page = api.get_page("deals", "contacts",
                            BatchInputPublicFetchAssociationsBatchRequest(inputs=[item]))
        calls += 1
        (result,) = page.results
        assert len(result.to) <= 3
        seen += [str(t.to_object_id) for t in result.to]
        if result.paging is None:
            break
        after = result.paging.next.after
    assert seen == [str(100001 + n) for n in range(8)]
    assert calls == 3


# ---- deletions and merges -------------------------------------------------------------------


def test_deleted_records_leave_every_read_but_the_archived_list(live: Sandbox) -> None:
    hs = hubspot_client(live)
    stored = live.delete_hubspot("contacts", "100003")
    assert stored["archived"] and stored["archivedAt"]
    listed = {r.id for r in hs.crm.contacts.basic_api.get_page(limit=100).results}
    searched = {r.id for r in hs.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(limit=100)).results}
    assert "100003" not in listed | searched
    with pytest.raises(ApiException) as missing:
        hs.crm.contacts.basic_api.get_by_id("100003")
    assert missing.value.status == 404
    archived = hs.crm.contacts.basic_api.get_page(limit=100, archived=True).results
    assert [(r.id, r.archived) for r in archived] == [("100003", True)]
    assert archived[0].archived_at.isoformat().startswith(stored["archivedAt"][:19])
    assert "100003" not in live.hubspot_associations("deals", "contacts", "900001")


def test_merge_keeps_the_survivor_with_the_merged_ids_and_associations(live: Sandbox) -> None:
    hs = hubspot_client(live)
    before = live.hubspot_record("contacts", "100002")["properties"]["lastmodifieddate"]
    survivor = live.merge_hubspot("contacts", "100002", "100001")
    assert survivor["properties"]["hs_merged_object_ids"] == "100001"
    assert survivor["properties"]["lastmodifieddate"] > before
    assert live.hubspot_associations("contacts", "companies", "100002") == ["500002"]
    assert "100001" not in live.hubspot_associations("deals", "contacts", "900001")
    everything = {r["id"] for r in live.hubspot_records("contacts")}
    assert "100001" not in everything  # gone, not archived
    assert hs.crm.contacts.basic_api.get_page(limit=100, archived=True).results == []
    # The merge API itself: a second merge adds to the list.
    answer = hs.crm.contacts.basic_api.merge(
        {"primaryObjectId": "100002", "objectIdToMerge": "100004"})
    assert answer.id == "100002"
    merged = hs.crm.contacts.basic_api.get_by_id(
        "100002", properties=["hs_merged_object_ids"]).properties
    assert merged["hs_merged_object_ids"] == "100001;100004"
    assert json.loads(_get(live, "/crm/v3/objects/contacts/100004").content)["category"] \
        == "OBJECT_NOT_FOUND"
