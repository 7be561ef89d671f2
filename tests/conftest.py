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


# ---- state stores: SQLite, and PostgreSQL (tests/state_backends.py) ---------------------------

@pytest.fixture(scope="session")
def postgres_schema():
    """This test session's own PostgreSQL schema, dropped at the end."""
    from tests.state_backends import (  # noqa: PLC0415
        drop_schema,
        new_schema,
        postgres_unreachable,
        require_service,
    )

    require_service(postgres_unreachable(), "PostgreSQL")
    schema = new_schema()
    yield schema
    drop_schema(schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request) -> str:
    """Each test taking it runs once per state store backend."""
    return request.param


@pytest.fixture
def state_location(store_backend, tmp_path, request):
    """Where the test's state lives: a SQLite file, or its own tenant in PostgreSQL."""
    if store_backend == "sqlite":
        return tmp_path / "state.db"
    from tests.state_backends import postgres_location, tenant_for  # noqa: PLC0415

    return postgres_location(request.getfixturevalue("postgres_schema"),
                             tenant_for(request.node.name))
