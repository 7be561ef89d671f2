"""Sandboxes shared by the sandbox tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW


@pytest.fixture(scope="module")
def seeded() -> Iterator[Sandbox]:
    """A read-mostly generated sandbox shared by a module (tests must not depend on writes
    of other tests; writing tests use their own records or their own sandbox)."""
    with Sandbox(seed=120, now=NOW, search_requests_per_second=1000,
                 hubspot_requests_per_window=100_000) as sb:
        yield sb


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    """A small sandbox of one's own, for tests that write or change limits."""
    with Sandbox(seed=30, now=NOW, search_requests_per_second=1000,
                 hubspot_requests_per_window=100_000) as sb:
        yield sb


MANY = 150


def inline_fixture() -> dict:
    """150 contacts and 60 companies; deal 900001 has every contact (more than the 100 a
    record inlines) and company 500001, 900002 only that company, 900003 nothing, 900004 all
    60 companies (61 rows with the primary one's extra row)."""
    contacts = [{"id": str(100001 + n), "properties": {"email": f"p{n}@many.example"}}
                for n in range(MANY)]
    companies = [{"id": str(500001 + n), "properties": {"name": f"Org {n}"}} for n in range(60)]
    deals = [{"id": str(900001 + n), "properties": {"dealname": f"Deal {n}"}} for n in range(4)]
    return {"hubspot": {
        "contacts": contacts, "companies": companies, "deals": deals,
        "associations": {
            "deals/contacts": [["900001", c["id"]] for c in contacts],
            "deals/companies": [["900001", "500001"], ["900002", "500001"],
                                *(["900004", c["id"]] for c in companies)],
        },
    }}


@pytest.fixture(scope="module")
def inline() -> Iterator[Sandbox]:
    """Deals with many, few and no associations (see `inline_fixture`)."""
    with Sandbox(fixture=inline_fixture(), now=NOW) as sb:
        yield sb
