"""Salesforce adapter over simple-salesforce 1.12: Lead, Contact, Account, Opportunity as dicts.

Records are what simple-salesforce returns (field names at top level plus `attributes`).

Choices the design notes force (../shared/design.md):
- We obtain tokens ourselves (OAuth client credentials or JWT bearer against
  `{instance}/services/oauth2/token`): simple-salesforce's OAuth login only knows
  `*.salesforce.com` hosts. Username + password goes through its SOAP login, as a last resort.
- A `requests.Session` we own: a default timeout on every request (the SDK has none), our CA
  bundle (with `trust_env` off, else REQUESTS_CA_BUNDLE silently overrides it), and a response
  hook that reads Sforce-Limit-Info and Retry-After from every answer, errors included (the
  SDK's exceptions keep no headers and `api_usage` only updates on success).
- `object_pairs_hook=dict`: plain dicts parse ~25% faster than the default OrderedDict.
- Incremental reads order by `SystemModstamp, Id` and de-duplicate by Id over the whole read.
  A query cursor fixes the Ids and their order when the query runs, but each batch's values
  are read when it is fetched, so a record edited mid-read comes back in its old place with a
  newer stamp: never drop a row for its stamp, and report as `max_modified` only the stamp up
  to which the read is complete (see `_ReadProgress`).
- Cursors are released (ten per user, the oldest goes) and expire (15 minutes idle): every read
  resumes after INVALID_QUERY_LOCATOR, from the last complete stamp (incremental) or the last
  Id (backfill, ordered by Id).
- A 200 that is no complete query answer (no `records`/`done`, or `done: false` without
  `nextRecordsUrl`) is retried like a 503, never taken for the end of a read.
- Deletions and merges come from queryAll (`IsDeleted = true`; merge losers carry
  `MasterRecordId`).
- Reads use SOQL query batches (ceil(N/2000) calls). Writes of many records of one object go
  through Bulk API 2.0 ingest jobs instead of collections (salesforce_bulk.py, `self.bulk`):
  the engine decides per object and run (`SalesforceBulk.worth_it`).
- Updates carry `Sforce-Duplicate-Rule-Header: allowSave=true` (setting
  `salesforce_allow_save_on_duplicates`): the standard Lead and Contact duplicate rules alert
  on every save of a record with a duplicate, updates included, and crmsync only keeps
  existing records current, so it never creates the duplicate the rule warns about.
- Collections hold `salesforce_write_batch_size` records (at most 200). All records of a
  collection share one transaction for triggers and flows; when the org's automation fails
  the whole chunk on a governor limit, the chunk is sent again at half the size, and that
  size holds for the rest of the run.
- A field the org does not have, or hides from the integration user, fails the whole
  request (400 INVALID_FIELD): the write stops with a ConfigurationError rather than
  bisecting a batch that cannot succeed in any split.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from connector.catalog import CATALOG
from connector.exceptions import (
    ApiError,
    AuthenticationError,
    BudgetExhausted,
    ConfigurationError,
    CredentialsRejected,
    FatalApiError,
    RateLimitedError,
    RetriableApiError,
    register_secret,
    scrub,
)
from connector.settings import SalesforceCredentials
from connector.systems._writes import send_or_split, write_records
from connector.systems.base import (
    ApiUsage,
    FieldInfo,
    Page,
    RecordUpdate,
    Tombstone,
    WriteResult,
    as_utc,
    parse_timestamp,
)
from connector.systems.resilience import (
    DailyAllocation,
    RetryPolicy,
    UsageMeter,
    guarded_call,
    parse_retry_after,
    transport_error,
)
from connector.systems.salesforce_bulk import BulkOptions, SalesforceBulk

__all__ = [
    "SalesforceAdapter",
    "classify_salesforce_error",
    "soql_in_chunks",
    "soql_literal",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEM = "salesforce"
_CATALOG = CATALOG[SYSTEM]
OBJECT_TYPES = tuple(_CATALOG.objects)
MODIFIED_FIELD = _CATALOG.modified_time_fields[0]  # every object's cursor: SystemModstamp
# Fields linking needs, requested whatever the mapping names.
LINK_FIELDS: dict[str, tuple[str, ...]] = {
    name: spec.link_fields for name, spec in _CATALOG.objects.items()
}
QUERY_BATCH_SIZE = 2_000
QUERY_HEADERS = {"Sforce-Query-Options": f"batchSize={QUERY_BATCH_SIZE}"}
COLLECTION_SIZE = 200  # the most sObject Collections accepts in one request
# REST API Developer Guide, "Duplicate Rule Header" (API 52.0+): "The default value for all
# fields is false. allowSave: false—don't allow the user to acknowledge the alert or save the
# duplicate record. Applicable if an alert is enabled for the action."
DUPLICATE_RULE_HEADER = {"Sforce-Duplicate-Rule-Header": "allowSave=true"}
# What every record of a collection answers when the org's triggers or flows hit a governor
# limit: the message carries the uncatchable System.LimitException.
GOVERNOR_FAILURE_CODE = "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
GOVERNOR_FAILURE_MARK = "LimitException"
# A query travels in the URL of a GET; stay well under the ~16 KB URI limit once encoded.
MAX_ENCODED_SOQL = 15_000
RETRIABLE_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG", "QUERY_TIMEOUT"}
)
INVALID_QUERY_LOCATOR = "INVALID_QUERY_LOCATOR"
# Resumed queries in a row that bring no new record before a read gives up.
MAX_STALLED_RESUMES = 3
# Objects Salesforce merges; only they have MasterRecordId (Opportunity has none).
MERGEABLE_OBJECTS = frozenset({"Lead", "Contact", "Account"})
TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request a timeout, including the ones the SDK sends without one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _http_session(ca_bundle: str | None, timeout: float) -> requests.Session:
    session = requests.Session()
    if ca_bundle:
        session.verify = ca_bundle
        session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override `verify`
    adapter = _TimeoutAdapter(timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _TokenSource:
    """Gets an access token with whatever credentials we were given; knows if it can again."""

    def __init__(
        self, credentials: SalesforceCredentials, http: requests.Session, api_version: str
    ) -> None:
        self.credentials = credentials
        self._http = http
        self._api_version = api_version

    def __repr__(self) -> str:
        return f"_TokenSource(kind={self.credentials.kind!r})"

    @property
    def can_refresh(self) -> bool:
        return self.credentials.can_refresh

    def fetch(self) -> tuple[str, str]:
        """(access token, instance URL). Every session token issued is registered for
        scrubbing: a server may quote it back in an error message that we log or store."""
        token, instance_url = self._fetch()
        register_secret(token)
        return token, instance_url

    def _fetch(self) -> tuple[str, str]:
        creds = self.credentials
        if creds.kind == "access_token":
            assert creds.access_token is not None
            return creds.access_token.get_secret_value(), creds.instance_url
        if creds.kind == "password":
            return self._password_login()
        if creds.kind == "client_credentials":
            assert creds.client_secret is not None
            form = {
                "grant_type": "client_credentials",
                "client_id": creds.client_id or "",
                "client_secret": creds.client_secret.get_secret_value(),
            }
        else:
            form = {"grant_type": JWT_GRANT, "assertion": self._jwt_assertion()}
        return self._post_token(form)

    def _post_token(self, form: dict[str, str]) -> tuple[str, str]:
        url = self.credentials.instance_url + TOKEN_PATH
        try:
            response = self._http.post(url, data=form)
        except requests.RequestException as error:
            raise transport_error(SYSTEM, "token", error) from None
        secrets = [v for k, v in form.items() if k in {"client_secret", "assertion"}]
        if response.status_code >= 500 or response.status_code == 429:
            raise RetriableApiError(
                scrub(response.text[:300], *secrets),
                system=SYSTEM,
                operation="token",
                status=response.status_code,
            )
        if response.status_code != 200:
            # Only the server's words are scrubbed with the form's secrets: a short or plain
            # wrong secret ("cred") must not blank our own words ("client_credentials").
            detail = scrub(_token_error(response), *secrets)
            raise CredentialsRejected(
                f"{self.credentials.kind} login refused: {detail}"
                + _fix_for(self.credentials.kind),
                system=SYSTEM,
                operation="token",
                status=response.status_code,
                code=detail.split(":")[0] or None,
            )
        try:
            payload = response.json()
            token = payload["access_token"]
        except (ValueError, KeyError, TypeError):  # a 200 cut short, or a proxy's page
            raise RetriableApiError(
                "the token endpoint answered 200 without an access token (a garbled or cut-off "
                "answer)", system=SYSTEM, operation="token", status=response.status_code,
            ) from None
        return token, payload.get("instance_url") or self.credentials.instance_url

    def _jwt_assertion(self) -> str:
        import jwt  # noqa: PLC0415 - PyJWT only for the JWT bearer flow

        creds = self.credentials
        assert creds.private_key_file is not None
        key = creds.private_key_file.read_text(encoding="utf-8")
        claims = {
            "iss": creds.client_id,
            "sub": creds.username,
            "aud": creds.jwt_audience,
            "exp": int(time.time()) + 180,
        }
        return jwt.encode(claims, key, algorithm="RS256")

    def _password_login(self) -> tuple[str, str]:
        """SOAP login() at the instance (My Domain) URL, as simple-salesforce sends it.

        Last resort: login() "remains available in API version 64.0 and earlier" and is
        disabled by default in orgs created in Winter '26 and later (SOAP API Developer Guide,
        login()). `scratch_url` makes the SDK post to `{instance_url}/services/Soap/u/{v}`
        rather than build `https://{domain}.salesforce.com`, which is the same place for a
        My Domain URL and the only one for any other host.
        """
        from simple_salesforce import SalesforceLogin  # noqa: PLC0415 - last-resort path
        from simple_salesforce.exceptions import SalesforceAuthenticationFailed  # noqa: PLC0415

        creds = self.credentials
        assert creds.password is not None and creds.security_token is not None
        secrets = (creds.password.get_secret_value(), creds.security_token.get_secret_value())
        try:
            session_id, instance = SalesforceLogin(
                username=creds.username,
                password=secrets[0],
                security_token=secrets[1],
                scratch_url=creds.instance_url.rstrip("/"),
                session=self._http,
                sf_version=self._api_version,
            )
        except SalesforceAuthenticationFailed as error:
            code = str(getattr(error, "code", "") or "")
            if code.isdigit() and (int(code) >= 500 or int(code) == 429):
                raise RetriableApiError(f"password login: HTTP {code}", system=SYSTEM,
                                        operation="token", status=int(code)) from None
            message = scrub(str(getattr(error, "message", "")), *secrets)
            raise CredentialsRejected(
                f"password login refused: {code}: {message}" + _fix_for("password"),
                system=SYSTEM, operation="token", code=code or None,
            ) from None
        except requests.RequestException as error:
            raise transport_error(SYSTEM, "token", error) from None
        return session_id, f"https://{instance}"


class SalesforceAdapter:
    """CrmAdapter for Salesforce; see the module docstring for the choices it makes."""

    system = SYSTEM

    def __init__(
        self,
        credentials: SalesforceCredentials,
        *,
        api_version: str = "59.0",
        ca_bundle: str | None = None,
        timeout_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
        max_daily_share: float = 0.5,
        write_batch_size: int = COLLECTION_SIZE,
        allow_save_on_duplicates: bool = True,
        bulk: BulkOptions | None = None,
    ) -> None:
        if not 1 <= write_batch_size <= COLLECTION_SIZE:
            raise ValueError(f"write_batch_size must be 1..{COLLECTION_SIZE}")
        self.instance_url = credentials.instance_url.rstrip("/")
        self.api_version = api_version
        self._timeout = timeout_seconds
        self._http = _http_session(ca_bundle, timeout_seconds)
        self._http.hooks["response"].append(self._on_response)
        self._tokens = _TokenSource(credentials, self._http, api_version)
        self._retry = retry or RetryPolicy()
        self._daily = DailyAllocation(max_daily_share)
        self._meter = UsageMeter(SYSTEM, self._retry, self._daily)
        self._sf: Salesforce | None = None
        self._last_retry_after: float | None = None
        self._collection_size = write_batch_size
        self._write_headers = dict(DUPLICATE_RULE_HEADER) if allow_save_on_duplicates else {}
        self.bulk = SalesforceBulk(self, bulk or BulkOptions())

    def __repr__(self) -> str:
        return (
            f"SalesforceAdapter(instance_url={self.instance_url!r}, "
            f"auth={self._tokens.credentials.kind!r})"
        )

    # --- usage ------------------------------------------------------------------------------

    @property
    def api_calls(self) -> int:
        return self._meter.calls

    @property
    def write_batch_size(self) -> int:
        """Records per sObject Collections update now: the setting, or less after the org's
        automation failed a whole collection on a governor limit (kept for the adapter's
        life, i.e. the run)."""
        return self._collection_size

    def usage(self) -> ApiUsage:
        return self._meter.snapshot()

    # --- reads ------------------------------------------------------------------------------

    def read_changed(
        self, object_type: str, since: datetime | None, fields: Iterable[str]
    ) -> Iterator[Page]:
        """`SystemModstamp >= since ORDER BY SystemModstamp, Id`, 2,000 a batch, each Id once;
        resumed from the last complete stamp when the server drops the cursor."""
        columns = self._columns(object_type, fields)
        return self._read_by_stamp(object_type, columns, (), since, include_deleted=False)

    def read_all(
        self,
        object_type: str,
        fields: Iterable[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Page]:
        """A SOQL backfill, optionally within [since, until) on SystemModstamp, ordered by Id
        so that a released or expired cursor resumes exactly after the last Id read (Ids never
        change, unlike stamps).

        When the first batch's `totalSize` says the object holds at least
        `BulkOptions.query_min_records` records, the rest is read through one Bulk API 2.0
        query job instead (`_read_rest_in_bulk`): deciding costs no call of its own."""
        columns = self._columns(object_type, fields)
        conditions = _modified_conditions(since, until)
        last_id: str | None = None
        while True:
            after = [f"Id > {soql_literal(last_id)}"] if last_id else []
            soql = f"SELECT {columns} FROM {object_type}{_where(conditions + after)} ORDER BY Id"
            try:
                first = self._query_batch(soql)
                if last_id is None and self._reads_in_bulk(first):
                    yield from self._read_rest_in_bulk(object_type, columns, conditions, first)
                    return
                for records in self._batches_from(first):
                    if records:
                        last_id = str(records[-1]["Id"])
                        yield _page(records)
                return
            except FatalApiError as error:
                if error.code != INVALID_QUERY_LOCATOR or last_id is None:
                    raise
                log.info("salesforce %s backfill cursor released; resuming after %s",
                         object_type, last_id)

    def count(
        self, object_type: str, since: datetime | None = None, until: datetime | None = None
    ) -> int | None:
        """What `read_all` would return: `SELECT COUNT()` with the same WHERE, its totalSize
        (Salesforce answers `{"totalSize": N, "done": true, "records": []}`)."""
        _require_object(object_type)
        soql = f"SELECT COUNT() FROM {object_type}{_modified_between(since, until)}"
        total = self._query_batch(soql).get("totalSize")
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    def _reads_in_bulk(self, first: dict[str, Any]) -> bool:
        """Whether the rest of a backfill read goes through a Bulk query job: more is to
        come, and the query's `totalSize` is at least `query_min_records` (when set)."""
        least = self.bulk.options.query_min_records
        total = first.get("totalSize")
        return bool(least) and not first["done"] and isinstance(total, int) and total >= least

    def _read_rest_in_bulk(
        self, object_type: str, columns: str, conditions: list[str], first: dict[str, Any]
    ) -> Iterator[Page]:
        """The first query batch, then every record through one query job, less those that
        batch held (Ids never change). The query's cursor is left to expire, as Salesforce
        lets an unread cursor go."""
        seen = {str(record["Id"]) for record in first["records"]}
        if first["records"]:
            yield _page(first["records"])
        log.info("salesforce %s: %s records to read; the rest through a Bulk API 2.0 query "
                 "job", object_type, first["totalSize"])
        soql = f"SELECT {columns} FROM {object_type}{_where(conditions)}"
        for records in self.bulk.read(object_type, soql, self.api_version):
            fresh = [r for r in records if str(r["Id"]) not in seen]
            if fresh:
                yield _page(fresh)

    def read_deleted(self, object_type: str, since: datetime | None) -> Iterator[Page]:
        """Records deleted (or merged away) at or after `since`, as tombstones: queryAll
        `IsDeleted = true AND SystemModstamp >= since` (a deleted record's SystemModstamp is
        its deletion time), with `MasterRecordId` naming a merge's survivor. One call when
        nothing was deleted."""
        _require_object(object_type)
        columns = ["Id", "IsDeleted", MODIFIED_FIELD]
        if object_type in MERGEABLE_OBJECTS:
            columns.append("MasterRecordId")
        for page in self._read_by_stamp(object_type, ", ".join(columns), ("IsDeleted = true",),
                                        since, include_deleted=True):
            stones = [_tombstone(r) for r in page.records if r.get("IsDeleted") is True]
            if stones:
                newest = max((t.deleted_at for t in stones if t.deleted_at), default=None)
                yield Page(records=[], max_modified=newest, tombstones=stones)

    def _read_by_stamp(
        self,
        object_type: str,
        columns: str,
        conditions: Sequence[str],
        since: datetime | None,
        *,
        include_deleted: bool,
    ) -> Iterator[Page]:
        """Pages of `... ORDER BY SystemModstamp, Id` from `since`, each Id once; a dropped
        cursor (INVALID_QUERY_LOCATOR) is resumed by a new query from the stamp up to which
        the read is complete, skipping the Ids already read. Gives up only when resumed
        queries stop bringing new records."""
        progress = _ReadProgress()
        lower = since
        stalled = 0
        while True:
            bounds = [f"{MODIFIED_FIELD} >= {soql_literal(lower)}"] if lower else []
            soql = (f"SELECT {columns} FROM {object_type}{_where([*conditions, *bounds])} "
                    f"ORDER BY {MODIFIED_FIELD}, Id")
            issued_at = datetime.now(UTC)
            read_before = len(progress.seen)
            try:
                for records in self._query(soql, include_deleted=include_deleted):
                    fresh = progress.take(records, issued_at)
                    if fresh:
                        yield Page(records=fresh, max_modified=progress.complete_through)
                return
            except FatalApiError as error:
                stalled = stalled + 1 if len(progress.seen) == read_before else 0
                if error.code != INVALID_QUERY_LOCATOR or stalled >= MAX_STALLED_RESUMES:
                    raise
                log.info("salesforce %s query cursor released; resuming", object_type)
                lower = progress.complete_through or since

    def read_changed_between(
        self, object_type: str, first_id: str, last_id: str, since: datetime,
        fields: Iterable[str],
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """The records with Ids from `first_id` to `last_id` modified at or after `since`, and
        the Ids among them deleted since (queryAll, `IsDeleted`): how a Bulk write re-reads a
        job's records before sending them. By Id it would take a query per ~600 records;
        this is one call when few changed (Salesforce Ids sort as their text)."""
        columns = self._columns(object_type, fields)
        soql = (f"SELECT {columns}, IsDeleted FROM {object_type} WHERE "
                f"Id >= {soql_literal(first_id)} AND Id <= {soql_literal(last_id)} AND "
                f"{MODIFIED_FIELD} >= {soql_literal(since)}")
        records, gone = [], set()
        for batch in self._query(soql, include_deleted=True):
            for record in batch:
                if record.pop("IsDeleted", False) is True:
                    gone.add(str(record["Id"]))
                else:
                    records.append(record)
        return records, gone

    def read_by_ids(
        self, object_type: str, ids: Iterable[str], fields: Iterable[str]
    ) -> list[dict[str, Any]]:
        """`Id IN (...)` queries, as many ids a query as fit the SOQL length limit."""
        return self._read_where_in(object_type, "Id", ids, fields)

    def read_by_emails(
        self, object_type: str, emails: Iterable[str], fields: Iterable[str]
    ) -> list[dict[str, Any]]:
        """`Email IN (...)` on Lead or Contact (SOQL text comparison is case-insensitive)."""
        unique = dict.fromkeys(e.strip().lower() for e in emails if e and e.strip())
        return self._read_where_in(object_type, "Email", unique, fields)

    def _read_where_in(
        self, object_type: str, field: str, values: Iterable[str], fields: Iterable[str]
    ) -> list[dict[str, Any]]:
        prefix = f"SELECT {self._columns(object_type, fields)} FROM {object_type} WHERE {field}"
        records: list[dict[str, Any]] = []
        for soql in soql_in_chunks(prefix, list(dict.fromkeys(values))):
            for batch in self._query(soql):
                records.extend(batch)
        return records

    def _query(
        self, soql: str, *, include_deleted: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Each batch of a query's result (queryAll with `include_deleted`), following
        nextRecordsUrl until done."""
        return self._batches_from(self._query_batch(soql, include_deleted=include_deleted))

    def _batches_from(self, first: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """The batches of a query from its first answer on, following nextRecordsUrl."""
        result = first
        while True:
            yield result["records"]
            if result["done"]:
                return
            next_url = result["nextRecordsUrl"]
            result = self._call(
                "query",
                lambda sf, url=next_url: _complete_answer(
                    sf.query_more(url, identifier_is_url=True, headers=QUERY_HEADERS)
                ),
            )

    def _query_batch(self, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        """One query call: its first batch with `totalSize`, `done` and `nextRecordsUrl`."""
        return self._call(
            "query",
            lambda sf: _complete_answer(
                sf.query(soql, include_deleted=include_deleted, headers=QUERY_HEADERS)
            ),
        )

    # --- writes -----------------------------------------------------------------------------

    def write(
        self,
        object_type: str,
        updates: Sequence[RecordUpdate],
        *,
        confirm_fields: Collection[str] = (),
    ) -> list[WriteResult]:
        """sObject Collections, `write_batch_size` records a call, allOrNone=false: per-record
        results. Raises only what stops the run: authentication, budget, and a
        ConfigurationError for a field the org does not have or hides (INVALID_FIELD)."""
        return write_records(
            updates,
            lambda batch: self._send_in_collections(object_type, batch),
            batch_size=lambda: self._collection_size,
            retry=self._retry,
            confirm_fields=confirm_fields,
            read_back=lambda ids, names: self._read_back(object_type, ids, names),
            same=_same_value,
        )

    def _send_in_collections(
        self, object_type: str, batch: list[RecordUpdate]
    ) -> list[WriteResult]:
        """Send `batch` in collections of the current size. A collection that the org's
        automation failed as a whole on a governor limit is sent again at once at half the
        size (the size then holds for the rest of the run); a single record that still
        fails so is rejected with Salesforce's message."""
        results: list[WriteResult] = []
        start = 0
        while start < len(batch):
            part = batch[start : start + self._collection_size]
            # A 400 that one bad record may cause (a value the server cannot parse) is split in
            # halves; INVALID_FIELD never gets here (`_send_collection`): no split can succeed.
            answered = send_or_split(
                part,
                lambda half: self._send_collection(object_type, half),
                lambda error: error.status == 400,
            )
            if len(part) > 1 and _whole_collection_hit_a_governor_limit(answered):
                self._halve_collection_size(object_type, len(part), answered[0].message)
                continue
            results.extend(answered)
            start += len(part)
        return results

    def _halve_collection_size(self, object_type: str, failed: int, message: str | None) -> None:
        self._collection_size = max(1, min(self._collection_size, failed // 2))
        log.warning(
            "salesforce %s: the org's automation failed a whole collection of %d records on a "
            "governor limit (%s); sending %d records a collection for the rest of this run "
            "(set CRMSYNC_SALESFORCE_WRITE_BATCH_SIZE to start there)",
            object_type, failed, message or "", self._collection_size,
            extra={"fields": {"object": object_type, "failed": failed,
                              "write_batch_size": self._collection_size}},
        )

    def _send_collection(self, object_type: str, batch: list[RecordUpdate]) -> list[WriteResult]:
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": object_type}, "id": u.record_id, **_sf_fields(u.fields)}
                for u in batch
            ],
        }

        def send(sf: Salesforce) -> Any:
            try:
                return sf.restful("composite/sobjects", method="PATCH", json=body,
                                  headers=self._write_headers)
            except SalesforceError as error:
                if error.status == 400 and _error_code(error.content) == "INVALID_FIELD":
                    raise _invalid_field(object_type, error.content) from None
                raise

        answers = self._call("composite", send)
        return _collection_results(batch, answers or [])

    def _read_back(
        self, object_type: str, ids: list[str], names: list[str]
    ) -> dict[str, dict[str, Any]]:
        prefix = (
            f"SELECT Id, {', '.join(n for n in names if n != 'Id')} FROM {object_type} WHERE Id"
        )
        held: dict[str, dict[str, Any]] = {}
        for soql in soql_in_chunks(prefix, ids):
            for batch in self._query(soql):
                for record in batch:
                    held[record["Id"]] = record
                    if len(record["Id"]) == 18:
                        held.setdefault(record["Id"][:15], record)
        return held

    # --- schema -----------------------------------------------------------------------------

    def describe_fields(self, object_type: str) -> dict[str, FieldInfo]:
        """Every field of the sObject (GET /sobjects/{type}/describe)."""
        data = self._call("describe", lambda sf: sf.restful(f"sobjects/{object_type}/describe"))
        fields: dict[str, FieldInfo] = {}
        for field in (data or {}).get("fields", []):
            options = tuple(
                str(p["value"]) for p in field.get("picklistValues") or () if p.get("active", True)
            )
            fields[field["name"]] = FieldInfo(
                name=field["name"],
                label=field.get("label", ""),
                type=field.get("type", ""),
                writable=bool(field.get("updateable", False)),
                options=options,
            )
        return fields

    # --- plumbing ---------------------------------------------------------------------------

    def _columns(self, object_type: str, fields: Iterable[str]) -> str:
        _require_object(object_type)
        wanted = set(fields) | {"Id", MODIFIED_FIELD} | set(LINK_FIELDS[object_type])
        return ", ".join(["Id", *sorted(wanted - {"Id"})])

    def _connection(self) -> Salesforce:
        if self._sf is None:
            self._meter.count("token")
            token, instance_url = self._tokens.fetch()
            self._sf = Salesforce(
                instance_url=instance_url,
                session_id=token,
                session=self._http,
                version=self.api_version,
                object_pairs_hook=dict,
            )
        return self._sf

    def _call(self, operation: str, send: Callable[[Salesforce], T]) -> T:
        """One request under the daily budget and the retry policy; refreshes expired sessions."""
        return guarded_call(
            operation,
            lambda: send(self._connection()),
            system=SYSTEM,
            retry=self._retry,
            usage=self._meter,
            classify=lambda error: self._classify(error, operation),
            transport=(requests.RequestException,),
            # Logged in before the call is counted (the login counts as "token"), and a
            # Retry-After the login answer carried is not this call's.
            before=(self._daily.check, self._connection, self._forget_retry_after),
        )

    def _forget_retry_after(self) -> None:
        self._last_retry_after = None

    def _classify(self, error: Exception, operation: str) -> ApiError | BudgetExhausted | None:
        """A simple-salesforce failure as our exception tree; None for anything else."""
        if not isinstance(error, SalesforceError):
            return None
        code = _error_code(error.content)
        if error.status == 401 and code in ("INVALID_SESSION_ID", None):
            if self._tokens.can_refresh:
                self._sf = None  # the next attempt logs in again
                return RetriableApiError(
                    "session expired; refreshing",
                    system=SYSTEM,
                    operation=operation,
                    status=401,
                    code="INVALID_SESSION_ID",
                    retry_after=0.0,
                )
            return AuthenticationError(
                "the access token expired or was revoked, and a bare access token cannot be "
                "refreshed: configure OAuth client credentials or JWT bearer",
                system=SYSTEM,
                operation=operation,
                status=401,
                code=code,
            )
        return classify_salesforce_error(
            error.status, error.content, operation, retry_after=self._last_retry_after
        )

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Read the daily usage and any Retry-After from every answer, errors included."""
        self._daily.observe(response.headers.get("Sforce-Limit-Info"))
        self._last_retry_after = parse_retry_after(response.headers.get("Retry-After"))


class _ReadProgress:
    """What one read by SystemModstamp has yielded, and the stamp up to which it is complete.

    `seen` holds every Id yielded, whatever its stamp: a query cursor fixes the Ids and their
    order when the query runs, but renders each batch when it is fetched (SOAP API Developer
    Guide, queryMore(): "gathers all the IDs and creates a server-side cursor"). A record
    edited after the query ran therefore comes back in its old place with a newer stamp, and
    the rows after it are older: each must be read, once (memory: one Id per record read).

    `complete_through` is what a page may report as `max_modified`: a stamp such that every
    record not read yet is at or after it, so a watermark taken from it never passes an
    unread record. The newest stamp seen is not that: after an edited row it would jump past
    every older row still unread (the engine caps the watermark at min(max_modified, run
    start), and the unread rows can be far older than both). An unedited row's stamp is its
    place in the cursor's order, and it is no newer than the query and no newer than any
    later row; an edited row's stamp is newer than the query. So only stamps that are
    at or before the query was sent and not newer than a later row of the same batch count,
    and `complete_through` is the newest of those (a running value: stamps out of order are
    ignored, and the record is simply read again by the next run).

    "When the query was sent" is our clock, as the engine's own cap at run start is. A client
    clock behind the org's only lowers `complete_through` (more is re-read); one ahead of it
    could let an edited row pass, unless a later row of its batch is older, which catches
    every edited row but the last of a batch.
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.complete_through: datetime | None = None

    def take(self, records: list[dict[str, Any]], issued_at: datetime) -> list[dict[str, Any]]:
        """The records not yielded before (remembered now); advances `complete_through` over
        every row of the batch, repeats included, for they too hold their place in order."""
        self._advance([parse_timestamp(r.get(MODIFIED_FIELD)) for r in records], issued_at)
        fresh = []
        for record in records:
            record_id = str(record.get("Id"))
            if record_id not in self.seen:
                self.seen.add(record_id)
                fresh.append(record)
        return fresh

    def _advance(self, stamps: list[datetime | None], issued_at: datetime) -> None:
        later: datetime | None = None  # the oldest stamp after the current row
        for stamp in reversed(stamps):
            if stamp is None:
                continue
            in_order = stamp <= issued_at and (later is None or stamp <= later)
            if in_order and (self.complete_through is None or stamp > self.complete_through):
                self.complete_through = stamp
            later = stamp if later is None else min(later, stamp)


# --- pure helpers ---------------------------------------------------------------------------


def classify_salesforce_error(
    status: int,
    content: Any,
    operation: str = "",
    *,
    retry_after: float | None = None,
) -> ApiError | BudgetExhausted:
    """A Salesforce error response (status + the `[{"errorCode","message"}]` body) as our tree.

    403 REQUEST_LIMIT_EXCEEDED means either the org's daily allocation is gone (stop, resumable)
    or too many concurrent long requests (wait and retry); the message tells them apart.
    """
    code = _error_code(content)
    message = _error_message(content)
    details = {"system": SYSTEM, "operation": operation, "status": status, "code": code}
    if code == "REQUEST_LIMIT_EXCEEDED":
        if "TotalRequests" in message:
            return BudgetExhausted(
                "salesforce: the org's daily API allocation is used up (REQUEST_LIMIT_EXCEEDED)."
                " Stopped cleanly; rerun later to resume."
            )
        return RateLimitedError(message, retry_after=retry_after, **details)
    if status == 401:
        return AuthenticationError(message or "session refused", **details)
    if code in RETRIABLE_CODES or status >= 500 or status == 429:
        return RetriableApiError(message, retry_after=retry_after, **details)
    return FatalApiError(message, **details)


def soql_literal(value: Any, *, round_up: bool = False) -> str:
    """A SOQL literal: datetimes in UTC to the second (floored, or ceiled for upper bounds, so a
    range never loses a record to rounding), strings quoted and escaped."""
    if isinstance(value, datetime):
        moment = as_utc(value)
        floored = moment.replace(microsecond=0)
        if round_up and floored != moment:
            floored = datetime.fromtimestamp(floored.timestamp() + 1, UTC)
        return floored.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def soql_in_chunks(
    prefix: str, values: Sequence[str], *, max_encoded: int = MAX_ENCODED_SOQL
) -> Iterator[str]:
    """`{prefix} IN (...)` queries covering every value, each within `max_encoded` characters
    once URL-encoded (queries are GET parameters). A single value too long for the limit on
    its own is an error rather than a silent skip."""
    head = f"{prefix} IN ("
    base = _encoded_length(head + ")")
    current: list[str] = []
    length = base
    for value in values:
        literal = soql_literal(value)
        cost = _encoded_length(literal) + (_encoded_length(",") if current else 0)
        if current and length + cost > max_encoded:
            yield head + ",".join(current) + ")"
            current, length = [], base
            cost = _encoded_length(literal)
        if base + cost > max_encoded:
            raise ValueError(f"value too long for one SOQL query: {value[:40]!r}...")
        current.append(literal)
        length += cost
    if current:
        yield head + ",".join(current) + ")"


def _require_object(object_type: str) -> None:
    """Only the objects we know: the name goes into SOQL as is."""
    if object_type not in LINK_FIELDS:
        raise ValueError(f"unknown Salesforce object {object_type!r}; use {OBJECT_TYPES}")


def _modified_between(since: datetime | None, until: datetime | None) -> str:
    """` WHERE` on SystemModstamp in [since, until), or "" for no range."""
    return _where(_modified_conditions(since, until))


def _modified_conditions(since: datetime | None, until: datetime | None) -> list[str]:
    """SystemModstamp in [since, until) (the upper bound ceiled to the second, so rounding
    loses nothing)."""
    conditions = []
    if since is not None:
        conditions.append(f"{MODIFIED_FIELD} >= {soql_literal(since)}")
    if until is not None:
        conditions.append(f"{MODIFIED_FIELD} < {soql_literal(until, round_up=True)}")
    return conditions


def _where(conditions: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _complete_answer(answer: Any) -> dict[str, Any]:
    """A query answer that says where the read stands, or a RetriableApiError.

    A 200 without `records` or `done`, or `done: false` without the `nextRecordsUrl` to go on
    with, is a truncated or broken answer (a proxy, a server fault): taking it for the end of
    the read would silently lose the rest, and move the watermark past it.
    """
    problem = None
    if not isinstance(answer, dict):
        problem = "the body is not a JSON object"
    elif not isinstance(answer.get("records"), list):
        problem = "it has no 'records' list"
    elif not isinstance(answer.get("done"), bool):
        problem = "it has no 'done' flag"
    elif not answer["done"] and not answer.get("nextRecordsUrl"):
        problem = "'done' is false but there is no nextRecordsUrl"
    if problem is None:
        return answer
    raise RetriableApiError(
        f"not a complete query answer: {problem}; the read was not taken as finished",
        system=SYSTEM, operation="query", status=200, code="INCOMPLETE_QUERY_ANSWER",
    )


def _tombstone(record: dict[str, Any]) -> Tombstone:
    return Tombstone(
        record_id=str(record["Id"]),
        deleted_at=parse_timestamp(record.get(MODIFIED_FIELD)),
        merged_into=record.get("MasterRecordId") or None,
    )


def _encoded_length(text: str) -> int:
    return len(urllib.parse.quote_plus(text))


def _whole_collection_hit_a_governor_limit(results: list[WriteResult]) -> bool:
    """Every record failed CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY with a LimitException: the
    org's triggers or flows ran out of a governor limit for the collection as a whole."""
    return bool(results) and all(
        r.status == "rejected" and r.code == GOVERNOR_FAILURE_CODE
        and GOVERNOR_FAILURE_MARK in (r.message or "")
        for r in results
    )


def _invalid_field(object_type: str, content: Any) -> ConfigurationError:
    """A whole-request INVALID_FIELD as what it is: a setting to fix, not a record to reject.

    Salesforce answers `400 [{"errorCode": "INVALID_FIELD", "message": "No such column 'X' on
    sobject of type Lead", "fields": [...]}]` for a field that does not exist and for one the
    integration user's field-level security hides; nothing in the request is written, and
    every record of every later request would fail the same way."""
    message = _error_message(content)
    fields = content[0].get("fields") if isinstance(content, list) and content and \
        isinstance(content[0], dict) else None
    named = re.search(r"column '([^']+)'", message)
    field = fields[0] if fields else named.group(1) if named else "?"
    return ConfigurationError(
        f"salesforce: the {object_type} field {field} does not exist or is not visible to the "
        f"integration user (INVALID_FIELD: {message}); nothing was written in that request and "
        "writing stopped. Create the field or grant the user edit access to it (field-level "
        "security), or fix the mapping; `crmsync check` lists every such field."
    )


def _collection_results(batch: list[RecordUpdate], answers: list[Any]) -> list[WriteResult]:
    """sObject Collections answers, in request order, as per-record results."""
    results = []
    for index, update in enumerate(batch):
        answer = answers[index] if index < len(answers) else None
        if answer is None:
            results.append(
                WriteResult(
                    update.record_id, "retry_later", code="NOT_IN_RESPONSE", step=update.step
                )
            )
        elif answer.get("success"):
            results.append(
                WriteResult(
                    update.record_id, "applied", fields=dict(update.fields), step=update.step
                )
            )
        else:
            error = (answer.get("errors") or [{}])[0]
            code = error.get("statusCode")
            message = scrub(str(error.get("message", "")))
            if code == "DUPLICATES_DETECTED":
                message = _duplicate_message(message, error.get("duplicateResult"))
            results.append(
                WriteResult(
                    update.record_id,
                    "retry_later" if code in RETRIABLE_CODES else "rejected",
                    code=code,
                    message=message,
                    step=update.step,
                )
            )
    return results


def _duplicate_message(message: str, duplicate: Any) -> str:
    """DUPLICATES_DETECTED ("Use one of these records?") with the rule, the records it
    matched and the setting that saves through the alert."""
    rule, matched = "a duplicate rule", []
    if isinstance(duplicate, dict):
        rule = str(duplicate.get("duplicateRule") or rule)
        for match in duplicate.get("matchResults") or ():
            for found in (match or {}).get("matchRecords") or ():
                record = (found or {}).get("record") or {}
                if record.get("Id"):
                    matched.append(str(record["Id"]))
    also = f" matched {', '.join(matched[:5])}" if matched else ""
    return (f"{message} ({rule}{also}; set CRMSYNC_SALESFORCE_ALLOW_SAVE_ON_DUPLICATES=true "
            "to save through the alert)")


def _sf_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}


def _same_value(wanted: Any, held: Any) -> bool:
    if wanted is None or wanted == "":
        return held is None or held == ""
    if isinstance(wanted, bool) or isinstance(held, bool):
        return str(wanted).lower() == str(held).lower()
    return str(wanted) == str(held)


def _page(records: list[dict[str, Any]]) -> Page:
    times = [t for r in records if (t := parse_timestamp(r.get(MODIFIED_FIELD))) is not None]
    return Page(records=records, max_modified=max(times) if times else None)


def _error_code(content: Any) -> str | None:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return content[0].get("errorCode")
    if isinstance(content, dict):
        return content.get("errorCode") or content.get("error")
    return None


def _error_message(content: Any) -> str:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return scrub(str(content[0].get("message", "")))
    if isinstance(content, dict):
        return scrub(str(content.get("message") or content.get("error_description") or ""))
    return scrub(str(content or ""))[:500]


def _token_error(response: requests.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(payload, dict):
        return f"{payload.get('error', '')}: {payload.get('error_description', '')}".strip(": ")
    return f"HTTP {response.status_code}"


def _fix_for(kind: str) -> str:
    """What to check in the settings when a login of this kind is refused."""
    fixes = {
        "client_credentials": "CRMSYNC_SALESFORCE_CLIENT_ID and CRMSYNC_SALESFORCE_CLIENT_SECRET"
                              " (the connected app's consumer key and secret)",
        "jwt": "CRMSYNC_SALESFORCE_CLIENT_ID, CRMSYNC_SALESFORCE_USERNAME, the key in "
               "CRMSYNC_SALESFORCE_PRIVATE_KEY_FILE (its certificate must be on the connected "
               "app) and CRMSYNC_SALESFORCE_JWT_AUDIENCE (https://test.salesforce.com for a "
               "sandbox org)",
        "password": "CRMSYNC_SALESFORCE_USERNAME, CRMSYNC_SALESFORCE_PASSWORD and "
                    "CRMSYNC_SALESFORCE_SECURITY_TOKEN (SOAP login() must be enabled in the org)",
    }
    return f". Check {fixes[kind]}." if kind in fixes else ""

