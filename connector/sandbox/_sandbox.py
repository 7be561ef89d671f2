"""`Sandbox`: the in-process handle on a running emulator (server, data, limits, faults)."""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from connector.sandbox._salesforce_login import load_jwt_public_key
from connector.sandbox._server import SandboxServer
from connector.sandbox._state import (
    SalesforceLogins,
    SalesforceWriteRules,
    SandboxLimits,
    SandboxState,
)
from connector.sandbox._tls import SandboxTls
from connector.sandbox.churn import Churn
from connector.sandbox.faults import FaultSpec, parse_faults
from connector.sandbox.generator import generate_dataset
from connector.sandbox.store import Dataset

__all__ = ["Sandbox"]

DEFAULT_SESSION_TTL_SECONDS = 7200.0
# HubSpot documents no page size for the v4 batch read; 500 is the most its v4 list of one
# record's associations returns per page (GET /crm/v4/objects/{type}/{id}/associations/{to},
# `limit` <= 500), and the batch read pages the same way.
DEFAULT_ASSOCIATION_PAGE_SIZE = 500
DEFAULT_CURSOR_IDLE_SECONDS = 15 * 60.0


class Sandbox:
    """A HubSpot + Salesforce emulator serving HTTPS on 127.0.0.1 until closed.

    Use it as a context manager (`with Sandbox(seed=200) as sb:`) or call `start()`/`close()`.

    Data: `seed=N` generates N organisations and about 3N persons deterministically (the seed is
    both the generator's random seed and the size, so `--seed 1000` means 1,000 organisations;
    pass `organisations=` to decouple them). `fixture=` loads an exact scenario instead (a path
    to a JSON file or a dict in the `dump()` format). Neither gives an empty sandbox.

    Time: `now` anchors generated dates and the server clock (which then runs forward in real
    time). Leave it out to use the wall clock, so that watermarks taken by a client line up with
    the modified dates the sandbox writes; pass it for byte-identical dumps.

    Limits (defaults follow HubSpot Free/Starter and a Salesforce Enterprise org):
    `hubspot_requests_per_window` per `hubspot_window_seconds` (shrink the window to time-scale a
    benchmark), `hubspot_daily_limit`, `search_requests_per_second`, `salesforce_daily_limit`,
    `session_ttl_seconds` (Salesforce access tokens expire after this),
    `cursor_idle_seconds` (a Salesforce query cursor unused this long is gone: 15 minutes),
    `salesforce_query_batch` (the most rows a query batch holds: 2,000; shrink it in tests so
    that small reads page through cursors).

    HubSpot consistency and paging: `search_lag_seconds` (default 0) keeps a record out of
    search results until that long after its last modification, as HubSpot's search index
    lags; list, read and batch read see it at once. `association_page_size` (default 500) is
    the most targets the v4 association batch read returns per input before paging.

    Salesforce logins: the connected app (`salesforce_client_id`/`_secret`, client credentials
    and, with `salesforce_refresh_token`, the refresh-token grant); one API user
    (`salesforce_username`, `salesforce_password`, `salesforce_security_token`: OAuth password
    grant and SOAP login()); and JWT bearer when `salesforce_jwt_certificate` (PEM text, bytes
    or a path: an X.509 certificate or a public key) is given, with `aud` =
    `salesforce_jwt_audience`. Every login signs in as that one user, so query cursors opened
    by any of them share the user's ten.

    HubSpot strictness: batch update refuses the whole batch with a 400 when one input fails
    validation, as HubSpot does; `hubspot_strict_batches=False` answers per input with a 207
    instead (only for tests that need that older behaviour). `hubspot_daily_used` is what
    the portal's other apps used today before the sandbox started (they share the daily
    limit). `hubspot_scopes` lists the private app's scopes (default: all); a call needing
    another answers 403 MISSING_SCOPES. `remove_hubspot_option` / `remove_hubspot_property`
    make the portal lack what a mapping expects; `retype_hubspot_property` gives a property
    another type than the mapping expects.

    Salesforce org configuration that updates meet (strict by default):
    `salesforce_duplicate_rule` (default True) keeps the standard Lead and Contact duplicate
    rules active, as in new orgs: updating a Lead or Contact that shares its e-mail (any case)
    with another live Lead or Contact answers DUPLICATES_DETECTED per record unless the request
    sends `Sforce-Duplicate-Rule-Header: allowSave=true`. `salesforce_automation_max_batch`
    (default None, off) emulates triggers and flows heavy enough that a collection of more
    records than this exceeds a governor limit: every record of it fails
    CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY and nothing is written.

    Bulk API 2.0 (salesforce_bulk.py): jobs run in worker threads, as a real org's queue runs
    them while clients poll; `set_bulk_processing` delays, slows or stalls them, and
    `salesforce_bulk_daily_records` is the records a day ingest jobs may process.
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        organisations: int | None = None,
        fixture: str | Path | dict[str, Any] | None = None,
        faults: str | FaultSpec | None = None,
        now: datetime | None = None,
        port: int = 0,
        hubspot_requests_per_window: int = 100,
        hubspot_window_seconds: float = 10.0,
        hubspot_daily_limit: int = 250_000,
        search_requests_per_second: int = 5,
        salesforce_daily_limit: int = 100_000,
        session_ttl_seconds: float = DEFAULT_SESSION_TTL_SECONDS,
        search_lag_seconds: float = 0.0,
        association_page_size: int = DEFAULT_ASSOCIATION_PAGE_SIZE,
        cursor_idle_seconds: float = DEFAULT_CURSOR_IDLE_SECONDS,
        salesforce_query_batch: int = 2_000,
        salesforce_jwt_certificate: str | bytes | Path | None = None,
        hubspot_daily_used: int = 0,
        hubspot_strict_batches: bool = True,
        hubspot_scopes: Iterable[str] | None = None,
        salesforce_duplicate_rule: bool = True,
        salesforce_automation_max_batch: int | None = None,
        salesforce_bulk_daily_records: int = 150_000_000,
    ) -> None:
        if seed is not None and fixture is not None:
            raise ValueError("give either seed or fixture, not both")
        anchor = (now or datetime.now(UTC)).astimezone(UTC)
        dataset = _initial_dataset(seed, organisations, fixture, anchor)
        self._workdir = tempfile.TemporaryDirectory(prefix="crmsync-sandbox-")
        self._tls = SandboxTls.create(Path(self._workdir.name))
        self.hubspot_access_token = "pat-na1-" + secrets.token_hex(16)
        self.salesforce_client_id = "3MVG9sandbox" + secrets.token_hex(12)
        self.salesforce_client_secret = secrets.token_hex(24)
        logins = SalesforceLogins(
            password="Pw-" + secrets.token_hex(8),
            security_token=secrets.token_hex(12),
            refresh_token="5Aep861sandbox" + secrets.token_hex(20),
            jwt_public_key=_jwt_key(salesforce_jwt_certificate),
        )
        self.salesforce_username = logins.username
        self.salesforce_password = logins.password
        self.salesforce_security_token = logins.security_token
        self.salesforce_refresh_token = logins.refresh_token
        self.salesforce_jwt_audience = logins.jwt_audience
        self._state = SandboxState(
            dataset=dataset,
            hubspot_access_token=self.hubspot_access_token,
            salesforce_client_id=self.salesforce_client_id,
            salesforce_client_secret=self.salesforce_client_secret,
            limits=SandboxLimits(
                hubspot_requests_per_window=hubspot_requests_per_window,
                hubspot_window_seconds=hubspot_window_seconds,
                hubspot_daily_limit=hubspot_daily_limit,
                hubspot_daily_used=hubspot_daily_used,
                search_requests_per_second=search_requests_per_second,
                salesforce_daily_limit=salesforce_daily_limit,
                session_ttl_seconds=session_ttl_seconds,
                search_lag_seconds=search_lag_seconds,
                association_page_size=association_page_size,
                cursor_idle_seconds=cursor_idle_seconds,
                salesforce_query_batch=salesforce_query_batch,
                salesforce_bulk_daily_records=salesforce_bulk_daily_records,
            ),
            faults=_as_fault_spec(faults),
            salesforce_logins=logins,
            hubspot_scopes=None if hubspot_scopes is None else frozenset(hubspot_scopes),
            hubspot_strict_batches=hubspot_strict_batches,
            salesforce_writes=SalesforceWriteRules(
                duplicate_rule=salesforce_duplicate_rule,
                automation_max_batch=salesforce_automation_max_batch,
            ),
        )
        try:
            self._server = SandboxServer(self._state, self._tls.server_context(), port=port)
        except OSError:
            self._workdir.cleanup()
            raise

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Start serving in a background thread; returns self."""
        self._server.start()
        return self

    def close(self) -> None:
        """Stop serving, drop open connections and delete the certificate files."""
        self._server.stop()
        self._workdir.cleanup()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- connection settings ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port both APIs are served on."""
        return self._server.port

    @property
    def base_url(self) -> str:
        """`https://127.0.0.1:PORT`, the root of both APIs and of the admin endpoints."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def hubspot_base_url(self) -> str:
        """Pass as `HubSpot(host=...)`; the SDK appends `/crm/v3/...` itself."""
        return self.base_url

    @property
    def salesforce_instance_url(self) -> str:
        """Pass as `Salesforce(instance_url=...)`; also hosts `/services/oauth2/token`."""
        return self.base_url

    @property
    def salesforce_token_url(self) -> str:
        """The OAuth 2.0 token endpoint (client credentials, JWT bearer, refresh token and
        password grants)."""
        return self.base_url + "/services/oauth2/token"

    @property
    def cursor_idle_seconds(self) -> float:
        """How long an unused Salesforce query cursor lives (INVALID_QUERY_LOCATOR after)."""
        return self._state.limits.cursor_idle_seconds

    @property
    def ca_path(self) -> str:
        """Path of the PEM file of the CA that signed the server certificate: verify with it."""
        return str(self._tls.ca_path)

    def settings_env(self) -> dict[str, str]:
        """The `CRMSYNC_*` settings that point crmsync at this sandbox (contains secrets)."""
        return {
            "CRMSYNC_HUBSPOT_ACCESS_TOKEN": self.hubspot_access_token,
            "CRMSYNC_HUBSPOT_BASE_URL": self.hubspot_base_url,
            "CRMSYNC_SALESFORCE_INSTANCE_URL": self.salesforce_instance_url,
            "CRMSYNC_SALESFORCE_CLIENT_ID": self.salesforce_client_id,
            "CRMSYNC_SALESFORCE_CLIENT_SECRET": self.salesforce_client_secret,
            "CRMSYNC_CA_BUNDLE": self.ca_path,
        }

    def salesforce_token(self, session: Any = None) -> str:
        """Fetch a fresh Salesforce access token over HTTPS, as a client-credentials client would.

        A convenience for tests: simple-salesforce's own OAuth login only knows
        `*.salesforce.com` hosts, so callers post to `salesforce_token_url` themselves.
        """
        import requests  # noqa: PLC0415 - only this helper needs it

        http = session or requests.Session()
        if session is None:
            http.verify = self.ca_path
            http.trust_env = False
        response = http.post(
            self.salesforce_token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.salesforce_client_id,
                "client_secret": self.salesforce_client_secret,
            },
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    # ---- run-time control ------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """A snapshot: requests, HTTP statuses, records returned/written and faults per endpoint.

        Keys: `requests`, `statuses`, `records_returned`, `records_written`, `faults` (each a
        dict keyed by endpoint name such as `hubspot.search` or `salesforce.query`; statuses
        are `{"200": n, ...}`, with "0" for dropped connections) and `total_requests`.
        Admin requests are not counted. Also served at `GET /__sandbox/counters`.
        """
        return self._state.counters.snapshot()

    def reset_counters(self) -> None:
        """Zero every counter (rate-limit usage is kept; see `reset_limits`)."""
        self._state.counters.reset()

    def reset_limits(self) -> None:
        """Forget rate-limit and daily usage, as if a new day started."""
        self._state.reset_limits()

    def set_faults(self, spec: str | FaultSpec | None) -> None:
        """Replace the fault injection at run time; `None` or "" turns it off."""
        self._state.set_faults(_as_fault_spec(spec))

    def before_request(self, endpoint: str, nth: int, action: Callable[[], None]) -> None:
        """Run `action` (e.g. an edit through `update_hubspot`) just before the `nth` request
        from now to `endpoint` (a name from `faults.ENDPOINTS`) is served."""
        self._state.before_request(endpoint, nth, action)

    def after_request(self, endpoint: str, nth: int, action: Callable[[], None]) -> None:
        """Run `action` after the `nth` request from now to `endpoint` is served (a write is
        made) and before its answer leaves: e.g. kill the client that sent it."""
        self._state.after_request(endpoint, nth, action)

    def drop_caches(self) -> None:
        """Forget cached search results, as a write does. Benchmarks call it before timing a
        replay, so the replay meets the server as cold as the run it is compared with."""
        for object_type in self._state.dataset.hubspot:
            self._state.dataset.touch(object_type)

    def set_salesforce_write_rules(
        self, *, duplicate_rule: bool | None = None, automation_max_batch: int | None = -1
    ) -> None:
        """Change the org's duplicate rule or automation limit at run time (see the class
        docstring); an argument left out keeps its value, `automation_max_batch=None` turns
        the automation limit off."""
        current = self._state.salesforce_writes
        self._state.salesforce_writes = SalesforceWriteRules(
            duplicate_rule=current.duplicate_rule if duplicate_rule is None else duplicate_rule,
            automation_max_batch=(current.automation_max_batch if automation_max_batch == -1
                                  else automation_max_batch),
        )

    def set_bulk_processing(
        self, *, paused: bool | None = None, queue_seconds: float | None = None,
        chunk_seconds: float | None = None,
    ) -> None:
        """How the Bulk API 2.0 queue runs: `paused=True` holds every job where it is (a
        stalled job; False lets them go on), `queue_seconds` is how long a job waits in
        UploadComplete before it is taken, `chunk_seconds` the least time each chunk of 200
        records takes. An argument left out keeps its value."""
        control = self._state.salesforce_bulk
        if queue_seconds is not None:
            control.queue_seconds = queue_seconds
        if chunk_seconds is not None:
            control.chunk_seconds = chunk_seconds
        if paused is True:
            control.pause()
        elif paused is False:
            control.resume()

    def expire_salesforce_sessions(self) -> None:
        """Invalidate every Salesforce token: the next call answers 401 INVALID_SESSION_ID."""
        self._state.expire_sessions()

    # ---- data ------------------------------------------------------------------------------

    def hubspot_record(self, object_type: str, record_id: str) -> dict[str, Any]:
        """One HubSpot record as stored: `{"id", "properties", "archived"}`; KeyError if absent."""
        return self._state.dataset.hubspot_record(object_type, str(record_id))

    def hubspot_records(self, object_type: str) -> list[dict[str, Any]]:
        """Every HubSpot record of `object_type` (contacts, companies, deals), by id."""
        return self._state.dataset.hubspot_records(object_type)

    def hubspot_associations(self, from_type: str, to_type: str, record_id: str) -> list[str]:
        """Ids of the `to_type` records associated with one `from_type` record."""
        return self._state.dataset.associated_ids(from_type, to_type, str(record_id))

    def salesforce_record(self, sobject: str, record_id: str) -> dict[str, Any]:
        """One Salesforce record as stored (all fields); accepts 15- or 18-character ids."""
        return self._state.dataset.salesforce_record(sobject, record_id)

    def salesforce_records(self, sobject: str) -> list[dict[str, Any]]:
        """Every Salesforce record of `sobject` (Lead, Contact, Account, Opportunity), by Id."""
        return self._state.dataset.salesforce_records(sobject)

    def update_hubspot(
        self, object_type: str, record_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        """Change a record as a user in the HubSpot UI would: no validation, no lifecycle rule,
        modified date bumped. Returns the stored record."""
        return self._state.user_update_hubspot(object_type, str(record_id), properties)

    def update_salesforce(
        self, sobject: str, record_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Change a record as a Salesforce user would (LastModifiedDate and SystemModstamp
        bumped, no validation). Returns the stored record."""
        return self._state.user_update_salesforce(sobject, record_id, fields)

    def create_hubspot(
        self,
        object_type: str,
        properties: dict[str, Any],
        associations: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:
        """Create a HubSpot record (id assigned); `associations` maps object type -> ids."""
        return self._state.user_create_hubspot(object_type, properties, associations or {})

    def delete_hubspot(self, object_type: str, record_id: str) -> dict[str, Any]:
        """Archive (delete) a record as a HubSpot user would: it leaves list, search, read
        and batch read and its associations go; `GET /crm/v3/objects/{type}?archived=true`
        lists it with `archived: true` and `archivedAt` (now). Returns the stored record."""
        data = self._state.dataset
        with data.lock:
            data.archive_hubspot(object_type, str(record_id), data.clock.now())
            return data.hubspot_record(object_type, str(record_id))

    def merge_hubspot(self, object_type: str, survivor_id: str, loser_id: str) -> dict[str, Any]:
        """Merge `loser_id` into `survivor_id`, as `POST /crm/v3/objects/{type}/merge` does:
        the loser is gone everywhere (not even archived-listed), its associations move to the
        survivor, the survivor's `hs_merged_object_ids` gains the loser's id (and ids merged
        into the loser before) and its modified date moves to now. Returns the survivor."""
        data = self._state.dataset
        with data.lock:
            data.merge_hubspot(object_type, str(survivor_id), str(loser_id), data.clock.now())
            return data.hubspot_record(object_type, str(survivor_id))

    def remove_hubspot_option(self, object_type: str, name: str, value: str) -> None:
        """Delete an option from an enumeration property, as an admin editing the property
        would: the properties API stops listing it and writes of that value are refused."""
        self._state.hubspot_portal.remove_option(object_type, name, value)

    def retype_hubspot_property(
        self, object_type: str, name: str, type_: str, field_type: str
    ) -> None:
        """Make a property another type (e.g. a date created as `datetime`, a checkbox as a
        text field), as an admin may have created it: the properties API reports the new
        type and writes are validated against it. HubSpot's property types and field types:
        https://developers.hubspot.com/docs/api/crm/properties ("Property type and fieldType
        values")."""
        self._state.hubspot_portal.retype_property(object_type, name, type_, field_type)

    def remove_hubspot_property(self, object_type: str, name: str) -> None:
        """Delete a property from the portal: the properties API answers 404 for it and writes
        naming it are refused (PROPERTY_DOESNT_EXIST)."""
        self._state.hubspot_portal.remove_property(object_type, name)

    def associate_hubspot(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Associate two records as a user would (e.g. a contact added to a deal). The deal's
        `num_associated_contacts` is recalculated, which moves its modified date, so an
        incremental read sees the change (verify on a live portal: design.md lists it)."""
        data = self._state.dataset
        with data.lock:
            data.associate(from_type, str(from_id), to_type, str(to_id))
            for object_type, record_id in ((from_type, from_id), (to_type, to_id)):
                if object_type == "deals":
                    record = data.hubspot[object_type][str(record_id)]
                    data.bump_hubspot(object_type, record, data.clock.now())

    def churn(self, rate: float, *, seed: int = 0) -> Churn:
        """A background writer changing this sandbox's records at `rate` per second (see
        `connector.sandbox.churn`); use as `with sandbox.churn(20):`."""
        return Churn(self, rate, seed=seed)

    def create_salesforce(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a Salesforce record (Id and timestamps assigned)."""
        return self._state.user_create_salesforce(sobject, fields)

    def delete_salesforce(self, sobject: str, record_id: str) -> dict[str, Any]:
        """Delete a record as a user would (to the recycle bin): IsDeleted = true and
        SystemModstamp moves to now; gone from query and from later batches of open cursors,
        still seen by queryAll and sObject Get Deleted. Returns the stored record; KeyError if
        it is absent or already deleted."""
        return self._state.user_delete_salesforce(sobject, record_id)

    def merge_salesforce(self, sobject: str, master_id: str, loser_id: str) -> dict[str, Any]:
        """Merge two Leads, Contacts or Accounts as Salesforce does: the loser is deleted
        with MasterRecordId = master; Contacts and Opportunities that pointed at a merged
        Account (Opportunities at a merged Contact) move to the master, each an update; the
        master's SystemModstamp moves. Returns the master; KeyError if either is absent or
        deleted, ValueError for other objects or a record merged into itself."""
        return self._state.user_merge_salesforce(sobject, master_id, loser_id)

    def dump(self) -> dict[str, Any]:
        """Every record and association as a JSON-ready dict, loadable as `fixture=`."""
        return self._state.dataset.dump()

    def dump_to(self, path: str | Path) -> Path:
        """Write `dump()` to a JSON file; returns the path."""
        target = Path(path)
        target.write_text(json.dumps(self.dump(), indent=1, sort_keys=True), encoding="utf-8")
        return target


def _jwt_key(certificate: str | bytes | Path | None) -> Any:
    if certificate is None:
        return None
    if isinstance(certificate, Path):
        certificate = certificate.read_bytes()
    return load_jwt_public_key(certificate)


def _as_fault_spec(spec: str | FaultSpec | None) -> FaultSpec | None:
    if spec is None or isinstance(spec, FaultSpec):
        return spec
    return parse_faults(spec) if spec.strip() else None


def _initial_dataset(
    seed: int | None,
    organisations: int | None,
    fixture: str | Path | dict[str, Any] | None,
    now: datetime,
) -> Dataset:
    if fixture is not None:
        raw = fixture if isinstance(fixture, dict) else json.loads(Path(fixture).read_text("utf-8"))
        return Dataset.load(raw, now=now)
    if seed is not None:
        size = organisations if organisations is not None else seed
        return generate_dataset(seed=seed, organisations=size, now=now)
    return Dataset(now=now)
