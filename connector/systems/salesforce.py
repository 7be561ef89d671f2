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
- Incremental reads order by `SystemModstamp, Id` and de-duplicate by Id at the boundary, so
  records sharing a timestamp across a 2,000-record batch boundary are neither lost nor doubled.
- Bulk API 2.0 is not used: SOQL query batches meet the call budget (ceil(N/2000) calls).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from connector.exceptions import (
    ApiError,
    AuthenticationError,
    BudgetExhausted,
    FatalApiError,
    RateLimitedError,
    RetriableApiError,
    scrub,
)
from connector.settings import SalesforceCredentials
from connector.systems._writes import (
    confirm_written,
    send_in_rounds,
    send_or_split,
    write_in_steps,
)
from connector.systems.base import (
    ApiUsage,
    FieldInfo,
    Page,
    RecordUpdate,
    WriteResult,
    as_utc,
    parse_timestamp,
)
from connector.systems.resilience import DailyAllocation, RetryPolicy, parse_retry_after

__all__ = [
    "SalesforceAdapter",
    "classify_salesforce_error",
    "soql_in_chunks",
    "soql_literal",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEM = "salesforce"
OBJECT_TYPES = ("Lead", "Contact", "Account", "Opportunity")
MODIFIED_FIELD = "SystemModstamp"
# Fields linking needs, requested whatever the mapping names.
LINK_FIELDS: dict[str, tuple[str, ...]] = {
    "Lead": ("Email", "IsConverted", "ConvertedContactId", "ConvertedAccountId"),
    "Contact": ("Email", "AccountId"),
    "Account": ("Website",),
    "Opportunity": ("AccountId",),
}
QUERY_BATCH_SIZE = 2_000
QUERY_HEADERS = {"Sforce-Query-Options": f"batchSize={QUERY_BATCH_SIZE}"}
COLLECTION_SIZE = 200
# A query travels in the URL of a GET; stay well under the ~16 KB URI limit once encoded.
MAX_ENCODED_SOQL = 15_000
RETRIABLE_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG", "QUERY_TIMEOUT"}
)
INVALID_QUERY_LOCATOR = "INVALID_QUERY_LOCATOR"
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
        """(access token, instance URL)."""
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
            raise _transport_error("token", error) from None
        secrets = list(form.values())
        if response.status_code >= 500 or response.status_code == 429:
            raise RetriableApiError(
                scrub(response.text[:300], *secrets),
                system=SYSTEM,
                operation="token",
                status=response.status_code,
            )
        if response.status_code != 200:
            detail = _token_error(response)
            raise AuthenticationError(
                scrub(f"{self.credentials.kind} login refused: {detail}", *secrets),
                system=SYSTEM,
                operation="token",
                status=response.status_code,
            )
        payload = response.json()
        return payload["access_token"], payload.get("instance_url") or self.credentials.instance_url

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
        from simple_salesforce import SalesforceLogin  # noqa: PLC0415 - last-resort path
        from simple_salesforce.exceptions import SalesforceAuthenticationFailed  # noqa: PLC0415

        creds = self.credentials
        assert creds.password is not None and creds.security_token is not None
        host = urllib.parse.urlparse(creds.instance_url).hostname or ""
        try:
            session_id, instance = SalesforceLogin(
                username=creds.username,
                password=creds.password.get_secret_value(),
                security_token=creds.security_token.get_secret_value(),
                domain=host.removesuffix(".salesforce.com"),
                session=self._http,
                sf_version=self._api_version,
            )
        except SalesforceAuthenticationFailed as error:
            raise AuthenticationError(
                f"password login refused: {getattr(error, 'code', '')}",
                system=SYSTEM,
                operation="token",
            ) from None
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
    ) -> None:
        self.instance_url = credentials.instance_url.rstrip("/")
        self.api_version = api_version
        self._timeout = timeout_seconds
        self._http = _http_session(ca_bundle, timeout_seconds)
        self._http.hooks["response"].append(self._on_response)
        self._tokens = _TokenSource(credentials, self._http, api_version)
        self._retry = retry or RetryPolicy()
        self._daily = DailyAllocation(max_daily_share)
        self._usage = ApiUsage(SYSTEM)
        self._sf: Salesforce | None = None
        self._last_retry_after: float | None = None

    def __repr__(self) -> str:
        return (
            f"SalesforceAdapter(instance_url={self.instance_url!r}, "
            f"auth={self._tokens.credentials.kind!r})"
        )

    # --- usage ------------------------------------------------------------------------------

    @property
    def api_calls(self) -> int:
        return self._usage.calls

    def usage(self) -> ApiUsage:
        self._usage.retries = self._retry.retries
        self._usage.daily_used = self._daily.used
        self._usage.daily_allocation = self._daily.allocation
        return self._usage.snapshot()

    # --- reads ------------------------------------------------------------------------------

    def read_changed(
        self, object_type: str, since: datetime | None, fields: Iterable[str]
    ) -> Iterator[Page]:
        """`SystemModstamp >= since ORDER BY SystemModstamp, Id`, 2,000 a batch, each Id once."""
        columns = self._columns(object_type, fields)
        boundary = _Boundary()
        lower = since
        while True:
            where = f" WHERE {MODIFIED_FIELD} >= {soql_literal(lower)}" if lower else ""
            soql = f"SELECT {columns} FROM {object_type}{where} ORDER BY {MODIFIED_FIELD}, Id"
            try:
                for records in self._query(soql):
                    fresh = [r for r in records if boundary.take(r)]
                    if fresh:
                        yield _page(fresh)
                return
            except FatalApiError as error:
                if error.code != INVALID_QUERY_LOCATOR or boundary.at is None:
                    raise
                # The server forgot our cursor (idle or too many open): resume where we were.
                log.info("salesforce %s query cursor expired; resuming", object_type)
                lower = boundary.at

    def read_all(
        self,
        object_type: str,
        fields: Iterable[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Page]:
        """A SOQL backfill, optionally within [since, until) on SystemModstamp."""
        where = _modified_between(since, until)
        soql = f"SELECT {self._columns(object_type, fields)} FROM {object_type}{where}"
        for records in self._query(soql):
            if records:
                yield _page(records)

    def count(
        self, object_type: str, since: datetime | None = None, until: datetime | None = None
    ) -> int | None:
        """What `read_all` would return: `SELECT COUNT()` with the same WHERE, its totalSize
        (Salesforce answers `{"totalSize": N, "done": true, "records": []}`)."""
        _require_object(object_type)
        soql = f"SELECT COUNT() FROM {object_type}{_modified_between(since, until)}"
        total = self._query_batch(soql).get("totalSize")
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    def read_deleted(self, object_type: str, since: datetime | None) -> Iterator[Page]:
        """Not read yet: deletions and merges come with the live-reads work (issue 11)."""
        return iter(())

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

    def _query(self, soql: str) -> Iterator[list[dict[str, Any]]]:
        """Each batch of a query's result, following nextRecordsUrl until done."""
        result = self._query_batch(soql)
        while True:
            yield result.get("records", [])
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                return
            result = self._call(
                "query",
                lambda sf, url=next_url: sf.query_more(
                    url, identifier_is_url=True, headers=QUERY_HEADERS
                ),
            )

    def _query_batch(self, soql: str) -> dict[str, Any]:
        """One query call: its first batch with `totalSize`, `done` and `nextRecordsUrl`."""
        return self._call("query", lambda sf: sf.query(soql, headers=QUERY_HEADERS))

    # --- writes -----------------------------------------------------------------------------

    def write(
        self,
        object_type: str,
        updates: Sequence[RecordUpdate],
        *,
        confirm_fields: Collection[str] = (),
    ) -> list[WriteResult]:
        """sObject Collections, 200 a call, allOrNone=false: per-record results, never raised."""
        results = write_in_steps(updates, lambda step: self._write_step(object_type, step))
        if not confirm_fields:
            return results
        return confirm_written(
            updates,
            results,
            confirm_fields,
            lambda ids, names: self._read_back(object_type, ids, names),
            _same_value,
        )

    def _write_step(self, object_type: str, updates: list[RecordUpdate]) -> list[WriteResult]:
        return send_in_rounds(
            updates,
            lambda batch: send_or_split(
                batch,
                lambda part: self._send_collection(object_type, part),
                lambda error: error.status == 400,
            ),
            batch_size=COLLECTION_SIZE,
            rounds=self._retry.max_attempts,
            pause=lambda n: self._retry.sleep(
                min(self._retry.max_wait, self._retry.initial_wait * 2 ** (n - 1))
            ),
        )

    def _send_collection(self, object_type: str, batch: list[RecordUpdate]) -> list[WriteResult]:
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": object_type}, "id": u.record_id, **_sf_fields(u.fields)}
                for u in batch
            ],
        }
        answers = self._call(
            "composite",
            lambda sf: sf.restful("composite/sobjects", method="PATCH", json=body),
        )
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
            self._usage.count("token")
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

        def attempt() -> T:
            self._daily.check()
            connection = self._connection()
            self._usage.count(operation)
            self._last_retry_after = None
            try:
                return send(connection)
            except SalesforceError as error:
                raise self._classify(error, operation) from None
            except requests.RequestException as error:
                raise _transport_error(operation, error) from None

        return self._retry.run(attempt, operation=f"{SYSTEM} {operation}")

    def _classify(self, error: SalesforceError, operation: str) -> ApiError | BudgetExhausted:
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


