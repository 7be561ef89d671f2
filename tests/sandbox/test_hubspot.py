"""The HubSpot emulation, driven through the real hubspot-api-client over HTTPS."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import ApiException as AssociationsApiException
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)
from hubspot.crm.properties import ApiException as PropertiesApiException

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW, hubspot_client


def _live_ids(sb: Sandbox, object_type: str) -> set[str]:
    return {r["id"] for r in sb.hubspot_records(object_type) if not r["archived"]}


PAGE = 37


def _page_through_list(api, **kwargs) -> list:
    records, after = [], None
    while True:
        page = api.get_page(limit=PAGE, after=after, **kwargs)
        records.extend(page.results)
        if page.paging is None:
            return records
        after = page.paging.next.after


def _update(hs, inputs: list[dict]) -> tuple:
    """Batch update through the SDK; returns (body, HTTP status)."""
    body, status, _ = hs.crm.contacts.batch_api.update_with_http_info(
        BatchInputSimplePublicObjectBatchInput(inputs=inputs)
    )
    return body, status


# ---- list and read ------------------------------------------------------------------------


@pytest.mark.parametrize("object_type", ["contacts", "companies", "deals"])
def test_list_pages_to_the_end_without_overlap(seeded: Sandbox, object_type: str) -> None:
    api = getattr(hubspot_client(seeded).crm, object_type).basic_api
    records = _page_through_list(api)
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)), "pages overlap"
    assert set(ids) == _live_ids(seeded, object_type)
    assert len(ids) > 2 * PAGE


def test_list_archived_returns_only_archived(seeded: Sandbox) -> None:
    api = hubspot_client(seeded).crm.contacts.basic_api
    archived = _page_through_list(api, archived=True)
    expected = {r["id"] for r in seeded.hubspot_records("contacts") if r["archived"]}
    assert {r.id for r in archived} == expected
    assert all(r.archived for r in archived)


def test_list_caps_limit_at_100(seeded: Sandbox) -> None:
    page = hubspot_client(seeded).crm.contacts.basic_api.get_page(limit=500)
    assert len(page.results) == 100


def test_requested_properties_are_returned_with_nulls(seeded: Sandbox) -> None:
    page = hubspot_client(seeded).crm.contacts.basic_api.get_page(
        limit=100, properties=["email", "salesforceleadid", "no_such_property"]
    )
    props = page.results[0].properties
    assert set(props) == {"email", "salesforceleadid", "hs_object_id", "createdate",
                          "lastmodifieddate"}
    assert any(r.properties["salesforceleadid"] is None for r in page.results)


def test_read_by_id_and_by_email(seeded: Sandbox) -> None:
    api = hubspot_client(seeded).crm.contacts.basic_api
    stored = next(r for r in seeded.hubspot_records("contacts") if not r["archived"])
    by_id = api.get_by_id(stored["id"], properties=["email"])
    assert by_id.properties["email"] == stored["properties"]["email"]
    by_email = api.get_by_id(stored["properties"]["email"].upper(), id_property="email")
    assert by_email.id == stored["id"]
    with pytest.raises(ApiException) as missing:
        api.get_by_id("1")
    assert missing.value.status == 404


def test_wrong_token_is_401_invalid_authentication(seeded: Sandbox) -> None:
    hs = HubSpot(access_token="pat-na1-wrong", host=seeded.hubspot_base_url,
                 ssl_ca_cert=seeded.ca_path, retry=False)
    with pytest.raises(ApiException) as refused:
        hs.crm.contacts.basic_api.get_page()
    assert refused.value.status == 401
    assert '"category":"INVALID_AUTHENTICATION"' in refused.value.body


# ---- search -------------------------------------------------------------------------------


def _search(hs, **request) -> object:
    return hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(**request))


def test_search_filters_sorts_and_pages_by_modified_date(seeded: Sandbox) -> None:
    hs = hubspot_client(seeded)
    cutoff = "2025-01-01T00:00:00.000Z"
    expected = {r["id"] for r in seeded.hubspot_records("contacts")
                if not r["archived"] and r["properties"]["lastmodifieddate"] >= cutoff}
    epoch_ms = "1735689600000"  # the same instant, as epoch milliseconds
    request = {
        "filter_groups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                        "value": epoch_ms}]}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email", "lastmodifieddate"],
        "limit": 200,
    }
    seen, after = [], None
    while True:
        page = _search(hs, after=after, **request)
        seen.extend(page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert page.total == len(expected)
    assert {r.id for r in seen} == expected
    stamps = [r.properties["lastmodifieddate"] for r in seen]
    assert stamps == sorted(stamps)


def test_search_between_and_in_operators(seeded: Sandbox) -> None:
    hs = hubspot_client(seeded)
    contacts = [r for r in seeded.hubspot_records("contacts") if not r["archived"]]
    wanted = {contacts[0]["id"], contacts[5]["id"]}
    found = _search(hs, filter_groups=[{"filters": [
        {"propertyName": "hs_object_id", "operator": "IN", "values": sorted(wanted)}]}])
    assert {r.id for r in found.results} == wanted
    low, high = "2025-03-01T00:00:00.000Z", "2025-04-01T00:00:00.000Z"
    expected = {r["id"] for r in contacts
                if low <= r["properties"]["lastmodifieddate"] <= high}
    page = _search(hs, limit=200, filter_groups=[{"filters": [
        {"propertyName": "lastmodifieddate", "operator": "BETWEEN", "value": low,
         "highValue": high}]}])
    assert {r.id for r in page.results} == expected


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        ({"limit": 201}, "limit"),
        ({"sorts": [{"propertyName": "createdate"}, {"propertyName": "email"}]}, "one sort"),
        ({"filter_groups": [{"filters": [{"propertyName": "nope", "operator": "EQ",
                                          "value": "x"}]}]}, "nope"),
        ({"after": "10000"}, "10000"),
    ],
)
def test_search_rejects_what_hubspot_rejects(seeded: Sandbox, request_body, fragment) -> None:
    with pytest.raises(ApiException) as refused:
        _search(hubspot_client(seeded), **request_body)
    assert refused.value.status == 400
    assert fragment in refused.value.body
    assert '"category":"VALIDATION_ERROR"' in refused.value.body


def test_search_stops_at_10000_results() -> None:
    """Paging a query with more than 10,000 matches ends in a 400, as HubSpot's does."""
    contacts = [{"id": str(100_001 + i), "properties": {"email": f"p{i}@example.com",
                 "lastmodifieddate": "2025-05-01T00:00:00.000Z"}} for i in range(10_050)]
    with Sandbox(fixture={"hubspot": {"contacts": contacts}}, now=NOW,
                 search_requests_per_second=1000, hubspot_requests_per_window=100_000) as sb:
        api = hubspot_client(sb).crm.contacts.search_api
        seen, after = 0, None
        with pytest.raises(ApiException) as capped:
            while True:
                body = {"limit": 200, "after": after, "properties": ["email"]}
                page = api.do_search(PublicObjectSearchRequest(**body), _preload_content=False)
                data = json.loads(page.data)
                seen += len(data["results"])
                assert data["total"] == 10_050
                after = data["paging"]["next"]["after"]
        assert seen == 10_000
        assert capped.value.status == 400


