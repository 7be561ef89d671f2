"""The public surface of connector.systems: what `__all__` promises exists, and both adapters
offer the same CrmAdapter interface with the same signatures."""

from __future__ import annotations

import inspect

import connector.systems as systems
from connector.systems import CrmAdapter, HubSpotAdapter, SalesforceAdapter

METHODS = [
    "read_changed",
    "read_all",
    "count",
    "read_by_ids",
    "read_by_emails",
    "write",
    "describe_fields",
    "usage",
]


def test_all_names_exist() -> None:
    for name in systems.__all__:
        assert hasattr(systems, name), name
    assert sorted(systems.__all__) == systems.__all__


def test_both_adapters_share_the_protocol_signatures() -> None:
    for method in METHODS:
        expected = inspect.signature(getattr(CrmAdapter, method))
        for adapter in (HubSpotAdapter, SalesforceAdapter):
            actual = inspect.signature(getattr(adapter, method))
            assert list(actual.parameters) == list(expected.parameters), (adapter, method)
    assert HubSpotAdapter.system == "hubspot"
    assert SalesforceAdapter.system == "salesforce"
    assert isinstance(HubSpotAdapter.api_calls, property)
    assert isinstance(SalesforceAdapter.api_calls, property)
