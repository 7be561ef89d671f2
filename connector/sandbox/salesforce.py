"""The emulated Salesforce REST API: OAuth token (client credentials, JWT bearer, refresh
token, password) and SOAP login(), the versions list, query/queryAll (2,000-record batches over
live server-side cursors, and SELECT COUNT()), global and per-object describe, sObject Get
Deleted, limits and sObject Collections updates, with Salesforce's error shapes; Bulk API 2.0
ingest and query jobs are in salesforce_bulk.py.

Every API response carries `Sforce-Limit-Info: api-usage=N/M`; requests beyond the daily
allocation answer 403 REQUEST_LIMIT_EXCEEDED, wrong or expired tokens 401 INVALID_SESSION_ID,
API versions the org does not list under `GET /services/data/` 404 NOT_FOUND.

Query cursors behave as a real org's (SOAP API Developer Guide, queryMore(): "Querying a
standard or custom object gathers all the IDs and creates a server-side cursor to page
through"; QueryLocator: "expires automatically after 15 minutes of inactivity", "A user can
have up to ten query cursors open at a time ... the oldest of the ten cursors is released"). A
cursor holds the Ids, in the order fixed when the query ran; each later batch is rendered from
the data as it is when that batch is fetched, so a row edited meanwhile comes back in its old
place with its new values and SystemModstamp, and a row deleted meanwhile is left out.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connector.sandbox._http import BadJson, Request, Response, json_response
from connector.sandbox._salesforce_login import answer_soap_login, answer_token
from connector.sandbox._state import SandboxState
from connector.sandbox.salesforce_bulk import INGEST_ENDPOINT, QUERY_ENDPOINT, BulkApi
from connector.sandbox.schema import SALESFORCE_FIELDS, SALESFORCE_KEY_PREFIXES, SalesforceField
from connector.sandbox.soql import SoqlError, parse_soql
from connector.sandbox.store import Dataset, parse_instant, sf_datetime

__all__ = ["API_VERSIONS", "SalesforceApi"]

API_VERSION = "59.0"
# The versions the org lists at `GET /services/data/` (oldest still served after the
# 21.0-30.0 retirement, up to Summer '25); any other vXX.X answers 404 NOT_FOUND as in a real
# org. SOAP login() exists up to 64.0 (SOAP API Developer Guide, login()).
API_VERSIONS = tuple(f"{major}.0" for major in range(31, 65))
QUERY_BATCH = 2_000
COMPOSITE_MAX = 200
CURSORS_PER_USER = 10
# sObject Get Deleted: "Results are returned for no more than 15 days previous to the day the
# call is executed" (REST API Developer Guide, sObject Get Deleted).
DELETED_LOG_DAYS = 15
_V = r"/services/data/v(?P<version>\d+\.\d)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(_V + r"/(?P<kind>query|queryAll)/?$"), "query"),
    ("GET", re.compile(_V + r"/(?P<kind>query|queryAll)/(?P<locator>[^/]+)/?$"), "query_more"),
    ("GET", re.compile(_V + r"/sobjects/?$"), "describe_global"),
    ("GET", re.compile(_V + r"/sobjects/(?P<sobject>\w+)/describe/?$"), "describe"),
    ("GET", re.compile(_V + r"/sobjects/(?P<sobject>\w+)/deleted/?$"), "deleted"),
    ("GET", re.compile(_V + r"/sobjects/(?P<sobject>\w+)/(?P<id>\w{15,18})/?$"), "sobject"),
    ("GET", re.compile(_V + r"/limits/?$"), "limits"),
    ("PATCH", re.compile(_V + r"/composite/sobjects/?$"), "composite"),
    # Bulk API 2.0 (salesforce_bulk.py)
    ("POST", re.compile(_V + r"/jobs/ingest/?$"), "bulk_create"),
    ("PUT", re.compile(_V + r"/jobs/ingest/(?P<job>\w+)/batches/?$"), "bulk_upload"),
    ("PATCH", re.compile(_V + r"/jobs/ingest/(?P<job>\w+)/?$"), "bulk_state"),
    ("GET", re.compile(_V + r"/jobs/ingest/(?P<job>\w+)/?$"), "bulk_info"),
    ("GET", re.compile(_V + r"/jobs/ingest/(?P<job>\w+)/(?P<results>successfulResults|"
                       r"failedResults|unprocessedrecords)/?$"), "bulk_results"),
    ("POST", re.compile(_V + r"/jobs/query/?$"), "bulk_query_create"),
    ("GET", re.compile(_V + r"/jobs/query/(?P<job>\w+)/?$"), "bulk_query_info"),
    ("GET", re.compile(_V + r"/jobs/query/(?P<job>\w+)/results/?$"), "bulk_query_results"),
]
_SOAP_LOGIN = re.compile(r"/services/Soap/u/(?P<version>\d+\.\d)/?$")
ENDPOINT_OF = {"query": "salesforce.query", "query_more": "salesforce.query",
               "describe_global": "salesforce.describe", "describe": "salesforce.describe",
               "deleted": "salesforce.sobject", "sobject": "salesforce.sobject",
               "limits": "salesforce.limits", "composite": "salesforce.composite",
               **dict.fromkeys(("bulk_create", "bulk_upload", "bulk_state", "bulk_info",
                                "bulk_results"), INGEST_ENDPOINT),
               **dict.fromkeys(("bulk_query_create", "bulk_query_info", "bulk_query_results"),
                               QUERY_ENDPOINT)}
# Faults that answer 200 with a body a client must not take for the end of a read (see
# faults.py): no body, `{}`, or `done: false` without the `nextRecordsUrl` to go on with.
_BROKEN_ANSWERS = {"sf_empty_body", "sf_empty_object", "sf_no_locator"}


class SalesforceError(Exception):
    """An error answer in Salesforce's shape: a list of `{message, errorCode}`."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def response(self) -> Response:
        error: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            error["fields"] = self.fields
        return json_response(self.status, [error])


