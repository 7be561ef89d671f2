"""Seeded fault injection: the grammar, determinism, and what each kind looks like to a client."""

from __future__ import annotations

import json

import pytest
import requests
import urllib3
from hubspot.crm.contacts import ApiException, BatchInputSimplePublicObjectBatchInput
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceRefusedRequest

from connector.sandbox import FaultSpec, Sandbox, parse_faults
from connector.sandbox.faults import FaultPlan, FaultSpecError
from tests.sandbox.clients import NOW, hubspot_client, salesforce_client, salesforce_session

# ---- grammar ------------------------------------------------------------------------------


def test_parse_full_spec() -> None:
    spec = parse_faults("hubspot.search:429=0.1, salesforce.query:503=0.05,*:drop=0.02,"
                        "salesforce.composite:lock=0.1,seed=7,delay=0.5")
    assert spec.seed == 7
    assert spec.slow_seconds == 0.5
    assert spec.rate("hubspot.search", "429") == 0.1
    assert spec.rate("hubspot.list", "429") == 0.0
    assert spec.rate("hubspot.list", "drop") == 0.02
    assert spec.rate("salesforce.composite", "lock") == 0.1
    assert parse_faults(str(spec)) == spec


def test_most_specific_target_wins() -> None:
    spec = parse_faults("*:500=0.5,hubspot.*:500=0.2,hubspot.search:500=0")
    assert spec.rate("hubspot.search", "500") == 0.0
    assert spec.rate("hubspot.list", "500") == 0.2
    assert spec.rate("salesforce.query", "500") == 0.5


@pytest.mark.parametrize("bad", ["hubspot.search:418=0.1", "nowhere:429=0.1", "*:drop",
                                 "*:drop=2", "*:drop=lots", "seed=x", "drop=0.1"])
def test_bad_specs_say_what_is_wrong(bad: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_faults(bad)


def test_draws_are_deterministic_per_endpoint() -> None:
    spec = parse_faults("hubspot.list:429=0.3,hubspot.list:503=0.2,hubspot.search:500=0.5,seed=4")
    first, second = FaultPlan(spec), FaultPlan(spec)
    # Interleaving another endpoint's requests does not change this endpoint's fate.
    a = [first.request_fault("hubspot.list") for _ in range(200)]
    b = []
    for _ in range(200):
        second.request_fault("hubspot.search")
        b.append(second.request_fault("hubspot.list"))
    assert a == b
    assert 40 < a.count("429") < 80 and 20 < a.count("503") < 60
    other = FaultPlan(FaultSpec(rules=spec.rules, seed=5))
    assert [other.request_fault("hubspot.list") for _ in range(200)] != a


# ---- through the SDKs -----------------------------------------------------------------------


def _statuses(sb: Sandbox, count: int) -> list[int]:
    api = hubspot_client(sb).crm.contacts.basic_api
    seen = []
    for _ in range(count):
        try:
            seen.append(api.get_page_with_http_info(limit=1)[1])
        except ApiException as error:
            seen.append(error.status)
    return seen


def test_same_seed_same_failures_over_https() -> None:
    spec = "hubspot.list:429=0.25,hubspot.list:503=0.15,seed=11"
    runs = []
    for _ in range(2):
        with Sandbox(seed=2, now=NOW, faults=spec, hubspot_requests_per_window=10_000) as sb:
            runs.append(_statuses(sb, 40))
            faults = sb.counters()["faults"]["hubspot.list"]
            assert faults["429"] == runs[-1].count(429)
    assert runs[0] == runs[1]
    assert {200, 429, 503} <= set(runs[0])


def test_injected_hubspot_errors_have_hubspot_shapes(fresh: Sandbox) -> None:
    fresh.set_faults("hubspot.properties:500=1")
    with pytest.raises(Exception) as failed:
        hubspot_client(fresh).crm.properties.core_api.get_all("contacts")
    assert failed.value.status == 500
    assert json.loads(failed.value.body)["category"] == "INTERNAL_ERROR"
    fresh.set_faults("hubspot.properties:429=1")
    with pytest.raises(Exception) as limited:
        hubspot_client(fresh).crm.properties.core_api.get_all("contacts")
    assert limited.value.status == 429
    assert json.loads(limited.value.body)["policyName"] == "TEN_SECONDLY_ROLLING"
    fresh.set_faults(None)
    assert hubspot_client(fresh).crm.properties.core_api.get_all("contacts").results


def test_dropped_connection_reaches_the_client_as_a_transport_error(fresh: Sandbox) -> None:
    fresh.set_faults("*:drop=1")
    with pytest.raises(urllib3.exceptions.HTTPError):
        hubspot_client(fresh).crm.contacts.basic_api.get_page()
    with pytest.raises(requests.exceptions.ConnectionError):
        salesforce_session(fresh).post(fresh.salesforce_token_url, data={}, timeout=5)


def test_slow_answers_outlast_a_short_client_timeout(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    fresh.set_faults("salesforce.limits:slow=1,delay=0.6")
    with pytest.raises(requests.exceptions.ReadTimeout):
        sf.limits(timeout=0.2)
    fresh.set_faults(None)
    assert sf.limits(timeout=5)["DailyApiRequests"]["Max"] > 0


def test_partial_batch_failures_give_207_with_retriable_errors(fresh: Sandbox) -> None:
    fresh.set_faults("hubspot.batch_update:partial=0.5,seed=3")
    ids = [r["id"] for r in fresh.hubspot_records("contacts") if not r["archived"]][:20]
    body, status, _ = hubspot_client(fresh).crm.contacts.batch_api.update_with_http_info(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": i, "properties": {"crmsync_priority": "fit"}} for i in ids]))
    assert status == 207
    failed = {e.context["ids"][0] for e in body.errors}
    assert {e.category for e in body.errors} == {"INTERNAL_ERROR"}
    assert 0 < len(failed) < len(ids)
    assert {r.id for r in body.results} == set(ids) - failed
    for record_id in ids:
        stored = fresh.hubspot_record("contacts", record_id)["properties"]
        assert (stored.get("crmsync_priority") == "fit") == (record_id not in failed)


def test_locked_rows_fail_per_record(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    fresh.set_faults("salesforce.composite:lock=1")
    account = fresh.salesforce_records("Account")[0]
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False,
        "records": [{"attributes": {"type": "Account"}, "id": account["Id"],
                     "Priority__c": "fit"}]})
    assert results[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert fresh.salesforce_record("Account", account["Id"]) == account


def test_session_fault_expires_the_token(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    fresh.set_faults("salesforce.query:session=1")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Lead LIMIT 1")
    fresh.set_faults(None)
    with pytest.raises(SalesforceExpiredSession):
        sf.limits()  # the token really is gone, not just that one answer
    assert salesforce_client(fresh).limits()


def test_salesforce_429_kind_is_a_concurrency_refusal(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    fresh.set_faults("salesforce.*:429=1")
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Lead LIMIT 1")
    assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert "Concurrent" in refused.value.content[0]["message"]


def test_faults_can_be_set_through_the_admin_endpoint(fresh: Sandbox) -> None:
    session = salesforce_session(fresh)
    answer = session.post(fresh.base_url + "/__sandbox/faults", data="hubspot.list:503=1")
    assert answer.json()["ok"] is True
    assert _statuses(fresh, 2) == [503, 503]
    refused = session.post(fresh.base_url + "/__sandbox/faults", data="nonsense")
    assert refused.status_code == 400
    session.post(fresh.base_url + "/__sandbox/faults", data="")
    assert _statuses(fresh, 1) == [200]
