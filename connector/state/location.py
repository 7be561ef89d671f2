"""Where a state store lives: a SQLite file, or a tenant's rows in a PostgreSQL database.

`CRMSYNC_STATE_URL` (or `--state`) takes a plain path or `sqlite:///path` (today's embedded
store, one file per pair) or `postgresql://user@host:port/database` (one database for many
pairs). Two query parameters are crmsync's own and are not passed to PostgreSQL:
`schema` (default `crmsync`), the schema holding the tables, and `tenant`, the name every
row of this pair carries (else the tenant the command names, else `default`). A password in
the URL is a secret: it is scrubbed from every message, and `str()` shows it as `***`.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from connector.exceptions import ConfigurationError, register_secret

DEFAULT_SCHEMA = "crmsync"
DEFAULT_TENANT = "default"
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_POSTGRES = re.compile(r"^postgres(?:ql)?:/+", re.I)  # a Path collapses `//` to `/`


@dataclass(frozen=True)
class StateLocation:
    """A parsed state location. `path` for SQLite; `conninfo`, `schema`, `tenant` for
    PostgreSQL (`conninfo` is the URL without crmsync's own parameters)."""

    kind: str  # "sqlite" or "postgresql"
    path: Path | None = None
    conninfo: str | None = None
    schema: str = DEFAULT_SCHEMA
    tenant: str = DEFAULT_TENANT

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgresql"

    def __str__(self) -> str:
        if not self.is_postgres:
            return str(self.path)
        parts = urllib.parse.urlsplit(self.conninfo or "")
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        shown = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        return f"{shown} (schema {self.schema}, tenant {self.tenant})"


def check_tenant_name(name: str, what: str = "tenant name") -> str:
    """A tenant's name is a file name, a lock key and a column value: keep it plain."""
    if not TENANT_NAME.match(name):
        raise ConfigurationError(
            f"{what} {name!r} is not allowed: use 1-63 lower-case letters, digits, '-' or "
            "'_', starting with a letter or digit")
    return name


def is_postgres_url(value: str | Path) -> bool:
    return bool(_POSTGRES.match(str(value)))


def parse_location(value: str | Path, tenant: str | None = None) -> StateLocation:
    """`value` (a path or URL) as a StateLocation; `tenant` overrides the URL's own."""
    text = str(value)
    if text.lower().startswith("sqlite:"):
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db
        file = re.match(r"^sqlite:///(.+)$", text, re.I)
        if not file:
            raise ConfigurationError(f"state URL {text!r}: write sqlite:///relative/path.db or "
                                     "sqlite:////absolute/path.db")
        return StateLocation("sqlite", path=Path(file.group(1)))
    if not is_postgres_url(text):
        if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.I):
            raise ConfigurationError(
                f"state URL {text!r}: crmsync keeps state in SQLite (a path, or sqlite:///path) "
                "or PostgreSQL (postgresql://user@host:port/database)")
        return StateLocation("sqlite", path=Path(text))
    return _postgres_location(_POSTGRES.sub("postgresql://", text), tenant)


def _postgres_location(url: str, tenant: str | None) -> StateLocation:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    own = {key: value for key, value in query if key in ("schema", "tenant")}
    rest = urllib.parse.urlencode([(key, value) for key, value in query
                                   if key not in ("schema", "tenant")])
    if parts.password:
        register_secret(urllib.parse.unquote(parts.password))
        register_secret(parts.password)
    schema = own.get("schema") or DEFAULT_SCHEMA
    if not SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"state URL schema {schema!r} is not allowed: use 1-63 lower-case letters, digits "
            "or '_', starting with a letter or '_'")
    name = check_tenant_name(tenant or own.get("tenant") or DEFAULT_TENANT)
    conninfo = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    return StateLocation("postgresql", conninfo=conninfo, schema=schema, tenant=name)
