"""The emulated Salesforce REST API (v59.0): OAuth token, query/queryAll (2,000-record
batches, and SELECT COUNT()), describe, limits and sObject Collections updates, with
Salesforce's error shapes.

Every API response carries `Sforce-Limit-Info: api-usage=N/M`; requests beyond the daily
allocation answer 403 REQUEST_LIMIT_EXCEEDED, wrong or expired tokens 401 INVALID_SESSION_ID.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from connector.sandbox._http import BadJson, Request, Response, json_response
from connector.sandbox._state import SandboxState
from connector.sandbox.schema import SALESFORCE_FIELDS, SALESFORCE_KEY_PREFIXES, SalesforceField
from connector.sandbox.soql import SoqlError, parse_soql
from connector.sandbox.store import Dataset, parse_instant

__all__ = ["SalesforceApi"]

API_VERSION = "59.0"
QUERY_BATCH = 2_000
COMPOSITE_MAX = 200
CURSORS_KEPT = 200
_V = r"/services/data/v(?P<version>\d+\.\d)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(_V + r"/(?P<kind>query|queryAll)/?$"), "query"),
    ("GET", re.compile(_V + r"/(?P<kind>query|queryAll)/(?P<locator>[^/]+)/?$"), "query_more"),
    ("GET", re.compile(_V + r"/sobjects/(?P<sobject>\w+)/describe/?$"), "describe"),
    ("GET", re.compile(_V + r"/sobjects/(?P<sobject>\w+)/(?P<id>\w{15,18})/?$"), "sobject"),
    ("GET", re.compile(_V + r"/limits/?$"), "limits"),
    ("PATCH", re.compile(_V + r"/composite/sobjects/?$"), "composite"),
]
ENDPOINT_OF = {"query": "salesforce.query", "query_more": "salesforce.query",
               "describe": "salesforce.describe", "sobject": "salesforce.sobject",
               "limits": "salesforce.limits", "composite": "salesforce.composite"}


class SalesforceError(Exception):
    """An error answer in Salesforce's shape: a list of `{message, errorCode}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        return json_response(self.status, [{"message": self.message, "errorCode": self.code}])


