"""Helpers for the adapter tests: settings and adapters pointed at a sandbox, and datasets.

Rate windows are time-scaled (the sandbox's and ours alike) and backoff is short, so a test
exercises the same limits and retries as production in a fraction of the time. Fixtures that
use these live in conftest.py; test modules import from here, never from each other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.catalog import CATALOG
from connector.sandbox import Sandbox
from connector.settings import Settings
from connector.systems.base import FieldInfo
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


# Our side of FAST_LIMITS, and backoff short enough for faults to cost milliseconds.
FAST_SETTINGS: dict[str, Any] = {
    "hubspot_requests_per_10s": 90,
    "hubspot_window_seconds": 0.5,
    "hubspot_search_per_second": 1000,
    "retry_max_attempts": 8,
    "retry_initial_wait_seconds": 0.01,
    "retry_max_wait_seconds": 0.2,
    "http_timeout_seconds": 10.0,
}


def settings_for(sb: Sandbox, **overrides: Any) -> Settings:
    """Settings pointing at the sandbox, as `crmsync` would read them from the environment."""
    return Settings.from_env_map(sb.settings_env(), **{**FAST_SETTINGS, **overrides})


def hubspot_for(sb: Sandbox, **overrides: Any) -> HubSpotAdapter:
    return build_hubspot(settings_for(sb, **overrides))


def salesforce_for(sb: Sandbox, **overrides: Any) -> SalesforceAdapter:
    return build_salesforce(settings_for(sb, **overrides))


def hs_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sf_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def hubspot_contacts(stamps: list[datetime], first_id: int = 100001) -> list[dict[str, Any]]:
    return _hubspot_rows("contacts", stamps, first_id, lambda n: {
        "email": f"person{n}@example{n % 97}.com", "firstname": f"P{n}"})


def hubspot_companies(stamps: list[datetime], first_id: int = 500001) -> list[dict[str, Any]]:
    return _hubspot_rows("companies", stamps, first_id, lambda n: {
        "name": f"Org {n}", "domain": f"org{n}.example"})


def hubspot_deals(stamps: list[datetime], first_id: int = 900001) -> list[dict[str, Any]]:
    return _hubspot_rows("deals", stamps, first_id, lambda n: {"dealname": f"Deal {n}"})


def _hubspot_rows(obj: str, stamps: list[datetime], first_id: int,
                  properties: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """Record n: id `first_id + n`, `properties(n)`, created the day before BASE and modified
    at `stamps[n]` (in the object's cursor field, as the catalog names it)."""
    modified = CATALOG["hubspot"].objects[obj].cursor_field
    created = hs_time(BASE - timedelta(days=1))
    return [
        {
            "id": str(first_id + n),
            "properties": {**properties(n), "createdate": created, modified: hs_time(stamp)},
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


def ids_of(pages: Any, key: str = "id") -> list[str]:
    return [str(r[key]) for page in pages for r in page.records]


# --- check: stub mapping and adapter ------------------------------------------------------


class StubMapping:
    """The two questions `check` asks a mapping, answered from dicts."""

    def __init__(self, read: dict, written: dict) -> None:
        self._read, self._written = read, written

    def fields_read(self, system: str) -> dict[str, set[str]]:
        return self._read.get(system, {})

    def fields_written(self, system: str) -> dict[str, set[str]]:
        return self._written.get(system, {})


class StubAdapter:
    """An adapter that only describes fields (or fails with `error`)."""

    def __init__(self, system: str, schema: dict[str, dict[str, FieldInfo]], error=None) -> None:
        self.system = system
        self.schema = schema
        self.error = error

    def describe_fields(self, object_type: str) -> dict[str, FieldInfo]:
        if self.error:
            raise self.error
        return self.schema[object_type]


def info(name: str, writable: bool = True) -> FieldInfo:
    return FieldInfo(name, name, "string", writable)


STUB_MAPPING = StubMapping(
    read={
        "hubspot": {"contacts": {"email", "lifecyclestage"}},
        "salesforce": {"Lead": {"Email", "Status"}},
    },
    written={
        "hubspot": {"contacts": {"lifecyclestage", "icp_fit"}},
        "salesforce": {"Lead": {"Status", "CreatedDate"}},
    },
)


# Against the sandbox: one missing and one read-only field per system.
SANDBOX_MAPPING = StubMapping(
    read={
        "hubspot": {"contacts": {"email", "lifecyclestage"}, "companies": {"domain"}},
        "salesforce": {"Lead": {"Email", "Status"}, "Account": {"Website"}},
    },
    written={
        "hubspot": {
            "contacts": {"lifecyclestage", "no_such_property"},
            "companies": {"hs_object_id"},
        },
        "salesforce": {"Lead": {"Status", "No_Such_Field__c"}},
    },
)