class _Boundary:
    """The newest SystemModstamp yielded and the Ids yielded at it: a resumed or overlapping
    query skips exactly those, so equal timestamps at a batch boundary are neither lost nor
    doubled."""

    def __init__(self) -> None:
        self.at: datetime | None = None
        self.ids: set[str] = set()

    def take(self, record: dict[str, Any]) -> bool:
        """Whether the record is new; remembers it."""
        stamp = parse_timestamp(record.get(MODIFIED_FIELD))
        record_id = str(record.get("Id"))
        if stamp is None:
            return True
        if self.at is None or stamp > self.at:
            self.at, self.ids = stamp, {record_id}
            return True
        if stamp < self.at:
            return False  # results are ascending: a resumed query re-reads what we passed
        if record_id in self.ids:
            return False
        self.ids.add(record_id)
        return True


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
    """` WHERE` on SystemModstamp in [since, until) (the upper bound ceiled to the second, so
    rounding loses nothing), or "" for no range."""
    conditions = []
    if since is not None:
        conditions.append(f"{MODIFIED_FIELD} >= {soql_literal(since)}")
    if until is not None:
        conditions.append(f"{MODIFIED_FIELD} < {soql_literal(until, round_up=True)}")
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _encoded_length(text: str) -> int:
    return len(urllib.parse.quote_plus(text))


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
            results.append(
                WriteResult(
                    update.record_id,
                    "retry_later" if code in RETRIABLE_CODES else "rejected",
                    code=code,
                    message=scrub(str(error.get("message", ""))),
                    step=update.step,
                )
            )
    return results


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


def _transport_error(operation: str, error: BaseException) -> RetriableApiError:
    kind = type(error).__name__
    return RetriableApiError(
        f"{kind}: {scrub(str(error))}", system=SYSTEM, operation=operation, code=kind
    )
