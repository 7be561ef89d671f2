"""Shared fixtures for the core tests: the shipped mapping and a fixed 'today'."""

from __future__ import annotations

from datetime import date

import pytest

from connector.mapping import Mapping, load_mapping
from tests.helpers import TODAY


@pytest.fixture(scope="session")
def mapping() -> Mapping:
    return load_mapping()


@pytest.fixture
def today() -> date:
    return TODAY