# ---- batch read / update ------------------------------------------------------------------


def test_batch_read_answers_207_for_missing_ids(seeded: Sandbox) -> None:
    hs = hubspot_client(seeded)
    ids = sorted(_live_ids(seeded, "contacts"))[:3]
    body, status, _ = hs.crm.contacts.batch_api.read_with_http_info(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": i} for i in [*ids, "42"]], properties=["email"],
            properties_with_history=[],
        )
    )
    assert status == 207
    assert {r.id for r in body.results} == set(ids)
    assert body.num_errors == 1
    assert body.errors[0].category == "OBJECT_NOT_FOUND"
    assert body.errors[0].context == {"ids": ["42"]}


def test_batch_read_by_email_id_property(seeded: Sandbox) -> None:
    hs = hubspot_client(seeded)
    stored = sorted(seeded.hubspot_records("contacts"), key=lambda r: r["id"])[:2]
    emails = [r["properties"]["email"] for r in stored if not r["archived"]]
    body, status, _ = hs.crm.contacts.batch_api.read_with_http_info(
        BatchReadInputSimplePublicObjectId(inputs=[{"id": e} for e in emails],
                                           properties=["email"], properties_with_history=[],
                                           id_property="email"))
    assert status == 200
    assert sorted(r.properties["email"] for r in body.results) == sorted(emails)


