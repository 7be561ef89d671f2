"""The HubSpot emulation answers as strictly as the real API: whole-batch validation 400s,
portal schemas that lack an option or a property, token scopes, the daily allocation in the
headers, and search outside the 10-second window. Driven through hubspot-api-client."""

from __future__ import annotations

import json

import pytest
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    PublicObjectSearchRequest,
)
from hubspot.crm.properties import ApiException as PropertiesApiException

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW, hubspot_client

PREFIX = "Property values were not valid: "


def _live(sb: Sandbox, object_type: str = "contacts") -> list[str]:
    return sorted((r["id"] for r in sb.hubspot_records(object_type) if not r["archived"]),
                  key=int)


def _update(sb: Sandbox, inputs: list[dict], object_type: str = "contacts"):
    api = getattr(hubspot_client(sb).crm, object_type).batch_api
    return api.update_with_http_info(BatchInputSimplePublicObjectBatchInput(inputs=inputs))


def _refused(sb: Sandbox, inputs: list[dict], object_type: str = "contacts") -> tuple[dict, list]:
    """The 400 body of a refused batch update and the property problems its message lists."""
    with pytest.raises(ApiException) as caught:
        _update(sb, inputs, object_type)
    assert caught.value.status == 400
    body = json.loads(caught.value.body)
    assert body["message"].startswith(PREFIX)
    return body, json.loads(body["message"].removeprefix(PREFIX))


# ---- whole-batch validation ---------------------------------------------------------------


def test_one_invalid_option_refuses_the_whole_batch(fresh: Sandbox) -> None:
    good, bad = _live(fresh)[:2]
    body, problems = _refused(fresh, [
        {"id": good, "properties": {"crmsync_priority": "fit"}},
        {"id": bad, "properties": {"crmsync_priority": "not-a-priority"}},
    ])
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["correlationId"]
    assert [(p["isValid"], p["error"], p["name"]) for p in problems] == [
        (False, "INVALID_OPTION", "crmsync_priority")]
    # The body names the property and the value, never the input.
    assert problems[0]["message"].startswith("not-a-priority was not one of the allowed options")
    assert bad not in body["message"] and good not in body["message"]
    # Nothing was applied, not even the good input.
    assert fresh.hubspot_record("contacts", good)["properties"].get("crmsync_priority") is None


def test_unknown_and_read_only_properties_refuse_the_batch(fresh: Sandbox) -> None:
    one, two = _live(fresh)[:2]
    _, problems = _refused(fresh, [
        {"id": one, "properties": {"firstname": "Ok"}},
        {"id": two, "properties": {"createdate": "0", "nope": "x"}},
    ])
    assert sorted((p["error"], p["name"]) for p in problems) == [
        ("PROPERTY_DOESNT_EXIST", "nope"), ("READ_ONLY_VALUE", "createdate")]
    assert fresh.hubspot_record("contacts", one)["properties"]["firstname"] != "Ok"


def test_an_invalid_number_refuses_the_batch_naming_the_value(fresh: Sandbox) -> None:
    one, two = _live(fresh)[:2]
    _, problems = _refused(fresh, [
        {"id": one, "properties": {"associatedcompanyid": "12"}},
        {"id": two, "properties": {"associatedcompanyid": "twelve"}},
    ])
    assert [(p["error"], p["name"]) for p in problems] == [
        ("INVALID_NUMBER", "associatedcompanyid")]
    assert "twelve" in problems[0]["message"]


def test_the_lenient_knob_keeps_per_input_207s() -> None:
    with Sandbox(seed=30, now=NOW, hubspot_strict_batches=False) as sb:
        good, bad = _live(sb)[:2]
        body, status, _ = _update(sb, [
            {"id": good, "properties": {"crmsync_priority": "fit"}},
            {"id": bad, "properties": {"crmsync_priority": "not-a-priority"}},
        ])
        assert status == 207
        assert [r.id for r in body.results] == [good]


def test_unknown_ids_still_answer_per_input(fresh: Sandbox) -> None:
    good = _live(fresh)[0]
    body, status, _ = _update(fresh, [{"id": good, "properties": {"crmsync_priority": "fit"}},
                                      {"id": "999", "properties": {"crmsync_priority": "fit"}}])
    assert status == 207
    assert [e.category for e in body.errors] == ["OBJECT_NOT_FOUND"]


# ---- the portal's own schema --------------------------------------------------------------


