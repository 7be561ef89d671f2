"""Every adapter requests at least what the catalog says the core always reads.

HubSpot answers with exactly the requested properties a portal defines (null when empty) plus
the id and dates it always adds (CRM API v3 "Retrieve a batch of ..." / list endpoints:
`properties` - "A comma separated list of the properties to be returned in the response");
a SOQL query answers with exactly its SELECT columns. So a page read with no mapping fields
shows what the adapter asked for on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.catalog import CATALOG
from connector.sandbox import Sandbox
from tests.systems.helpers import hubspot_for, salesforce_for

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def _first_page(pages):
    return next(page for page in pages if page.records)


def _always_read(system: str, obj: str) -> set[str]:
    spec = CATALOG[system].objects[obj]
    return set(spec.link_fields) | set(spec.modified_fields)


@pytest.mark.parametrize("obj", list(CATALOG["hubspot"].objects))
def test_hubspot_requests_the_catalog_fields(small_sandbox: Sandbox, obj: str):
    adapter = hubspot_for(small_sandbox)
    for pages in (adapter.read_all(obj, []), adapter.read_changed(obj, LONG_AGO, [])):
        record = _first_page(pages).records[0]
        missing = _always_read("hubspot", obj) - set(record["properties"])
        assert not missing, f"hubspot {obj} read without {sorted(missing)}"


@pytest.mark.parametrize("obj", list(CATALOG["salesforce"].objects))
def test_salesforce_requests_the_catalog_fields(small_sandbox: Sandbox, obj: str):
    adapter = salesforce_for(small_sandbox)
    for pages in (adapter.read_all(obj, []), adapter.read_changed(obj, LONG_AGO, [])):
        record = _first_page(pages).records[0]
        missing = _always_read("salesforce", obj) - set(record)
        assert not missing, f"salesforce {obj} read without {sorted(missing)}"
