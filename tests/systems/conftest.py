"""Sandbox-backed fixtures for the adapter tests: real SDKs, real HTTPS, no mocks.

What they are built from (settings, adapters, datasets) is in helpers.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest

from connector.sandbox import Sandbox

from .helpers import (
    BASE,
    FAST_LIMITS,
    boundary_tie_stamps,
    deal_links,
    hubspot_companies,
    hubspot_contacts,
    hubspot_deals,
    one_instant_stamps,
    salesforce_rows,
    tie_at_cap_stamps,
)


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


@pytest.fixture
def sandbox_env(small_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Sandbox:
    for name in list(os.environ):
        if name.startswith("CRMSYNC_"):
            monkeypatch.delenv(name)
    for name, value in small_sandbox.settings_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRMSYNC_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.chdir(tmp_path)
    return small_sandbox
