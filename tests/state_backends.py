"""The state stores the tests run against: SQLite, and PostgreSQL when it can be reached.

Tests that exercise the store take the fixture `state_location` (tests/conftest.py): a SQLite
file in tmp_path, or a PostgreSQL URL naming this test run's own schema and a tenant of the
test's own, so parallel workers (`-n 2`) and other test runs never see each other's rows.
The schema is dropped when the session ends.

Without PostgreSQL (a laptop with neither the server nor Docker) those tests skip, with the
reason in pytest's summary; with `CI=true` they fail instead, so CI always runs them.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from functools import cache

import pytest

POSTGRES_URL = os.environ.get("CRMSYNC_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")
_tenants = itertools.count(1)


@cache
def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can."""
    try:
        import psycopg  # noqa: PLC0415
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES_URL} is unreachable ({' '.join(str(exc).split())})"
    return None


def require_service(reason: str | None, what: str) -> None:
    """Skip (or, under CI=true, fail) when a service a test needs is missing."""
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required in CI: {reason}", pytrace=False)
    pytest.skip(f"{what} not available: {reason}")


def new_schema() -> str:
    return f"crmsync_test_{uuid.uuid4().hex[:12]}"


def drop_schema(schema: str) -> None:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def tenant_for(test_name: str) -> str:
    """A tenant name of the test's own (unique within the session's schema)."""
    plain = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40] or "t"
    return f"{plain}-{next(_tenants)}"


def postgres_location(schema: str, tenant: str) -> str:
    joint = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{joint}schema={schema}&tenant={tenant}"


def copy_tenant(location: str, suffix: str = "copy") -> str:
    """A copy of a PostgreSQL tenant's rows under a new tenant; its location. (As a superuser,
    whom row-level security does not confine: the test's own tooling, not crmsync's.)"""
    import urllib.parse  # noqa: PLC0415

    import psycopg  # noqa: PLC0415
    from psycopg import sql  # noqa: PLC0415

    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    schema, source = query["schema"], query["tenant"]
    target = f"{source[:50]}-{suffix}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection, connection.transaction():
        tables = connection.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = %s "
            "AND column_name = 'tenant'", (schema,)).fetchall()
        for (table,) in tables:
            columns = [row[0] for row in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s AND column_name != 'tenant' ORDER BY ordinal_position",
                (schema, table))]
            names = sql.SQL(", ").join(map(sql.Identifier, columns))
            connection.execute(sql.SQL(
                "INSERT INTO {schema}.{table} (tenant, {names}) SELECT %s, {names} "
                "FROM {schema}.{table} WHERE tenant = %s").format(
                    schema=sql.Identifier(schema), table=sql.Identifier(table), names=names),
                (target, source))
    return postgres_location(schema, target)
