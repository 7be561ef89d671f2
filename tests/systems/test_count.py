"""`count`, where one CRM differs: HubSpot's search cap and search budget, Salesforce's rounding
of SOQL bounds and its daily usage header.

What both must do (count == what `read_all` returns, one call, retried under faults, nothing
gone counted, no call for an unknown object) is the adapter contract: test_contract.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from connector.sandbox import Sandbox
from connector.systems.base import parse_timestamp
from connector.systems.hubspot import HubSpotAdapter, HubSpotLimits
from connector.systems.salesforce import MODIFIED_FIELD

from .helpers import BASE, FAST_LIMITS, hubspot_for, ids_of, salesforce_for, tie_at_cap_stamps


@pytest.fixture(scope="module")
def counted() -> Iterator[Sandbox]:
    """A generated dataset (with archived contacts and deleted leads) that no test writes to."""
    with Sandbox(seed=200, **FAST_LIMITS) as sb:
        yield sb


def salesforce_stamps(sb: Sandbox, sobject: str) -> list[datetime]:
    return sorted(
        stamp
        for r in sb.salesforce_records(sobject)
        if not r["IsDeleted"] and (stamp := parse_timestamp(r.get(MODIFIED_FIELD)))
    )


# --- HubSpot -------------------------------------------------------------------------------------


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


# --- Salesforce ----------------------------------------------------------------------------------


def test_salesforce_count_rounds_the_upper_bound_like_read_all(counted: Sandbox) -> None:
    salesforce = salesforce_for(counted)
    stamps = salesforce_stamps(counted, "Contact")
    until = stamps[len(stamps) // 2] + timedelta(milliseconds=1)  # ceiled to the next second
    read = ids_of(salesforce.read_all("Contact", [], until=until), "Id")
    assert salesforce.count("Contact", until=until) == len(read)


def test_salesforce_count_reads_the_daily_usage(counted: Sandbox) -> None:
    salesforce = salesforce_for(counted)
    assert salesforce.count("Lead") is not None
    usage = salesforce.usage()
    assert usage.daily_used is not None and usage.daily_allocation  # Sforce-Limit-Info seen