class SalesforceApi:
    """Routes `/services/...` requests; one instance per sandbox."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._cursors: OrderedDict[str, tuple[int, list[dict[str, Any]]]] = OrderedDict()
        self._cursor_lock = threading.Lock()
        self._cursor_ids = itertools.count(1)

    # ---- the shared pipeline --------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        """Answer a Salesforce request, or None when the path is not a Salesforce route."""
        if request.path.rstrip("/") == "/services/oauth2/token":
            response = self._token(request)
            self.state.counters.status("salesforce.token", response.status)
            return response
        for method, pattern, name in _ROUTES:
            match = pattern.match(request.path)
            if match and request.method == method:
                endpoint = ENDPOINT_OF[name]
                response = self._pipeline(endpoint, name, request, match.groupdict())
                self.state.counters.status(endpoint, response.status)
                return response
        if request.path.startswith("/services/"):
            return SalesforceError(404, "NOT_FOUND",
                                   "The requested resource does not exist").response()
        return None

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
        if not state.session_valid(request.bearer_token()):
            return SalesforceError(401, "INVALID_SESSION_ID",
                                   "Session expired or invalid").response()
        if fault == "429":
            return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED",
                                   "ConcurrentPerOrgLongTxn Limit exceeded.").response()
        if not state.salesforce_daily.acquire():
            return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED",
                                   "TotalRequests Limit exceeded.").response()
        try:
            return self._call(name, request, args)
        except SalesforceError as exc:
            return exc.response()
        except BadJson as exc:
            return SalesforceError(400, "JSON_PARSER_ERROR", str(exc)).response()

    def _usage(self) -> str:
        daily = self.state.salesforce_daily
        return f"api-usage={daily.used}/{daily.limit}"

    def _call(self, name: str, request: Request, args: dict[str, str | None]) -> Response:
        handlers: dict[str, Callable[[], Response]] = {
            "query": lambda: self.query(request, include_deleted=args["kind"] == "queryAll"),
            "query_more": lambda: self.query_more(str(args["locator"]), str(args["version"])),
            "describe": lambda: self.describe(_sobject(str(args["sobject"]))),
            "sobject": lambda: self.read(_sobject(str(args["sobject"])), str(args["id"]),
                                         request),
            "limits": self.limits,
            "composite": lambda: self.composite_update(request),
        }
        return handlers[name]()

    # ---- OAuth ----------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        """`POST /services/oauth2/token`, client-credentials grant (form-encoded)."""
        state = self.state
        fault = state.arrive("salesforce.token")
        if fault == "drop":
            return Response(status=0, drop=True)
        if fault in {"500", "503"}:
            return json_response(int(fault), {"error": "server_error",
                                              "error_description": "retry later"})
        if request.method != "POST":
            return json_response(405, {"error": "invalid_request",
                                       "error_description": "must use HTTP POST"})
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return json_response(400, {"error": "unsupported_grant_type",
                                       "error_description": "grant type not supported"})
        if (form.get("client_id") != state.salesforce_client_id
                or form.get("client_secret") != state.salesforce_client_secret):
            return json_response(400, {"error": "invalid_client",
                                       "error_description": "invalid client credentials"})
        token = state.open_session()
        host = request.headers.get("Host") or ""
        issued = str(int(datetime.now().timestamp() * 1000))
        return json_response(200, {
            "access_token": token,
            "instance_url": f"https://{host}",
            "id": f"https://{host}/id/00DDn0000000sbxMAA/005Dn0000000sbxIAA",
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": "c2FuZGJveA==",
            "scope": "api",
        })

    # ---- query ----------------------------------------------------------------------------

    def query(self, request: Request, *, include_deleted: bool) -> Response:
        """Run SOQL; the first batch now, the rest from a snapshot cursor (`nextRecordsUrl`)."""
        text = request.param("q")
        if not text:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            parsed = parse_soql(text)
        except SoqlError as exc:
            raise SalesforceError(400, exc.code, str(exc)) from None
        data = self.state.dataset
        with data.lock:
            records = [r for r in data.salesforce[parsed.sobject].values()
                       if (include_deleted or not r["IsDeleted"]) and parsed.matches(r)]
            if parsed.count:
                return self._count(len(records), parsed.limit)
            records = parsed.sort(records)
            if parsed.limit is not None:
                records = records[: parsed.limit]
            rows = [_row(parsed.sobject, r, parsed.fields) for r in records]
        return self._page(rows, 0, _batch_size(request), new_cursor=True)

    def _count(self, matched: int, limit: int | None) -> Response:
        """`SELECT COUNT()`: the number in `totalSize`, no records, no cursor (as Salesforce)."""
        total = matched if limit is None else min(matched, limit)
        self.state.counters.returned("salesforce.query", 0)
        return json_response(200, {"totalSize": total, "done": True, "records": []})

    def query_more(self, locator: str, version: str) -> Response:
        """The next batch of an earlier query, from its locator `01g…-OFFSET`."""
        cursor, _, offset = locator.rpartition("-")
        with self._cursor_lock:
            entry = self._cursors.get(cursor)
        if entry is None or not offset.isdigit():
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        size, rows = entry
        return self._page(rows, int(offset), size, cursor=cursor, version=version)

    def _page(
        self, rows: list[dict[str, Any]], offset: int, size: int, *, new_cursor: bool = False,
        cursor: str | None = None, version: str = API_VERSION,
    ) -> Response:
        end = min(offset + size, len(rows))
        payload: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows),
                                   "records": rows[offset:end]}
        if end < len(rows):
            if new_cursor:
                cursor = self._remember(rows, size)
            payload["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{end}"
        self.state.counters.returned("salesforce.query", end - offset)
        return json_response(200, payload)

    def _remember(self, rows: list[dict[str, Any]], size: int) -> str:
        cursor = f"01gDn{next(self._cursor_ids):010d}AAA"
        with self._cursor_lock:
            self._cursors[cursor] = (size, rows)
            while len(self._cursors) > CURSORS_KEPT:
                self._cursors.popitem(last=False)
        return cursor

    # ---- describe, read, limits -----------------------------------------------------------

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

    def limits(self) -> Response:
        """`GET /limits`: the daily API allocation (and a few others clients look at)."""
        daily = self.state.salesforce_daily
        return json_response(200, {
            "DailyApiRequests": {"Max": daily.limit, "Remaining": daily.remaining()},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "ConcurrentSyncLongRunningRequests": {"Max": 10, "Remaining": 10},
        })

    # ---- writes ---------------------------------------------------------------------------

    def composite_update(self, request: Request) -> Response:
        """`PATCH /composite/sobjects`: per-record results in request order.

        Failed records carry no `id` (as in Salesforce), so clients match results to their
        input by position. With allOrNone nothing is written when any record fails.
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
        data = self.state.dataset
        with data.lock:
            checked = [_check_update(data, item, locked[i]) for i, item in enumerate(records)]
            failed = any(errors for _, _, errors in checked)
            if all_or_none and failed:
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
        raise SalesforceError(400, "INVALID_FIELD",
                              f"No such column '{unknown[0]}' on sobject of type {sobject}")
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