def test_batch_update_200_writes_and_bumps_modified_date(fresh: Sandbox) -> None:
    hs = hubspot_client(fresh)
    target = next(r for r in fresh.hubspot_records("contacts") if not r["archived"])
    before = target["properties"]["lastmodifieddate"]
    body, status = _update(hs, [{"id": target["id"], "properties": {
        "crmsync_priority": "fit", "crmsync_icp_fit": "true"}}])
    assert status == 200
    assert body.results[0].properties["crmsync_priority"] == "fit"
    after = fresh.hubspot_record("contacts", target["id"])["properties"]
    assert after["crmsync_priority"] == "fit"
    assert after["crmsync_icp_fit"] == "true"
    assert after["lastmodifieddate"] > before


@pytest.fixture
def lenient() -> Iterator[Sandbox]:
    """A sandbox with the OLD per-input validation (`hubspot_strict_batches=False`): real
    HubSpot refuses the whole batch (tests/sandbox/test_hubspot_strict.py); these tests keep
    the lenient emulation's 207 shape working for callers that opt into it."""
    with Sandbox(seed=30, now=NOW, search_requests_per_second=1000,
                 hubspot_requests_per_window=100_000, hubspot_strict_batches=False) as sb:
        yield sb


def test_batch_update_207_for_unknown_id_and_invalid_option(lenient: Sandbox) -> None:
    fresh = lenient
    hs = hubspot_client(fresh)
    good, bad = sorted(_live_ids(fresh, "contacts"))[:2]
    body, status = _update(hs, [
        {"id": good, "properties": {"crmsync_priority": "other"}},
        {"id": bad, "properties": {"crmsync_priority": "not-a-priority"}},
        {"id": "999", "properties": {"crmsync_priority": "fit"}},
    ])
    assert status == 207
    assert [r.id for r in body.results] == [good]
    by_id = {e.context["ids"][0]: e for e in body.errors}
    assert by_id[bad].category == "VALIDATION_ERROR"
    assert by_id[bad].errors[0].code == "INVALID_OPTION"
    assert by_id["999"].category == "OBJECT_NOT_FOUND"
    assert body.num_errors == 2
    assert fresh.hubspot_record("contacts", bad)["properties"].get("crmsync_priority") is None


def test_batch_update_rejects_read_only_and_unknown_properties(lenient: Sandbox) -> None:
    fresh = lenient
    hs = hubspot_client(fresh)
    one = sorted(_live_ids(fresh, "contacts"))[0]
    body, status = _update(hs, [{"id": one, "properties": {"createdate": "0", "nope": "x"}}])
    assert status == 207
    codes = sorted(e.code for e in body.errors[0].errors)
    assert codes == ["PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"]


def test_batch_limits_and_duplicate_ids_are_400(fresh: Sandbox) -> None:
    hs = hubspot_client(fresh)
    with pytest.raises(ApiException) as too_many:
        _update(hs, [{"id": str(i), "properties": {}} for i in range(101)])
    assert too_many.value.status == 400
    one = sorted(_live_ids(fresh, "contacts"))[0]
    with pytest.raises(ApiException) as duplicated:
        _update(hs, [{"id": one, "properties": {}}, {"id": one, "properties": {}}])
    assert "Duplicate IDs" in duplicated.value.body


# ---- lifecycle stage: forward only ---------------------------------------------------------


def _contact_at_stage(sb: Sandbox, stage: str) -> str:
    record = sb.create_hubspot("contacts", {"email": f"{stage}@example.com",
                                            "lifecyclestage": stage})
    return record["id"]


def test_backward_lifecycle_write_answers_success_and_changes_nothing(fresh: Sandbox) -> None:
    hs = hubspot_client(fresh)
    contact = _contact_at_stage(fresh, "customer")
    before = fresh.hubspot_record("contacts", contact)["properties"]
    body, status = _update(hs, [{"id": contact, "properties": {"lifecyclestage": "lead"}}])
    assert status == 200
    assert body.results[0].id == contact
    after = fresh.hubspot_record("contacts", contact)["properties"]
    assert after["lifecyclestage"] == "customer"
    assert after["lastmodifieddate"] == before["lastmodifieddate"]


