"""Sandboxes shared by the sandbox tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.sandbox import Sandbox
from tests.helpers import inline_fixture
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


@pytest.fixture(scope="module")
def inline() -> Iterator[Sandbox]:
    """Deals with many, few and no associations (see `inline_fixture`)."""
    with Sandbox(fixture=inline_fixture(), now=NOW) as sb:
        yield sb
