"""crmsync settings: credentials, paths and API budgets, from the environment, `.env` or secrets.

Every setting is read from, in order of precedence: an environment variable `CRMSYNC_<NAME>`,
a line in the `.env` file, or a file named `CRMSYNC_<NAME>` in the secrets directory
(`CRMSYNC_SECRETS_DIR`, default `/run/secrets`, the Docker/Kubernetes convention).

Credentials are optional in the model because commands such as `mappings validate` need none;
each adapter asks for what it needs (`hubspot_credentials`, `salesforce_credentials`) and the
error then names the missing setting and every place we looked, as dlt does. Secrets are
`SecretStr`, so neither `repr` nor a log line ever shows them.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.exceptions import ConfigurationError, SettingsError, register_secret

__all__ = [
    "ENV_PREFIX",
    "HubSpotCredentials",
    "SalesforceCredentials",
    "Settings",
    "load_settings",
]

ENV_PREFIX = "CRMSYNC_"
DEFAULT_SECRETS_DIR = Path("/run/secrets")

SalesforceAuthKind = Literal["client_credentials", "jwt", "access_token", "password"]


@dataclass(frozen=True)
class HubSpotCredentials:
    """What the HubSpot adapter needs to connect: a private-app token and the API base URL."""

    access_token: SecretStr
    base_url: str


@dataclass(frozen=True)
class SalesforceCredentials:
    """One complete way to obtain a Salesforce session, chosen by `Settings.salesforce_credentials`.

    `can_refresh` is False only for a bare access token: when it expires we cannot get another.
    """

    kind: SalesforceAuthKind
    instance_url: str
    client_id: str | None = None
    client_secret: SecretStr | None = None
    username: str | None = None
    private_key_file: Path | None = None
    jwt_audience: str = "https://login.salesforce.com"
    access_token: SecretStr | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None

    @property
    def can_refresh(self) -> bool:
        return self.kind != "access_token"


class Settings(BaseSettings):
    """All crmsync settings; see the module docstring for where each one comes from."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    # HubSpot: a private-app access token.
    hubspot_access_token: SecretStr | None = None
    hubspot_base_url: str = "https://api.hubapi.com"

    # Salesforce: the first complete method wins, in this order (most to least recommended):
    # OAuth client credentials, JWT bearer, a plain access token, username + password.
    salesforce_instance_url: str | None = None
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_private_key_file: Path | None = None
    salesforce_jwt_audience: str = Field(
        default="https://login.salesforce.com",
        description="The JWT bearer assertion's `aud`: https://login.salesforce.com for a "
        "production or Developer Edition org, https://test.salesforce.com for a sandbox org "
        "(Salesforce Help, OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration). The "
        "wrong one fails at once with invalid_grant.",
    )
    salesforce_access_token: SecretStr | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_api_version: str = Field(
        default="59.0",
        description="REST API version. Username + password logins use SOAP login(), which "
        "remains available in API version 64.0 and earlier only, is disabled by default in "
        "orgs created in Winter '26 and later, and is retired in Summer '27 (SOAP API "
        "Developer Guide, login(); SOAP API End-of-Life Policy): with a password login, keep "
        "this below 65.0 and have an admin enable SOAP login() in new orgs, or better, move "
        "to client credentials or JWT.",
    )

    # TLS: a CA bundle to trust (the sandbox's); verification itself is never turned off.
    ca_bundle: Path | None = None

    state_path: Path = Path("crmsync.db")
    # Where the state lives, as a URL: a plain path or sqlite:///path (the embedded default,
    # one file per pair), or postgresql://user@host:port/database (one database for many
    # pairs; see connector/state/location.py). Wins over state_path when set.
    state_url: str | None = Field(
        default=None,
        description="The state store: a path, sqlite:///path, or "
        "postgresql://user@host:port/database[?schema=crmsync]. Overrides CRMSYNC_STATE_PATH.",
    )
    # The name this pair's rows carry in a shared (PostgreSQL) state store.
    tenant: str | None = Field(
        default=None,
        description="Tenant name in a shared PostgreSQL state store (default: the URL's "
        "tenant parameter, else 'default'). `--tenant NAME` sets it.",
    )
    mapping_path: Path | None = None

    # Budgets: stay under the servers' limits instead of bouncing off them.
    # HubSpot's 10-second limit is 100 (Free/Starter) or 190 (Pro/Enterprise), as
    # X-HubSpot-RateLimit-Max says; we use `hubspot_window_share` of it, leaving the rest to the
    # portal's other integrations. `hubspot_requests_per_10s` fixes the budget instead.
    # Durations must be finite: `inf` would pass `gt=0` and then hang or crash a socket call.
    hubspot_requests_per_10s: int | None = Field(default=None, ge=1)
    hubspot_window_share: float = Field(default=0.9, gt=0, le=1, allow_inf_nan=False)
    hubspot_window_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    hubspot_search_per_second: int = Field(default=5, ge=1)
    # Stop (exit 3, resumable) before the portal's / org's daily use reaches this share.
    hubspot_max_daily_share: float = Field(default=0.5, gt=0, le=1, allow_inf_nan=False)
    salesforce_max_daily_share: float = Field(default=0.5, gt=0, le=1, allow_inf_nan=False)
    # Salesforce writes. All records of one sObject Collections update run in one transaction
    # for the org's triggers and flows; heavy automation fails a whole collection on a
    # governor limit (then crmsync halves the size for the rest of the run, and warns).
    salesforce_write_batch_size: int = Field(
        default=200, ge=1, le=200,
        description="Records per Salesforce update request (1..200); lower it for orgs "
        "with heavy triggers or flows.",
    )
    # Alerting duplicate rules (the standard Lead and Contact rules are active in new orgs)
    # fail every update of a record that has a duplicate, unless the request says allowSave.
    # crmsync never creates records, so saving through the alert adds no duplicate.
    salesforce_allow_save_on_duplicates: bool = Field(
        default=True,
        description="Send `Sforce-Duplicate-Rule-Header: allowSave=true` on updates, so that "
        "alerting duplicate rules do not block updates of existing Leads and Contacts "
        "(DUPLICATES_DETECTED). Blocking rules still block.",
    )
    # Salesforce Bulk API 2.0 (README, "Large backfills"): an object with at least this many
    # records to write in one run goes through Bulk ingest jobs of at most `job_records`
    # records instead of sObject Collections of 200.
    salesforce_bulk_min_records: int = Field(
        default=2_000, ge=0,
        description="Records of one Salesforce object to write in a run from which crmsync "
        "uses Bulk API 2.0 instead of sObject Collections (0: never). A Bulk job costs about "
        "ten API calls whatever its size; collections cost one call per 200 records.",
    )
    salesforce_bulk_job_records: int = Field(
        default=50_000, ge=1, le=1_000_000,
        description="Records per Bulk API 2.0 job (each job's CSV must stay under 100 MB).",
    )
    salesforce_bulk_max_wait_seconds: float = Field(
        default=1_800.0, gt=0, allow_inf_nan=False,
        description="How long a run waits for a Bulk job to finish; past it the run stops "
        "(exit 3) and the next run collects the job's results instead of sending again.",
    )
    salesforce_bulk_poll_seconds: float = Field(
        default=30.0, gt=0, allow_inf_nan=False,
        description="The longest pause between two polls of a Bulk job's state (polls start "
        "at 1 s and double up to this).",
    )
    salesforce_bulk_query_min_records: int = Field(
        default=50_000, ge=0,
        description="Backfill reads of a Salesforce object holding at least this many records "
        "go through one Bulk API 2.0 query job instead of query batches of 2,000 (0: never).",
    )
    http_timeout_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    retry_max_attempts: int = Field(default=6, ge=1)
    retry_initial_wait_seconds: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    retry_max_wait_seconds: float = Field(default=60.0, ge=0, allow_inf_nan=False)

    # The engine (connector/sync.py). Neither CRM offers a conditional batch update, so a
    # record read longer ago than this is read again right before it is written.
    reread_older_than_seconds: float = Field(default=5.0, ge=0)
    # Search indexes lag behind writes: the sync watermark stays this far behind a run's start.
    hubspot_safety_lag_seconds: float = Field(default=600.0, ge=0)
    salesforce_safety_lag_seconds: float = Field(default=600.0, ge=0)
    # A run lock whose heartbeat is older than this is stale (the run died); beats come every
    # fifth of it.
    lock_stale_seconds: float = Field(default=900.0, gt=0)

    # The blast-radius guard (connector/sync/guards.py): a sync or backfill planning more than
    # this stops before writing (exit 2) unless run with --confirm-large. Normal incremental
    # runs write far less; a forgotten --mapping, a bulk import or a rule changed in a hurry
    # write to a large share of the CRM at once.
    max_records_written: int = Field(
        default=1000, ge=0,
        description="Most records a sync or backfill writes without --confirm-large. A "
        "first backfill (no run has yet planned and written everything) is exempt.",
    )
    max_share_written: float = Field(
        default=0.2, gt=0, le=1, allow_inf_nan=False,
        description="Most share of the mirrored records a sync or backfill writes without "
        "--confirm-large, counted only when it writes more than 100 records (in a small CRM a "
        "day's edits touch a large share). 1 turns the share limit off.",
    )
    max_downgrades: int = Field(
        default=20, ge=0,
        description="Most lifecycle stages a sync or backfill moves back (or off the ladder, "
        "to other or disqualified) without --confirm-large; first backfills too.",
    )

    _env_file: Path | None = PrivateAttr(default=None)
    _secrets_dir: Path | None = PrivateAttr(default=None)
    _environment: bool = PrivateAttr(default=True)

    @field_validator("hubspot_base_url", "salesforce_instance_url", "salesforce_jwt_audience")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        """Refuse any endpoint but https://host: the token, the client secret or the password
        would otherwise cross the network in plain text, before any server could refuse them.
        There is no exception for tests: the sandbox serves TLS with its own CA."""
        if not value:
            return value
        parts = urllib.parse.urlsplit(value)
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ValueError(
                "must be an https:// URL with a host name; crmsync never sends credentials "
                "over plain HTTP"
            )
        return value.rstrip("/")

    @field_validator("state_url")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        """A URL crmsync cannot use is refused when settings load, not at the first run."""
        if value:
            from connector.state.location import parse_location  # noqa: PLC0415

            try:
                parse_location(value)
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return value or None

    @field_validator("tenant")
    @classmethod
    def _plain_tenant(cls, value: str | None) -> str | None:
        if value:
            from connector.state.location import check_tenant_name  # noqa: PLC0415

            try:
                check_tenant_name(value)
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return value or None

    def state_location(self) -> str | Path:
        """The state store these settings name: CRMSYNC_STATE_URL, else CRMSYNC_STATE_PATH."""
        return self.state_url or self.state_path

    @classmethod
    def from_env_map(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from a map of `CRMSYNC_*` variables (a sandbox's `settings_env()`, the
        lines `crmsync sandbox serve --env-file` writes) and overrides by setting name.

        No `.env` file is read: the demo, the benchmarks and the tests point at a sandbox
        they started, and a stray `.env` must not point them elsewhere. Both the map and the
        overrides are validated, as settings from the environment are.
        """
        values: dict[str, Any] = {
            key.removeprefix(ENV_PREFIX).lower(): value for key, value in env.items()
        }
        values.update(overrides)
        return cls(_env_file=None, **values)  # type: ignore[call-arg]

    def model_post_init(self, context: Any, /) -> None:
        """Register every configured secret, so `scrub` removes it from any text even when a
        server quotes it back in an error message (pattern matching alone would miss that)."""
        super().model_post_init(context)
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                register_secret(value.get_secret_value())
        _register_private_key(self.salesforce_private_key_file)

    # --- what each adapter needs ------------------------------------------------------------

    def hubspot_credentials(self) -> HubSpotCredentials:
        """The HubSpot token and base URL, or a SettingsError saying where we looked."""
        if self.hubspot_access_token is None or not self.hubspot_access_token.get_secret_value():
            raise SettingsError(self._missing_message(["hubspot_access_token"], "HubSpot"))
        return HubSpotCredentials(self.hubspot_access_token, self.hubspot_base_url)

    def salesforce_credentials(self) -> SalesforceCredentials:
        """The first complete Salesforce login method, or an error listing what each one lacks."""
        methods: list[tuple[SalesforceAuthKind, list[str]]] = [
            ("client_credentials", ["salesforce_client_id", "salesforce_client_secret"]),
            (
                "jwt",
                ["salesforce_client_id", "salesforce_username", "salesforce_private_key_file"],
            ),
            ("access_token", ["salesforce_access_token"]),
            (
                "password",
                ["salesforce_username", "salesforce_password", "salesforce_security_token"],
            ),
        ]
        if not self.salesforce_instance_url:
            raise SettingsError(
                self._missing_message(["salesforce_instance_url"], "Salesforce")
                + "\n(the My Domain URL, e.g. https://acme.my.salesforce.com)"
            )
        for kind, names in methods:
            if all(self._is_set(name) for name in names):
                return self._salesforce_credentials_for(kind)
        lines = ["No complete Salesforce login method is configured. Set one of:"]
        for kind, names in methods:
            missing = [self.env_name(n) for n in names if not self._is_set(n)]
            lines.append(f"  {kind}: missing {', '.join(missing)}")
        lines.append(self._places_looked())
        raise SettingsError("\n".join(lines))

    def _salesforce_credentials_for(self, kind: SalesforceAuthKind) -> SalesforceCredentials:
        assert self.salesforce_instance_url is not None
        return SalesforceCredentials(
            kind=kind,
            instance_url=self.salesforce_instance_url,
            client_id=self.salesforce_client_id,
            client_secret=self.salesforce_client_secret,
            username=self.salesforce_username,
            private_key_file=self.salesforce_private_key_file,
            jwt_audience=self.salesforce_jwt_audience,
            access_token=self.salesforce_access_token,
            password=self.salesforce_password,
            security_token=self.salesforce_security_token,
        )

    def _is_set(self, name: str) -> bool:
        value = getattr(self, name)
        if isinstance(value, SecretStr):
            return bool(value.get_secret_value())
        return value is not None and value != ""

    # --- error text -------------------------------------------------------------------------

    @staticmethod
    def env_name(field_name: str) -> str:
        """The environment variable (and secrets file name) of a setting."""
        return ENV_PREFIX + field_name.upper()

    def _missing_message(self, names: list[str], system: str) -> str:
        settings = ", ".join(self.env_name(n) for n in names)
        return f"{system}: {settings} is not set.\n{self._places_looked()}"

    def _places_looked(self) -> str:
        """Every place a setting could have come from, in the order they are consulted."""
        env_file = self._env_file
        secrets = self._secrets_dir
        places = ["Looked in:", "  1. environment variables (CRMSYNC_...)" if self._environment
                  else "  1. environment variables: not used (a tenant's settings come from "
                       "its own files)"]
        if env_file is None:
            places.append("  2. .env file: not used")
        else:
            state = "found" if env_file.is_file() else "not found"
            places.append(f"  2. .env file {env_file.resolve()} ({state})")
        if secrets is None:
            places.append("  3. secrets directory: not used")
        else:
            state = "found" if secrets.is_dir() else "not found"
            places.append(f"  3. secrets directory {secrets.resolve()} ({state})")
        return "\n".join(places)


def _register_private_key(path: Path | None) -> None:
    """The JWT signing key's text is a secret too; unreadable here means the login will say so."""
    if path is None:
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    register_secret(text)
    for line in text.splitlines():  # a server or a log may quote one line of it
        if not line.startswith("-----"):
            register_secret(line.strip())


class _FileSettings(Settings):
    """Settings from files only: a tenant's env file or secrets directory, never the process
    environment. A worker serves many tenants; a token in its environment would otherwise
    become every tenant's token."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):  # type: ignore[override]
        return init_settings, dotenv_settings, file_secret_settings


def load_settings(
    env_file: Path | None = Path(".env"),
    secrets_dir: Path | None = None,
    *,
    require_env_file: bool = False,
    environment: bool = True,
) -> Settings:
    """Read settings from the environment, `env_file` and `secrets_dir`.

    `secrets_dir` defaults to `CRMSYNC_SECRETS_DIR` or `/run/secrets`; a directory that does not
    exist is skipped (and reported as such in error messages) rather than warned about. The
    default `.env` is optional, but a file someone named (`require_env_file`) must be readable:
    silently running without it would report every setting in it as missing.
    `environment=False` (a tenant's settings): neither the process environment nor a default
    secrets directory is read, only the files named.
    """
    if secrets_dir is None and environment:
        secrets_dir = Path(os.environ.get(ENV_PREFIX + "SECRETS_DIR", DEFAULT_SECRETS_DIR))
    if env_file is not None and require_env_file:
        _check_env_file(env_file)
    kwargs: dict[str, object] = {"_env_file": env_file}
    if secrets_dir is not None and secrets_dir.is_dir():
        kwargs["_secrets_dir"] = secrets_dir
    try:
        settings = (Settings if environment else _FileSettings)(**kwargs)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe_validation_error(exc, env_file, secrets_dir)) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(_not_utf8(_undecodable_file(env_file, secrets_dir), exc)) from None
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {env_file}: {exc.strerror}") from None
    settings._env_file = env_file
    settings._secrets_dir = secrets_dir
    settings._environment = environment
    return settings


def _undecodable_file(env_file: Path | None, secrets_dir: Path | None) -> str:
    """Which file held the bad bytes: pydantic-settings does not say."""
    if env_file is not None and env_file.is_file():
        try:
            env_file.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            return str(env_file)
    for path in (sorted(secrets_dir.glob(ENV_PREFIX + "*"))
                 if secrets_dir is not None and secrets_dir.is_dir() else ()):
        try:
            path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return str(path)
    return str(env_file)


def _not_utf8(file: str, exc: UnicodeDecodeError) -> str:
    """Where the first non-UTF-8 byte is, so an admin can find it (an `é` saved as Latin-1)."""
    line = exc.object[: exc.start].count(b"\n") + 1
    return (
        f"cannot read settings file {file}: byte 0x{exc.object[exc.start]:02x} at offset "
        f"{exc.start} (line {line}) is not UTF-8 (the file looks like Latin-1 or another legacy "
        "encoding); save it as UTF-8 and rerun"
    )


def _check_env_file(env_file: Path) -> None:
    if not env_file.exists():
        raise SettingsError(f"settings file {env_file} not found (given with --env-file)")
    if not env_file.is_file():
        raise SettingsError(f"settings file {env_file} is not a file (given with --env-file)")
    try:
        with env_file.open("rb"):
            pass
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {env_file}: {exc.strerror}") from None


def _describe_validation_error(
    exc: ValidationError, env_file: Path | None, secrets_dir: Path | None
) -> str:
    """One line per invalid setting, naming its variable; never echoes the value (may be secret)."""
    lines = ["Invalid settings:"]
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        lines.append(f"  {Settings.env_name(name)}: {error['msg']}")
    lines.append(
        "Read from environment variables"
        + (f", {env_file}" if env_file else "")
        + (f", {secrets_dir}" if secrets_dir else "")
        + "."
    )
    return "\n".join(lines)