def test_forward_lifecycle_write_including_custom_stage(fresh: Sandbox) -> None:
    hs = hubspot_client(fresh)
    contact = _contact_at_stage(fresh, "subscriber")
    _update(hs, [{"id": contact, "properties": {"lifecyclestage": "57129481"}}])
    assert fresh.hubspot_record("contacts", contact)["properties"]["lifecyclestage"] == "57129481"
    _update(hs, [{"id": contact, "properties": {"lifecyclestage": "salesqualifiedlead"}}])
    stored = fresh.hubspot_record("contacts", contact)["properties"]
    assert stored["lifecyclestage"] == "salesqualifiedlead"


def test_clear_then_set_moves_lifecycle_back(fresh: Sandbox) -> None:
    hs = hubspot_client(fresh)
    contact = _contact_at_stage(fresh, "opportunity")
    _update(hs, [{"id": contact, "properties": {"lifecyclestage": ""}}])
    assert fresh.hubspot_record("contacts", contact)["properties"]["lifecyclestage"] is None
    _update(hs, [{"id": contact, "properties": {"lifecyclestage": "lead"}}])
    assert fresh.hubspot_record("contacts", contact)["properties"]["lifecyclestage"] == "lead"


# ---- associations and properties ----------------------------------------------------------


def test_associations_v4_batch_read(seeded: Sandbox) -> None:
    hs = hubspot_client(seeded)
    contacts = sorted(_live_ids(seeded, "contacts"), key=int)
    linked = [c for c in contacts if seeded.hubspot_associations("contacts", "companies", c)]
    lonely = next(c for c in contacts if c not in linked)
    body, status, _ = hs.crm.associations.v4.batch_api.get_page_with_http_info(
        "contacts", "companies",
        BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": c} for c in
                                                              [*linked[:5], lonely]]),
    )
    assert status == 207
    got = {r._from.id: [t.to_object_id for t in r.to] for r in body.results}
    for contact in linked[:5]:
        expected = seeded.hubspot_associations("contacts", "companies", contact)
        assert [str(t) for t in got[contact]] == expected
    assert body.errors[0].context == {"fromObjectId": [lonely]}
    first = body.results[0].to[0].association_types
    assert {t.type_id for t in first} == {1, 279}


def test_associations_reverse_direction_and_limit(seeded: Sandbox) -> None:
    hs = hubspot_client(seeded)
    company = next(c["id"] for c in seeded.hubspot_records("companies")
                   if seeded.hubspot_associations("companies", "contacts", c["id"]))
    body = hs.crm.associations.v4.batch_api.get_page(
        "companies", "contacts",
        BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": company}]))
    assert {str(t.to_object_id) for t in body.results[0].to} == set(
        seeded.hubspot_associations("companies", "contacts", company))
    with pytest.raises(AssociationsApiException) as too_many:
        hs.crm.associations.v4.batch_api.get_page(
            "contacts", "companies",
            BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[{"id": str(i)} for i in range(1001)]))
    assert too_many.value.status == 400


# ---- associations inline on list and read ---------------------------------------------------

def _raw_list(hs: HubSpot, object_type: str, **kwargs) -> dict:
    api = getattr(hs.crm, object_type).basic_api
    return json.loads(api.get_page(_preload_content=False, **kwargs).data)


def test_list_returns_associations_inline(seeded: Sandbox) -> None:
    hs = hubspot_client(seeded)
    deals = _page_through_list(hs.crm.deals.basic_api, associations=["contacts", "companies"])
    assert deals
    seen = {"contacts": 0, "companies": 0}
    for deal in deals:
        for to_type in seen:
            expected = seeded.hubspot_associations("deals", to_type, deal.id)
            listed = (deal.associations or {}).get(to_type)
            if not expected:
                assert listed is None, (deal.id, to_type)
                continue
            seen[to_type] += 1
            assert list(dict.fromkeys(a.id for a in listed.results)) == expected
            assert listed.paging is None
    assert min(seen.values()) > 0
    # Without the parameter no record carries associations.
    assert not any("associations" in r for r in _raw_list(hs, "deals", limit=50)["results"])