@dataclass
class _Cursor:
    """A server-side query cursor: the Ids of the result (set and order fixed when the query
    ran), not its rows, which are rendered when each batch is fetched."""

    user: str
    sobject: str
    fields: tuple[str, ...]
    ids: list[str]
    include_deleted: bool
    size: int
    used: float  # time.monotonic() of the query or the last batch fetched


class SalesforceApi:
    """Routes `/services/...` requests; one instance per sandbox."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_lock = threading.Lock()
        self._cursor_ids = itertools.count(1)
        self.bulk = BulkApi(state)

    # ---- the shared pipeline --------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        """Answer a Salesforce request, or None when the path is not a Salesforce route."""
        path = request.path.rstrip("/")
        if path == "/services/oauth2/token":
            return self._login("salesforce.token", lambda: answer_token(self.state, request))
        soap = _SOAP_LOGIN.match(request.path)
        if soap:
            version = soap.group("version")
            if version not in API_VERSIONS:
                return _not_found()
            return self._login("salesforce.token",
                               lambda: answer_soap_login(self.state, request, version))
        if path == "/services/data" and request.method == "GET":
            return self._versions(request)
        for method, pattern, name in _ROUTES:
            match = pattern.match(request.path)
            if match and request.method == method:
                if match.group("version") not in API_VERSIONS:
                    return _not_found()
                endpoint = ENDPOINT_OF[name]
                response = self._pipeline(endpoint, name, request, match.groupdict())
                self.state.counters.status(endpoint, response.status)
                return response
        if request.path.startswith("/services/"):
            return _not_found()
        return None

    def _login(self, endpoint: str, answer: Callable[[], Response]) -> Response:
        """A token or SOAP login request: counted, and open to drop and server-error faults."""
        fault = self.state.arrive(endpoint)
        if fault == "drop":
            response = Response(status=0, drop=True)
        elif fault in {"500", "503"}:
            response = json_response(int(fault), {"error": "server_error",
                                                  "error_description": "retry later"})
        else:
            response = answer()
        self.state.counters.status(endpoint, response.status)
        return response

    def _versions(self, request: Request) -> Response:
        """`GET /services/data/`: every API version the org serves (no session needed)."""
        return json_response(200, [
            {"label": f"v{version}", "url": f"/services/data/v{version}", "version": version}
            for version in API_VERSIONS
        ])

    def _pipeline(
        self, endpoint: str, name: str, request: Request, args: dict[str, str | None]
    ) -> Response:
        state = self.state
        fault = state.arrive(endpoint)
        if fault == "drop":
            return Response(status=0, drop=True)
        if fault == "session":
            state.expire_session(request.bearer_token())
        response = self._authorised(fault, name, request, args)
        if fault in _BROKEN_ANSWERS and response.status == 200 and name.startswith("query"):
            response = _broken_answer(fault, response)
        response.headers.append(("Sforce-Limit-Info", self._usage()))
        if fault == "slow" and state.fault_plan is not None:
            response.delay = state.fault_plan.spec.slow_seconds
        return response

    def _authorised(
        self, fault: str | None, name: str, request: Request, args: dict[str, str | None]
    ) -> Response:
        state = self.state
        if fault == "500":
            return SalesforceError(500, "UNKNOWN_EXCEPTION",
                                   "An unexpected error occurred. Please include this ErrorId "
                                   "if you contact support.").response()
        if fault == "503":
            return SalesforceError(503, "SERVER_UNAVAILABLE",
                                   "Server temporarily unavailable, retry later.").response()
        user = state.session_user(request.bearer_token())
        if user is None:
            return SalesforceError(401, "INVALID_SESSION_ID",
                                   "Session expired or invalid").response()
        if fault == "429":
            return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED",
                                   "ConcurrentPerOrgLongTxn Limit exceeded.").response()
        if not state.salesforce_daily.acquire():
            return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED",
                                   "TotalRequests Limit exceeded.").response()
        try:
            return self._call(name, request, args, user)
        except SalesforceError as exc:
            return exc.response()
        except BadJson as exc:
            return SalesforceError(400, "JSON_PARSER_ERROR", str(exc)).response()

    def _usage(self) -> str:
        daily = self.state.salesforce_daily
        return f"api-usage={daily.used}/{daily.limit}"

    def _call(
        self, name: str, request: Request, args: dict[str, str | None], user: str
    ) -> Response:
        version = str(args["version"])
        handlers: dict[str, Callable[[], Response]] = {
            "query": lambda: self.query(request, user, str(args["kind"]), version),
            "query_more": lambda: self.query_more(str(args["locator"]), str(args["kind"]),
                                                  version),
            "describe_global": lambda: self.describe_global(version),
            "describe": lambda: self.describe(_sobject(str(args["sobject"]))),
            "deleted": lambda: self.deleted(_sobject(str(args["sobject"])), request),
            "sobject": lambda: self.read(_sobject(str(args["sobject"])), str(args["id"]),
                                         request),
            "limits": self.limits,
            "composite": lambda: self.composite_update(request),
        }
        if name.startswith("bulk_"):
            return self.bulk.handle(name, request, args, version)
        return handlers[name]()

    # ---- query ----------------------------------------------------------------------------

    def query(self, request: Request, user: str, kind: str, version: str) -> Response:
        """Run SOQL: the first batch now; the Ids of the rest in a cursor (`nextRecordsUrl`)."""
        text = request.param("q")
        if not text:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            parsed = parse_soql(text)
        except SoqlError as exc:
            raise SalesforceError(400, exc.code, str(exc)) from None
        include_deleted = kind == "queryAll"
        size = min(_batch_size(request), self.state.limits.salesforce_query_batch)
        data = self.state.dataset
        with data.lock:
            records = [r for r in data.salesforce[parsed.sobject].values()
                       if (include_deleted or not r["IsDeleted"]) and parsed.matches(r)]
            if parsed.count:
                return self._count(len(records), parsed.limit)
            records = parsed.sort(records)
            if parsed.limit is not None:
                records = records[: parsed.limit]
            rows = [_row(parsed.sobject, r, parsed.fields) for r in records[:size]]
        ids = [r["Id"] for r in records]
        next_url = None
        if len(ids) > size:
            cursor = self._open_cursor(_Cursor(user, parsed.sobject, parsed.fields, ids,
                                               include_deleted, size, time.monotonic()))
            next_url = f"/services/data/v{version}/{kind}/{cursor}-{size}"
        return self._batch(rows, len(ids), next_url)

    def _count(self, matched: int, limit: int | None) -> Response:
        """`SELECT COUNT()`: the number in `totalSize`, no records, no cursor (as Salesforce)."""
        total = matched if limit is None else min(matched, limit)
        self.state.counters.returned("salesforce.query", 0)
        return json_response(200, {"totalSize": total, "done": True, "records": []})

    def query_more(self, locator: str, kind: str, version: str) -> Response:
        """The next batch of an earlier query, from its locator `01g…-OFFSET`, rendered from
        the data as it is now (rows deleted since are left out, unless queryAll)."""
        name, _, offset = locator.rpartition("-")
        cursor = self._use_cursor(name)
        if cursor is None or not offset.isdigit() or int(offset) >= len(cursor.ids):
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        start = int(offset)
        end = min(start + cursor.size, len(cursor.ids))
        data = self.state.dataset
        with data.lock:
            stored = data.salesforce[cursor.sobject]
            current = (stored.get(record_id) for record_id in cursor.ids[start:end])
            rows = [_row(cursor.sobject, r, cursor.fields) for r in current
                    if r is not None and (cursor.include_deleted or not r["IsDeleted"])]
        next_url = None
        if end < len(cursor.ids):
            next_url = f"/services/data/v{version}/{kind}/{name}-{end}"
        else:
            self._close_cursor(name)  # read to its end: the cursor no longer counts
        return self._batch(rows, len(cursor.ids), next_url)

    def _batch(self, rows: list[dict[str, Any]], total: int, next_url: str | None) -> Response:
        payload: dict[str, Any] = {"totalSize": total, "done": next_url is None,
                                   "records": rows}
        if next_url is not None:
            payload["nextRecordsUrl"] = next_url
        self.state.counters.returned("salesforce.query", len(rows))
        return json_response(200, payload)

    def _open_cursor(self, cursor: _Cursor) -> str:
        """Keep a cursor; the user's oldest is released when they would hold more than ten,
        and cursors idle past the expiry are forgotten."""
        name = f"01gDn{next(self._cursor_ids):010d}AAA"
        with self._cursor_lock:
            self._forget_idle(cursor.used)
            self._cursors[name] = cursor
            held = [key for key, held in self._cursors.items() if held.user == cursor.user]
            for key in held[: max(0, len(held) - CURSORS_PER_USER)]:
                del self._cursors[key]
        return name

    def _use_cursor(self, name: str) -> _Cursor | None:
        """The live cursor of that name (its idle time restarts), or None: unknown, released,
        or idle too long."""
        now = time.monotonic()
        with self._cursor_lock:
            self._forget_idle(now)
            cursor = self._cursors.get(name)
            if cursor is not None:
                cursor.used = now
            return cursor

    def _close_cursor(self, name: str) -> None:
        with self._cursor_lock:
            self._cursors.pop(name, None)

    def _forget_idle(self, now: float) -> None:
        idle = self.state.limits.cursor_idle_seconds
        for key in [k for k, c in self._cursors.items() if now - c.used > idle]:
            del self._cursors[key]

    # ---- describe, read, deleted, limits --------------------------------------------------

    def describe_global(self, version: str) -> Response:
        """`GET sobjects`: the objects of the org (REST API Developer Guide, Describe Global)."""
        self.state.counters.returned("salesforce.describe", len(SALESFORCE_FIELDS))
        return json_response(200, {"encoding": "UTF-8", "maxBatchSize": COMPOSITE_MAX,
                                   "sobjects": [_global_entry(s, version)
                                                for s in SALESFORCE_FIELDS]})

    def describe(self, sobject: str) -> Response:
        """`GET sobjects/{S}/describe`: fields with types and picklist values."""
        fields = [_describe_field(f) for f in SALESFORCE_FIELDS[sobject].values()]
        self.state.counters.returned("salesforce.describe", 1)
        return json_response(200, {
            "name": sobject, "label": sobject, "labelPlural": sobject + "s",
            "keyPrefix": SALESFORCE_KEY_PREFIXES[sobject], "custom": False,
            "createable": True, "updateable": True, "queryable": True, "deletable": True,
            "fields": fields,
            "urls": {"describe": f"/services/data/v{API_VERSION}/sobjects/{sobject}/describe"},
        })

    def read(self, sobject: str, record_id: str, request: Request) -> Response:
        """`GET sobjects/{S}/{id}`: one record, all fields or `?fields=`."""
        data = self.state.dataset
        with data.lock:
            record = data.find_salesforce(sobject, record_id)
            if record is None or record["IsDeleted"]:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            names = tuple(request.params("fields")) or tuple(SALESFORCE_FIELDS[sobject])
            row = _row(sobject, record, names)
        self.state.counters.returned("salesforce.sobject", 1)
        return json_response(200, row)

    def deleted(self, sobject: str, request: Request) -> Response:
        """`GET sobjects/{S}/deleted/?start=&end=`: Ids deleted in the timespan, with when.

        REST API Developer Guide, "sObject Get Deleted": start and end are UTC ISO 8601, "The
        API ignores the seconds portion of the specified dateTime value"; the answer is
        `{deletedRecords: [{id, deletedDate}], earliestDateAvailable, latestDateCovered}`, for
        no more than 15 days back. A deleted record's SystemModstamp is its deletion time.
        """
        start = _replication_date(request.param("start"), "start")
        end = _replication_date(request.param("end"), "end")
        data = self.state.dataset
        now = data.clock.now()
        earliest = (now - timedelta(days=DELETED_LOG_DAYS)).replace(second=0, microsecond=0)
        if start >= end or start < earliest:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                                  f"start must precede end and be on or after {earliest}")
        covered = min(end, now)
        with data.lock:
            gone = sorted(
                (r["SystemModstamp"], r["Id"]) for r in data.salesforce[sobject].values()
                if r["IsDeleted"]
                and sf_datetime(start) <= r["SystemModstamp"] < sf_datetime(covered)
            )
        self.state.counters.returned("salesforce.sobject", len(gone))
        return json_response(200, {
            "deletedRecords": [{"id": i, "deletedDate": stamp} for stamp, i in gone],
            "earliestDateAvailable": sf_datetime(earliest),
            "latestDateCovered": sf_datetime(covered),
        })

    def limits(self) -> Response:
        """`GET /limits`: every allocation as `{Max, Remaining}` (REST API Developer Guide,
        Limits); only the daily API requests are counted, the others stay full."""
        daily = self.state.salesforce_daily
        answer = {name: {"Max": most, "Remaining": most} for name, most in _OTHER_LIMITS}
        answer["DailyApiRequests"] = {"Max": daily.limit, "Remaining": daily.remaining()}
        bulk = self.state.salesforce_bulk  # Bulk API 2.0 use (salesforce_bulk.py)
        for name, used in (("DailyBulkApiBatches", bulk.batches),
                           ("DailyBulkV2QueryJobs", bulk.query_jobs)):
            answer[name]["Remaining"] = max(0, answer[name]["Max"] - used)
        return json_response(200, dict(sorted(answer.items())))

    # ---- writes ---------------------------------------------------------------------------

    def composite_update(self, request: Request) -> Response:
        """`PATCH /composite/sobjects`: per-record results in request order.

        Failed records carry no `id` (as in Salesforce), so clients match results to their
        input by position. With allOrNone nothing is written when any record fails.

        The org's configuration (`SalesforceWriteRules`) applies after validation, as in
        Salesforce's order of execution: duplicate rules per record, then automation whose
        governor limits fail every record of a collection that is too large.
        """
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "expected {allOrNone, records}")
        records = body["records"]
        if len(records) > COMPOSITE_MAX:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot "
                                  f"submit more than {COMPOSITE_MAX} records into this call")
        all_or_none = bool(body.get("allOrNone", False))
        plan = self.state.fault_plan
        locked = [a or b for a, b in zip(
            plan.record_faults("salesforce.composite", "lock", len(records)),
            plan.record_faults("salesforce.composite", "partial", len(records)), strict=True,
        )] if plan else [False] * len(records)
        rules = self.state.salesforce_writes
        data = self.state.dataset
        with data.lock:
            checked = [_check_update(data, item, locked[i]) for i, item in enumerate(records)]
            if rules.duplicate_rule and not _allows_duplicate_save(request):
                checked = _with_duplicate_alerts(data, records, checked)
            failed = any(errors for _, _, errors in checked)
            saving = any(not errors for _, _, errors in checked)
            over_limit = rules.automation_max_batch is not None and saving and \
                len(records) > rules.automation_max_batch
            if over_limit:
                results = [_governor_failure(records[0]) for _ in records]
            elif all_or_none and failed:
                results = [_rolled_back(record_id, errors) for record_id, _, errors in checked]
            else:
                moment = data.clock.now()
                results = []
                for (record_id, target, errors), item in zip(checked, records, strict=True):
                    if errors:
                        results.append({"success": False, "errors": errors})
                        continue
                    _apply(data, target, item, moment)
                    results.append({"id": record_id, "success": True, "errors": []})
        written = sum(1 for r in results if r["success"])
        self.state.counters.written("salesforce.composite", written)
        return json_response(200, results)


# ---- helpers --------------------------------------------------------------------------------

# The usual /limits keys of an Enterprise org and their allocations (REST API Developer Guide,
# "List Org Limits"; values as a new Enterprise org reports them).
_OTHER_LIMITS = (
    ("ConcurrentAsyncGetReportInstances", 200),
    ("ConcurrentSyncReportRuns", 20),
    ("DailyAsyncApexExecutions", 250_000),
    ("DailyBulkApiBatches", 15_000),
    ("DailyBulkV2QueryFileStorageMB", 976_562),
    ("DailyBulkV2QueryJobs", 10_000),
    ("DailyDurableStreamingApiEvents", 10_000),
    ("DailyGenericStreamingApiEvents", 10_000),
    ("DailyStreamingApiEvents", 10_000),
    ("DailyWorkflowEmails", 1_000),
    ("DataStorageMB", 1_024),
    ("FileStorageMB", 1_024),
    ("HourlyAsyncReportRuns", 1_200),
    ("HourlyDashboardRefreshes", 200),
    ("HourlyODataCallout", 10_000),
    ("HourlySyncReportRuns", 500),
    ("HourlyTimeBasedWorkflow", 1_000),
    ("MassEmail", 5_000),
    ("SingleEmail", 5_000),
    ("StreamingApiConcurrentClients", 1_000),
)


def _not_found() -> Response:
    return SalesforceError(404, "NOT_FOUND", "The requested resource does not exist").response()


def _broken_answer(fault: str, response: Response) -> Response:
    """A 200 that is no usable query answer (the sf_* fault kinds): what a truncating proxy
    or a server bug may hand a client mid-read."""
    if fault == "sf_empty_body":
        return Response(status=200, body=b"")
    if fault == "sf_empty_object":
        return json_response(200, {})
    payload = json.loads(response.body)
    payload.pop("nextRecordsUrl", None)
    payload["done"] = False
    return json_response(200, payload)


def _replication_date(value: str | None, name: str) -> datetime:
    """A `start`/`end` parameter of sObject Get Deleted, seconds ignored."""
    if not value:
        raise SalesforceError(400, "MISSING_ARGUMENT", f"{name} must be specified")
    try:
        moment = parse_instant(value)
    except ValueError:
        raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                              f"{name}: not an ISO 8601 date and time: {value}") from None
    return moment.replace(second=0, microsecond=0)


def _global_entry(sobject: str, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{sobject}"
    return {
        "name": sobject, "label": sobject, "labelPlural": sobject + "s",
        "keyPrefix": SALESFORCE_KEY_PREFIXES[sobject], "custom": False, "queryable": True,
        "createable": True, "updateable": True, "deletable": True, "retrieveable": True,
        "searchable": True, "replicateable": True,
        "urls": {"sobject": base, "describe": base + "/describe",
                 "rowTemplate": base + "/{ID}"},
    }


def _sobject(name: str) -> str:
    found = next((s for s in SALESFORCE_FIELDS if s.lower() == name.lower()), None)
    if found is None:
        raise SalesforceError(404, "NOT_FOUND", f"The requested resource does not exist: {name}")
    return found


def _batch_size(request: Request) -> int:
    """`Sforce-Query-Options: batchSize=N` (200..2000), else 2,000."""
    options = request.headers.get("Sforce-Query-Options") or ""
    match = re.search(r"batchSize=(\d+)", options)
    if not match:
        return QUERY_BATCH
    return max(200, min(QUERY_BATCH, int(match.group(1))))


def _row(sobject: str, record: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {"attributes": {
        "type": sobject, "url": f"/services/data/v{API_VERSION}/sobjects/{sobject}/{record['Id']}",
    }}
    for name in names:
        row[name] = record.get(name)
    return row


def _describe_field(spec: SalesforceField) -> dict[str, Any]:
    soap = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
            "double": "xsd:double", "currency": "xsd:double", "date": "xsd:date",
            "datetime": "xsd:dateTime"}.get(spec.type, "xsd:string")
    return {
        "name": spec.name,
        "label": spec.label or spec.name,
        "type": spec.type,
        "soapType": soap,
        "length": 255 if soap == "xsd:string" else 0,
        "custom": spec.custom,
        "updateable": spec.updateable,
        "createable": spec.updateable,
        "nillable": spec.nillable,
        "calculated": False,
        "unique": False,
        "externalId": False,
        "defaultedOnCreate": spec.type == "boolean",
        "restrictedPicklist": spec.restricted,
        "referenceTo": list(spec.reference_to),
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": o.label, "validFor": None,
             "value": o.value}
            for o in spec.picklist
        ],
    }


def _error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


def _check_update(
    data: Dataset, item: Any, locked: bool
) -> tuple[str | None, dict[str, Any] | None, list[dict[str, Any]]]:
    """Validate one record of a composite update: (id, stored record, errors)."""
    if not isinstance(item, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "each record must be an object")
    sobject = (item.get("attributes") or {}).get("type")
    if sobject not in SALESFORCE_FIELDS:
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
    unknown = [k for k in item if k not in {"attributes", "id", "Id"}
               and k not in SALESFORCE_FIELDS[sobject]]
    if unknown:
        # The whole request fails and nothing is written: `400 [{"errorCode": "INVALID_FIELD",
        # "message": "No such column 'X' on sobject of type Lead", "fields": [...]}]`, for a
        # field that does not exist and for one the user's field-level security hides alike.
        raise SalesforceError(400, "INVALID_FIELD",
                              f"No such column '{unknown[0]}' on sobject of type {sobject}",
                              fields=unknown[:1])
    record_id = item.get("id") or item.get("Id")
    if not record_id:
        return None, None, [_error("MISSING_ARGUMENT", "Id not specified in an update call")]
    if not re.fullmatch(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?", str(record_id)) or \
            data.salesforce_sobject_of(record_id) != sobject:
        return None, None, [_error("MALFORMED_ID", f"malformed id {record_id}")]
    record = data.find_salesforce(sobject, record_id)
    if record is None:
        return None, None, [_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]
    full_id = record["Id"]
    if record["IsDeleted"]:
        return full_id, None, [_error("ENTITY_IS_DELETED", "entity is deleted")]
    if sobject == "Lead" and record["IsConverted"]:
        return full_id, None, [_error("CANNOT_UPDATE_CONVERTED_LEAD",
                                      "cannot reference converted lead")]
    errors = _field_errors(sobject, item)
    if not errors and locked:
        errors = [_error("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this "
                         f"record or 1 records: {full_id}")]
    return full_id, record, errors


def _field_errors(sobject: str, item: dict[str, Any]) -> list[dict[str, Any]]:
    errors = []
    fields = SALESFORCE_FIELDS[sobject]
    read_only = [k for k in item if k in fields and not fields[k].updateable and k != "Id"]
    if read_only:
        errors.append(_error(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(read_only)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set.", read_only))
    for name, value in item.items():
        spec = fields.get(name)
        if spec is None or not spec.updateable:
            continue
        problem = _value_error(spec, value)
        if problem is not None:
            errors.append(problem)
    return errors


def _value_error(spec: SalesforceField, value: Any) -> dict[str, Any] | None:
    if spec.type == "picklist" and spec.restricted:
        allowed = {o.value for o in spec.picklist}
        if value not in allowed and not (value is None and spec.nillable):
            return _error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                          f"{spec.label}: bad value for restricted picklist field: {value}",
                          [spec.name])
        return None
    if value is None:
        if spec.nillable:
            return None
        return _error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{spec.name}]",
                      [spec.name])
    if not _type_ok(spec, value):
        return _error("INVALID_TYPE_ON_FIELD_IN_RECORD",
                      f"{spec.label}: value not of required type: {value}", [spec.name])
    return None


def _type_ok(spec: SalesforceField, value: Any) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "boolean": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "currency": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "date": lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) is not None,
        "datetime": lambda v: isinstance(v, str) and _parses(v),
        "reference": lambda v: isinstance(v, str) and len(v) in {15, 18},
    }
    check = checks.get(spec.type, lambda v: isinstance(v, str))
    return check(value)


def _parses(value: str) -> bool:
    try:
        parse_instant(value)
    except ValueError:
        return False
    return True


# ---- org configuration: duplicate rules and automation ---------------------------------------

# Duplicate rules run on Lead and Contact saves (updates included) in every new org: the
# standard Lead and Contact rules are active with "Allow" + "Alert" (afawcett/apex-sobject
# dataloader#26: "Since Spring'17 the Standard Lead Duplicate Rule is active in newly created
# orgs"). The REST "Duplicate Rule Header" (API 52.0+; REST API Developer Guide, Duplicate
# Rule Header) decides: "The default value for all fields is false. allowSave: false—don't
# allow the user to acknowledge the alert or save the duplicate record". The standard
# matching rules compare names, e-mails and companies; the sandbox matches on the e-mail
# alone (case-insensitive), across live Leads and Contacts. A converted Lead is not matched:
# it is the read-only history of the Contact it became.
DUPLICATE_RULE_OBJECTS = ("Lead", "Contact")
DUPLICATE_RULE_HEADER = "Sforce-Duplicate-Rule-Header"


def _allows_duplicate_save(request: Request) -> bool:
    """`Sforce-Duplicate-Rule-Header: allowSave=true; ...` (each field defaults to false)."""
    header = request.headers.get(DUPLICATE_RULE_HEADER) or ""
    for part in header.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "allowsave":
            return value.strip().lower() == "true"
    return False


def _with_duplicate_alerts(
    data: Dataset,
    records: list[Any],
    checked: list[tuple[str | None, dict[str, Any] | None, list[dict[str, Any]]]],
) -> list[tuple[str | None, dict[str, Any] | None, list[dict[str, Any]]]]:
    """`checked` with DUPLICATES_DETECTED for each valid Lead or Contact update whose e-mail
    (as it would be saved) another live Lead or Contact has."""
    if not any(item["attributes"]["type"] in DUPLICATE_RULE_OBJECTS for item in records):
        return checked
    index = _people_by_email(data)
    alerted = []
    for (record_id, target, errors), item in zip(checked, records, strict=True):
        sobject = item["attributes"]["type"]
        if errors or target is None or sobject not in DUPLICATE_RULE_OBJECTS:
            alerted.append((record_id, target, errors))
            continue
        email = item["Email"] if "Email" in item else target.get("Email")
        matches = [m for m in index.get(_email_key(email), ()) if m[1] != record_id]
        alerted.append((record_id, target, [_duplicates_detected(sobject, matches)]
                        if matches else errors))
    return alerted


def _people_by_email(data: Dataset) -> dict[str, list[tuple[str, str]]]:
    """Live, unconverted Leads and live Contacts by lower-cased e-mail: (sObject, Id)."""
    index: dict[str, list[tuple[str, str]]] = {}
    for sobject in DUPLICATE_RULE_OBJECTS:
        for record in data.salesforce[sobject].values():
            key = _email_key(record.get("Email"))
            if key and not record["IsDeleted"] and not record.get("IsConverted"):
                index.setdefault(key, []).append((sobject, record["Id"]))
    return index


def _email_key(email: Any) -> str:
    return email.strip().lower() if isinstance(email, str) else ""


def _duplicates_detected(sobject: str, matches: list[tuple[str, str]]) -> dict[str, Any]:
    """The per-record error of an alerting duplicate rule, in Salesforce's shape: statusCode,
    message "Use one of these records?" and a `duplicateResult` naming the matched records."""
    by_type: dict[str, list[str]] = {}
    for match_type, match_id in matches:
        by_type.setdefault(match_type, []).append(match_id)
    return {
        **_error("DUPLICATES_DETECTED", "Use one of these records?"),
        "duplicateResult": {
            "allowSave": True,
            "duplicateRule": f"Standard_{sobject}_Duplicate_Rule",
            "duplicateRuleEntityType": sobject,
            "errorMessage": "You're creating a duplicate record. We recommend you use an "
                            "existing record instead.",
            "matchResults": [
                {"entityType": match_type, "errors": [], "matchEngine": "ExactMatchEngine",
                 "matchRecords": [
                     {"additionalInformation": [], "fieldDiffs": [], "matchConfidence": 100.0,
                      "record": {"attributes": {
                          "type": match_type,
                          "url": f"/services/data/v{API_VERSION}/sobjects/{match_type}/{i}"},
                          "Id": i}}
                     for i in ids],
                 "rule": f"Standard_{match_type}_Match_Rule_v1_1", "size": len(ids),
                 "success": True}
                for match_type, ids in by_type.items()
            ],
        },
    }


def _governor_failure(item: Any) -> dict[str, Any]:
    """What every record of a collection answers when the org's triggers and flows exceed a
    governor limit: all records of one collection run in one transaction, and a
    LimitException cannot be caught, so the whole chunk fails (practitioners lower the batch
    size: roblesterjr04/EloquentSalesForce#70, SFDO-Community/declarative-lookup-rollup-
    summaries#753)."""
    sobject = item["attributes"]["type"]
    return {"success": False, "errors": [_error(
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
        f"{sobject}Automation: System.LimitException: Apex CPU time limit exceeded")]}


def _rolled_back(
    record_id: str | None, errors: list[dict[str, Any]]
) -> dict[str, Any]:
    if errors:
        return {"success": False, "errors": errors}
    return {"id": record_id, "success": False, "errors": [_error(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using "
        "AllOrNone header")]}


def _apply(data: Dataset, record: Any, item: dict[str, Any], moment: datetime) -> None:
    """Write the fields and bump LastModifiedDate/SystemModstamp (Salesforce bumps on any
    update, even one that changes no value)."""
    sobject = item["attributes"]["type"]
    for name, value in item.items():
        if name in SALESFORCE_FIELDS[sobject] and name != "Id":
            record[name] = value
    if sobject == "Opportunity" and "StageName" in item:
        record["IsClosed"] = str(item["StageName"]).startswith("Closed")
        record["IsWon"] = item["StageName"] == "Closed Won"
    data.bump_salesforce(sobject, record, moment)
