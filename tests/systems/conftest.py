"""Sandbox-backed fixtures for the adapter tests: real SDKs, real HTTPS, no mocks.

Rate windows are time-scaled (the sandbox's and ours alike) and backoff is short, so a test
exercises the same limits and retries as production in a fraction of the time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.sandbox import Sandbox
from connector.settings import Settings
from connector.systems.factory import build_hubspot, build_salesforce
from connector.systems.hubspot import HubSpotAdapter
from connector.systems.salesforce import SalesforceAdapter

BASE = datetime(2024, 1, 1, tzinfo=UTC)

# Fast but faithful: the sandbox allows 100 requests per 0.5 s; we budget 90% of that.
FAST_LIMITS = {
    "hubspot_requests_per_window": 100,
    "hubspot_window_seconds": 0.5,
    "search_requests_per_second": 1000,
}


def settings_for(sb: Sandbox, **overrides: Any) -> Settings:
    """Settings pointing at the sandbox, as `crmsync` would read them from the environment."""
    values: dict[str, Any] = {
        k.removeprefix("CRMSYNC_").lower(): v for k, v in sb.settings_env().items()
    }
    values.update(
        hubspot_requests_per_10s=90,
        hubspot_window_seconds=0.5,
        hubspot_search_per_second=1000,
        retry_max_attempts=8,
        retry_initial_wait_seconds=0.01,
        retry_max_wait_seconds=0.2,
        http_timeout_seconds=10.0,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def hubspot_for(sb: Sandbox, **overrides: Any) -> HubSpotAdapter:
    return build_hubspot(settings_for(sb, **overrides))


def salesforce_for(sb: Sandbox, **overrides: Any) -> SalesforceAdapter:
    return build_salesforce(settings_for(sb, **overrides))


def hs_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sf_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def hubspot_contacts(stamps: list[datetime], first_id: int = 100001) -> list[dict[str, Any]]:
    return [
        {
            "id": str(first_id + n),
            "properties": {
                "email": f"person{n}@example{n % 97}.com",
                "firstname": f"P{n}",
                "createdate": hs_time(BASE - timedelta(days=1)),
                "lastmodifieddate": hs_time(stamp),
            },
        }
        for n, stamp in enumerate(stamps)
    ]


def hubspot_companies(stamps: list[datetime], first_id: int = 500001) -> list[dict[str, Any]]:
    return [
        {
            "id": str(first_id + n),
            "properties": {
                "name": f"Org {n}",
                "domain": f"org{n}.example",
                "createdate": hs_time(BASE - timedelta(days=1)),
                "hs_lastmodifieddate": hs_time(stamp),
            },
        }
        for n, stamp in enumerate(stamps)
    ]


def hubspot_deals(stamps: list[datetime], first_id: int = 900001) -> list[dict[str, Any]]:
    return [
        {
            "id": str(first_id + n),
            "properties": {
                "dealname": f"Deal {n}",
                "createdate": hs_time(BASE - timedelta(days=1)),
                "hs_lastmodifieddate": hs_time(stamp),
            },
        }
        for n, stamp in enumerate(stamps)
    ]


def deal_links(count: int, companies: int, contacts: int) -> dict[str, list[list[str]]]:
    """Deal n -> company n % companies and contact n % contacts (ids as the helpers give)."""
    return {
        "deals/companies": [[str(900001 + n), str(500001 + n % companies)] for n in range(count)],
        "deals/contacts": [[str(900001 + n), str(100001 + n % contacts)] for n in range(count)],
    }


def tie_at_cap_stamps() -> tuple[list[datetime], datetime]:
    """9,900 distinct times, then 250 records sharing one time across the 10,000 search cap,
    then 400 later: 10,550 changed records in all."""
    distinct = [BASE + timedelta(seconds=n) for n in range(9_900)]
    tie = BASE + timedelta(seconds=20_000)
    later = [tie + timedelta(seconds=1 + n) for n in range(400)]
    return [*distinct, *([tie] * 250), *later], tie


def one_instant_stamps() -> tuple[list[datetime], datetime]:
    """10,100 records modified at the same millisecond (more than one search can return),
    then 50 later."""
    instant = BASE + timedelta(days=1)
    return [instant] * 10_100 + [instant + timedelta(seconds=1 + n) for n in range(50)], instant


@pytest.fixture(scope="session")
def big_hubspot() -> Iterator[Sandbox]:
    """Contacts and deals: the 250-way tie at the search cap (deal n linked to company
    n % 10,150 and contact n); companies: 10,100 at one instant."""
    tie, _ = tie_at_cap_stamps()
    instant, _ = one_instant_stamps()
    fixture = {
        "hubspot": {
            "contacts": hubspot_contacts(tie),
            "companies": hubspot_companies(instant),
            "deals": hubspot_deals(tie),
            "associations": deal_links(len(tie), len(instant), len(tie)),
        }
    }
    with Sandbox(fixture=fixture, **FAST_LIMITS) as sb:
        yield sb


def salesforce_rows(
    sobject: str, stamps: list[datetime], extra: dict[str, Any]
) -> list[dict[str, Any]]:
    return [
        {
            **extra,
            "LastName": f"Person {n}",
            "Email": f"person{n}@example{n % 97}.com",
            "CreatedDate": sf_time(BASE - timedelta(days=1)),
            "LastModifiedDate": sf_time(stamp),
            "SystemModstamp": sf_time(stamp),
        }
        for n, stamp in enumerate(stamps)
    ]


def boundary_tie_stamps() -> tuple[list[datetime], datetime]:
    """2,500 leads; 301 of them (positions 1,900..2,200) share one SystemModstamp, straddling
    the 2,000-record batch boundary."""
    before = [BASE + timedelta(seconds=n) for n in range(1_900)]
    tie = BASE + timedelta(seconds=5_000)
    after = [tie + timedelta(seconds=1 + n) for n in range(299)]
    return [*before, *([tie] * 301), *after], tie


@pytest.fixture(scope="session")
def big_salesforce() -> Iterator[Sandbox]:
    """10,000 Contacts (call budget) and 2,500 Leads with a tie at the batch boundary."""
    contacts = salesforce_rows(
        "Contact", [BASE + timedelta(milliseconds=250 * n) for n in range(10_000)], {}
    )
    leads_stamps, _ = boundary_tie_stamps()
    leads = salesforce_rows(
        "Lead", leads_stamps, {"Company": "Acme", "Status": "Open - Not Contacted"}
    )
    fixture = {"salesforce": {"Contact": contacts, "Lead": leads}}
    with Sandbox(fixture=fixture, **FAST_LIMITS) as sb:
        yield sb


@pytest.fixture
def small_sandbox() -> Iterator[Sandbox]:
    """A generated dataset (200 organisations, ~600 persons) for behaviour tests."""
    with Sandbox(seed=200, **FAST_LIMITS) as sb:
        yield sb


def ids_of(pages: Any, key: str = "id") -> list[str]:
    return [str(r[key]) for page in pages for r in page.records]