def test_inline_association_rows_and_type_names(inline: Sandbox) -> None:
    hs = hubspot_client(inline)
    raw = _raw_list(hs, "deals", limit=10, associations=["contacts", "companies"])
    by_id = {r["id"]: r for r in raw["results"]}
    assert by_id["900002"]["associations"] == {"companies": {"results": [
        {"id": "500001", "type": "deal_to_company"},
        {"id": "500001", "type": "deal_to_company_unlabeled"},
    ]}}
    assert "associations" not in by_id["900003"], "a record with none omits the key"
    companies = by_id["900004"]["associations"]["companies"]
    assert len(companies["results"]) == 61 and "paging" not in companies
    assert [r["type"] for r in companies["results"][:3]] == [
        "deal_to_company", "deal_to_company_unlabeled", "deal_to_company_unlabeled"]
    contacts = by_id["900001"]["associations"]["contacts"]["results"]
    assert {r["type"] for r in contacts} == {"deal_to_contact"}


def test_inline_associations_stop_at_100_with_a_cursor(inline: Sandbox) -> None:
    hs = hubspot_client(inline)
    deal = hs.crm.deals.basic_api.get_by_id("900001", associations=["contacts"])
    contacts = deal.associations["contacts"]
    assert [a.id for a in contacts.results] == [str(100001 + n) for n in range(100)]
    assert contacts.paging.next.after
    assert contacts.paging.next.link.startswith("/crm/v3/objects/deals/900001/associations/")
    assert set(deal.associations) == {"contacts"}, "only the requested types"
    company = hs.crm.companies.basic_api.get_by_id("500001", associations=["contacts", "deals"])
    assert set(company.associations) == {"deals"}
    assert [(a.id, a.type) for a in company.associations["deals"].results] == [
        ("900001", "company_to_deal"), ("900001", "company_to_deal_unlabeled"),
        ("900002", "company_to_deal"), ("900002", "company_to_deal_unlabeled"),
        ("900004", "company_to_deal"), ("900004", "company_to_deal_unlabeled")]
    other = hs.crm.companies.basic_api.get_by_id("500002", associations=["deals"])
    assert [(a.id, a.type) for a in other.associations["deals"].results] == [
        ("900004", "company_to_deal_unlabeled")], "not 900004's primary company"


def test_association_names_as_hubspot_accepts_them(inline: Sandbox) -> None:
    hs = hubspot_client(inline)
    raw = _raw_list(hs, "deals", limit=2, associations=["contact,0-2", "widgets", "deals"])
    first = raw["results"][0]["associations"]
    assert list(first) == ["contacts", "companies"], "unknown or unrelated names are ignored"


def test_search_and_batch_read_carry_no_associations(inline: Sandbox) -> None:
    hs = hubspot_client(inline)
    found = json.loads(hs.crm.deals.search_api.do_search(
        PublicObjectSearchRequest(limit=10), _preload_content=False).data)
    assert found["results"] and not any("associations" in r for r in found["results"])
    read = json.loads(hs.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(inputs=[{"id": "900001"}], properties=[],
                                           properties_with_history=[]),
        _preload_content=False).data)
    assert read["results"] and "associations" not in read["results"][0]


def test_properties_describe_lifecycle_options_with_custom_stages(seeded: Sandbox) -> None:
    hs = hubspot_client(seeded)
    stage = hs.crm.properties.core_api.get_by_name("contacts", "lifecyclestage")
    labels = {o.value: o.label for o in stage.options}
    assert labels["57129481"] == "Marketing Qualified Prospect"
    assert labels["57129482"] == "Sales Qualified Prospect"
    assert [o.value for o in stage.options][:3] == ["subscriber", "57129481", "lead"]
    everything = hs.crm.properties.core_api.get_all("companies")
    names = {p.name for p in everything.results}
    assert {"salesforceaccountid", "recent_funding_date", "crmsync_trigger_active"} <= names
    with pytest.raises(PropertiesApiException) as missing:
        hs.crm.properties.core_api.get_by_name("contacts", "nope")
    assert missing.value.status == 404
