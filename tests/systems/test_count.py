"""`count`: what a backfill will return, for one API call, through the SDKs against the sandbox.

Each count is checked against the records `read_all` actually returns over the same range, and
its cost against both the adapter's own usage and the sandbox's request counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from connector.sandbox import Sandbox
from connector.systems.base import parse_timestamp
from connector.systems.hubspot import MODIFIED_PROPERTY, HubSpotAdapter, HubSpotLimits
from connector.systems.salesforce import MODIFIED_FIELD

from .conftest import BASE, FAST_LIMITS, hubspot_for, ids_of, salesforce_for, tie_at_cap_stamps

HUBSPOT_OBJECTS = ("contacts", "companies", "deals")
SALESFORCE_OBJECTS = ("Lead", "Contact", "Account", "Opportunity")


@pytest.fixture(scope="module")
def counted() -> Iterator[Sandbox]:
    """A generated dataset (with archived contacts and deleted leads) that no test writes to."""
    with Sandbox(seed=200, **FAST_LIMITS) as sb:
        yield sb


def hubspot_stamps(sb: Sandbox, object_type: str) -> list[datetime]:
    modified = MODIFIED_PROPERTY[object_type]
    return sorted(
        stamp
        for r in sb.hubspot_records(object_type)
        if not r["archived"] and (stamp := parse_timestamp(r["properties"].get(modified)))
    )


def salesforce_stamps(sb: Sandbox, sobject: str) -> list[datetime]:
    return sorted(
        stamp
        for r in sb.salesforce_records(sobject)
        if not r["IsDeleted"] and (stamp := parse_timestamp(r.get(MODIFIED_FIELD)))
    )


def ranges(stamps: list[datetime]) -> list[tuple[datetime | None, datetime | None]]:
    """No range, and ranges whose bounds sit exactly on stored times (ties included), so an
    off-by-one in `>=` / `<` or a dropped bound changes the answer."""
    low, high = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    return [(None, None), (low, high), (low, None), (None, high)]


def in_range(
    stamps: list[datetime], since: datetime | None, until: datetime | None
) -> list[datetime]:
    return [s for s in stamps if (since is None or s >= since) and (until is None or s < until)]


def cost_of(adapter: Any, sb: Sandbox, call: Any) -> tuple[Any, dict[str, Any], dict[str, int]]:
    """(result, sandbox counters, adapter operations) for one call on a warmed-up adapter."""
    before = adapter.usage().by_operation
    sb.reset_counters()
    result = call()
    after = adapter.usage().by_operation
    spent = {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)}
    return result, sb.counters(), spent


# --- HubSpot -------------------------------------------------------------------------------------


@pytest.mark.parametrize("object_type", HUBSPOT_OBJECTS)
def test_hubspot_count_is_what_read_all_returns(counted: Sandbox, object_type: str) -> None:
    hubspot = hubspot_for(counted)
    stamps = hubspot_stamps(counted, object_type)
    for since, until in ranges(stamps):
        read = ids_of(hubspot.read_all(object_type, [], since=since, until=until))
        assert hubspot.count(object_type, since, until) == len(read), (since, until)
        assert len(read) == len(in_range(stamps, since, until)), (since, until)
    # The ranges discriminate: a count that ignored a bound would be off.
    low, high = ranges(stamps)[1]
    assert 0 < len(in_range(stamps, low, high)) < len(stamps)
    assert hubspot.count(object_type, low, high) == len(in_range(stamps, low, high))


def test_hubspot_count_excludes_archived_records(counted: Sandbox) -> None:
    archived = [r for r in counted.hubspot_records("contacts") if r["archived"]]
    assert archived, "the generator archives a few contacts"
    total = len(counted.hubspot_records("contacts"))
    assert hubspot_for(counted).count("contacts") == total - len(archived)


def test_hubspot_count_costs_exactly_one_search_call(counted: Sandbox) -> None:
    hubspot = hubspot_for(counted)
    hubspot.count("contacts")
    stamps = hubspot_stamps(counted, "contacts")
    for since, until in ranges(stamps):
        calls = hubspot.api_calls
        result, counters, spent = cost_of(
            hubspot, counted, lambda s=since, u=until: hubspot.count("contacts", s, u)
        )
        assert isinstance(result, int) and result > 0
        assert counters["requests"] == {"hubspot.search": 1}
        assert counters["records_returned"]["hubspot.search"] <= 1  # limit 1: no page of data
        assert spent == {"search": 1}
        assert hubspot.api_calls == calls + 1


def test_hubspot_count_is_not_capped_at_the_search_paging_limit(big_hubspot: Sandbox) -> None:
    stamps, tie = tie_at_cap_stamps()
    hubspot = hubspot_for(big_hubspot)
    big_hubspot.reset_counters()
    assert hubspot.count("contacts") == len(stamps) == 10_550
    assert hubspot.count("contacts", since=BASE) == 10_550
    bounded = ids_of(hubspot.read_all("contacts", [], since=tie, until=stamps[-1]))
    assert hubspot.count("contacts", since=tie, until=stamps[-1]) == len(bounded) == 250 + 399
    # 3 counts, one search per 200 rows, and one more: the 250 records sharing `tie` are
    # more than a NOT_IN filter excludes, so that instant is re-read in id order.
    assert big_hubspot.counters()["requests"]["hubspot.search"] <= 3 + len(bounded) // 200 + 2


def test_hubspot_count_uses_the_search_rate_budget() -> None:
    with Sandbox(seed=20, search_requests_per_second=5) as sb:
        hubspot = HubSpotAdapter(
            sb.hubspot_access_token,
            sb.hubspot_base_url,
            ca_bundle=sb.ca_path,
            limits=HubSpotLimits(search_per_second=5),
        )
        started = time.monotonic()
        for _ in range(8):
            assert hubspot.count("companies") is not None
        elapsed = time.monotonic() - started
        assert "429" not in sb.counters()["statuses"]["hubspot.search"]
        assert elapsed >= 0.5  # 8 searches at 5/s cannot all go in the first second
        assert hubspot.usage().rate_wait_seconds > 0


def test_hubspot_count_is_retried_under_faults(counted: Sandbox) -> None:
    hubspot = hubspot_for(counted)
    expected = hubspot.count("companies")
    counted.set_faults("hubspot.search:503=0.3,hubspot.search:429=0.2,seed=6")
    counted.reset_counters()
    try:
        answers = [hubspot.count("companies") for _ in range(10)]
        faults = counted.counters()["faults"]
    finally:
        counted.set_faults(None)
    assert answers == [expected] * 10
    assert sum(faults["hubspot.search"].values()) > 0
    assert hubspot.usage().retries >= sum(faults["hubspot.search"].values())


def test_hubspot_count_of_an_unknown_object_makes_no_call(counted: Sandbox) -> None:
    hubspot = hubspot_for(counted)
    with pytest.raises(ValueError, match="unknown HubSpot object type"):
        hubspot.count("widgets")
    assert hubspot.api_calls == 0


# --- Salesforce ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sobject", SALESFORCE_OBJECTS)
def test_salesforce_count_is_what_read_all_returns(counted: Sandbox, sobject: str) -> None:
    salesforce = salesforce_for(counted)
    stamps = salesforce_stamps(counted, sobject)
    for since, until in ranges(stamps):
        read = ids_of(salesforce.read_all(sobject, [], since=since, until=until), "Id")
        assert salesforce.count(sobject, since, until) == len(read), (since, until)
        assert len(read) == len(in_range(stamps, since, until)), (since, until)
    low, high = ranges(stamps)[1]
    assert 0 < len(in_range(stamps, low, high)) < len(stamps)
    assert salesforce.count(sobject, low, high) == len(in_range(stamps, low, high))


def test_salesforce_count_excludes_deleted_records(counted: Sandbox) -> None:
    deleted = [r for r in counted.salesforce_records("Lead") if r["IsDeleted"]]
    assert deleted, "the generator deletes a few leads"
    total = len(counted.salesforce_records("Lead"))
    assert salesforce_for(counted).count("Lead") == total - len(deleted)


def test_salesforce_count_rounds_the_upper_bound_like_read_all(counted: Sandbox) -> None:
    salesforce = salesforce_for(counted)
    stamps = salesforce_stamps(counted, "Contact")
    until = stamps[len(stamps) // 2] + timedelta(milliseconds=1)  # ceiled to the next second
    read = ids_of(salesforce.read_all("Contact", [], until=until), "Id")
    assert salesforce.count("Contact", until=until) == len(read)


def test_salesforce_count_costs_exactly_one_query_call(counted: Sandbox) -> None:
    salesforce = salesforce_for(counted)
    salesforce.count("Lead")  # the token is fetched once, on first use
    stamps = salesforce_stamps(counted, "Lead")
    for since, until in ranges(stamps):
        calls = salesforce.api_calls
        result, counters, spent = cost_of(
            salesforce, counted, lambda s=since, u=until: salesforce.count("Lead", s, u)
        )
        assert isinstance(result, int) and result > 0
        assert counters["requests"] == {"salesforce.query": 1}
        assert counters["records_returned"]["salesforce.query"] == 0  # COUNT() has no records
        assert spent == {"query": 1}
        assert salesforce.api_calls == calls + 1
    usage = salesforce.usage()
    assert usage.daily_used is not None and usage.daily_allocation  # Sforce-Limit-Info seen


def test_salesforce_count_is_retried_under_faults(counted: Sandbox) -> None:
    salesforce = salesforce_for(counted)
    expected = salesforce.count("Account")
    counted.set_faults(
        "salesforce.query:503=0.3,salesforce.query:session=0.1,salesforce.query:drop=0.1,seed=8"
    )
    counted.reset_counters()
    try:
        answers = [salesforce.count("Account") for _ in range(10)]
        faults = counted.counters()["faults"]
    finally:
        counted.set_faults(None)
    assert answers == [expected] * 10
    assert sum(faults["salesforce.query"].values()) > 0
    assert salesforce.usage().retries >= sum(faults["salesforce.query"].values())


def test_salesforce_count_of_an_unknown_object_makes_no_call(counted: Sandbox) -> None:
    salesforce = salesforce_for(counted)
    with pytest.raises(ValueError, match="unknown Salesforce object"):
        salesforce.count("Widget__c")
    assert salesforce.api_calls == 0