def test_a_removed_option_is_gone_from_the_property_and_refused(fresh: Sandbox) -> None:
    fresh.remove_hubspot_option("contacts", "crmsync_priority", "trigger_fit")
    properties = hubspot_client(fresh).crm.properties.core_api
    options = [o.value for o in properties.get_by_name("contacts", "crmsync_priority").options]
    assert options == ["fit", "nonfit_lead", "other"]
    listed = {p.name: p for p in properties.get_all("contacts").results}
    assert "trigger_fit" not in [o.value for o in listed["crmsync_priority"].options]
    # Companies keep their own property, option included.
    assert "trigger_fit" in [o.value for o in
                             properties.get_by_name("companies", "crmsync_priority").options]
    _, problems = _refused(fresh, [
        {"id": i, "properties": {"crmsync_priority": "trigger_fit"}} for i in _live(fresh)[:3]])
    assert {(p["error"], p["name"]) for p in problems} == {("INVALID_OPTION", "crmsync_priority")}


def test_a_removed_property_is_not_found_and_refused(fresh: Sandbox) -> None:
    fresh.remove_hubspot_property("contacts", "crmsync_icp_fit")
    properties = hubspot_client(fresh).crm.properties.core_api
    with pytest.raises(PropertiesApiException) as missing:
        properties.get_by_name("contacts", "crmsync_icp_fit")
    assert missing.value.status == 404
    assert "crmsync_icp_fit" not in {p.name for p in properties.get_all("contacts").results}
    _, problems = _refused(fresh, [{"id": _live(fresh)[0],
                                    "properties": {"crmsync_icp_fit": "true"}}])
    assert [(p["error"], p["name"]) for p in problems] == [
        ("PROPERTY_DOESNT_EXIST", "crmsync_icp_fit")]


# ---- scopes -------------------------------------------------------------------------------


def test_a_token_without_a_scope_gets_403_missing_scopes() -> None:
    granted = {"crm.objects.contacts.read", "crm.schemas.contacts.read"}
    with Sandbox(seed=30, now=NOW, hubspot_scopes=granted) as sb:
        client = hubspot_client(sb)
        assert client.crm.contacts.basic_api.get_page(limit=1).results
        with pytest.raises(ApiException) as write:
            _update(sb, [{"id": _live(sb)[0], "properties": {"firstname": "X"}}])
        assert write.value.status == 403
        body = json.loads(write.value.body)
        assert body["category"] == "MISSING_SCOPES"
        assert body["errors"][0]["context"]["requiredScopes"] == ["crm.objects.contacts.write"]
        with pytest.raises(PropertiesApiException) as schema:
            client.crm.properties.core_api.get_all("companies")
        assert json.loads(schema.value.body)["errors"][0]["context"]["requiredScopes"] == [
            "crm.schemas.companies.read"]


# ---- limits -------------------------------------------------------------------------------


def test_daily_headers_count_prior_usage_and_search_sends_none() -> None:
    with Sandbox(seed=30, now=NOW, hubspot_daily_limit=1_000, hubspot_daily_used=900,
                 search_requests_per_second=1000) as sb:
        client = hubspot_client(sb)
        _, _, headers = client.crm.contacts.basic_api.get_page_with_http_info(limit=1)
        assert headers["X-HubSpot-RateLimit-Daily"] == "1000"
        assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "99"
        _, _, search_headers = client.crm.contacts.search_api.do_search_with_http_info(
            PublicObjectSearchRequest(limit=1))
        assert not any(k.lower().startswith("x-hubspot-ratelimit") for k in search_headers)
        _, _, later = client.crm.contacts.basic_api.get_page_with_http_info(limit=1)
        # The search used the daily allocation too.
        assert later["X-HubSpot-RateLimit-Daily-Remaining"] == "97"


def test_searches_are_outside_the_ten_second_window() -> None:
    with Sandbox(seed=30, now=NOW, hubspot_requests_per_window=5,
                 hubspot_window_seconds=60, search_requests_per_second=1000) as sb:
        client = hubspot_client(sb)
        for _ in range(20):
            client.crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=1))
        for _ in range(5):
            _, _, headers = client.crm.contacts.basic_api.get_page_with_http_info(limit=1)
            assert headers["X-HubSpot-RateLimit-Max"] == "5"
        assert sb.counters()["statuses"]["hubspot.list"] == {"200": 5}
