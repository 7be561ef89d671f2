"""The emulated HubSpot CRM API: objects v3 (list, read, search, batch), associations v4,
properties v3 (read, and create as HubSpot validates it), with HubSpot's limits and
error shapes.

List and read-by-id answer `associations=` inline, as HubSpot does; search and batch read
have no such parameter (their request and response models carry no associations).

Every handler returns a `Response`; the pipeline in `HubSpotApi.handle` adds what all
endpoints share: fault injection, the bearer-token check, rate limits and their headers.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from connector.sandbox._http import BadJson, Request, Response, correlation_id, json_response
from connector.sandbox._state import SandboxState
from connector.sandbox.schema import (
    HUBSPOT_MODIFIED_PROPERTY,
    LIFECYCLE_ORDER,
    HubSpotPortal,
    HubSpotProperty,
    Option,
    hubspot_property,
)
from connector.sandbox.store import hs_datetime, parse_instant

__all__ = ["HubSpotApi"]

LIST_MAX = 100
SEARCH_MAX = 200
SEARCH_CAP = 10_000
BATCH_MAX = 100
ASSOCIATIONS_MAX = 1_000
# Inline associations (list and read `associations=`) page at 100 rows per record and type: the
# rest is behind `paging.next.after`, one cursor per record. HubSpot's changelog, "Announcing a
# change to how v3 CRM APIs return association data" (2020-10; live 2021-01-18).
INLINE_ASSOCIATIONS_MAX = 100
MAX_FILTER_GROUPS = 5
MAX_FILTERS = 18
TYPE_ALIASES = {
    "contacts": "contacts", "contact": "contacts", "0-1": "contacts",
    "companies": "companies", "company": "companies", "0-2": "companies",
    "deals": "deals", "deal": "deals", "0-3": "deals",
}
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                 "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage",
              "hs_lastmodifieddate", "hs_object_id", "pipeline"),
}
# (from, to) -> (unlabelled type id, primary type id or None), HUBSPOT_DEFINED.
ASSOCIATION_TYPE_IDS = {
    ("contacts", "companies"): (279, 1), ("companies", "contacts"): (280, 2),
    ("deals", "contacts"): (3, None), ("contacts", "deals"): (4, None),
    ("deals", "companies"): (341, 5), ("companies", "deals"): (342, 6),
}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}
# Property `type` -> the `fieldType`s HubSpot accepts with it: "Property type and fieldType
# values", https://developers.hubspot.com/docs/api/crm/properties ("When creating or updating
# properties, both type and fieldType values are required"). phone_number and the html and
# phonenumber field types are the newer API's additions.
PROPERTY_FIELD_TYPES = {
    "bool": ("booleancheckbox", "calculation_equation"),
    "enumeration": ("booleancheckbox", "checkbox", "radio", "select", "calculation_equation"),
    "date": ("date",),
    "datetime": ("date",),
    "string": ("file", "text", "textarea", "calculation_equation", "html", "phonenumber"),
    "number": ("number", "calculation_equation"),
    "phone_number": ("phonenumber",),
}
# Fields a create request must carry (the same page, "Create a property").
PROPERTY_REQUIRED = ("name", "label", "type", "fieldType", "groupName")
SANDBOX_PORTAL_ID = 24_000_001

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/?$"), "list"),
    ("POST", re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/search/?$"), "search"),
    ("POST", re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/batch/read/?$"), "batch_read"),
    ("POST", re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/batch/update/?$"), "batch_update"),
    ("POST", re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/merge/?$"), "merge"),
    ("GET", re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/(?P<id>[^/]+)/?$"), "read"),
    ("POST", re.compile(r"^/crm/v4/associations/(?P<type>[^/]+)/(?P<to>[^/]+)/batch/read/?$"),
     "associations"),
    ("GET", re.compile(r"^/crm/v3/properties/(?P<type>[^/]+)(?:/(?P<name>[^/]+))?/?$"),
     "properties"),
    ("POST", re.compile(r"^/crm/v3/properties/(?P<type>[^/]+)/?$"), "create_property"),
    # /crm/v3/schemas is the documented path; hubspot-api-client calls the older alias.
    ("GET", re.compile(r"^/crm(?:-object-schemas)?/v3/schemas/?$"), "schemas"),
]
# Standard object types the sandbox holds no records of. Clients (and tools pointed at the
# sandbox) ask for their properties; a portal answers 200 with HubSpot's default properties
# (or 403 without the scope), never 400. Object type ids: HubSpot's "Understanding the CRM"
# guide, object type IDs table.
OTHER_STANDARD_TYPES = {
    "tickets": "0-5", "products": "0-7", "line_items": "0-8", "quotes": "0-14",
    "calls": "0-48", "emails": "0-49", "meetings": "0-47", "notes": "0-46", "tasks": "0-27",
}


class HubSpotError(Exception):
    """An error answer in HubSpot's shape: status, category, message, optional details."""

    def __init__(
        self, status: int, category: str, message: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = errors or []

    def response(self) -> Response:
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
        }
        if self.errors:
            body["errors"] = self.errors
        return json_response(self.status, body)


def _validation(message: str) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message)


class HubSpotApi:
    """Routes `/crm/...` requests; one instance per sandbox."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._search_cache: OrderedDict[tuple[Any, ...], list[dict[str, Any]]] = OrderedDict()

    # ---- the shared pipeline --------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        """Answer a HubSpot request, or None when the path is not a HubSpot route."""
        for method, pattern, name in _ROUTES:
            match = pattern.match(request.path)
            if match and request.method == method:
                endpoint = f"hubspot.{name}"
                args = {k: unquote(v) if v else v for k, v in match.groupdict().items()}
                response = self._pipeline(endpoint, name, request, args)
                self.state.counters.status(endpoint, response.status)
                return response
        if request.path.startswith("/crm/"):
            return HubSpotError(404, "OBJECT_NOT_FOUND", f"No route for {request.path}").response()
        return None

    def _pipeline(
        self, endpoint: str, name: str, request: Request, args: dict[str, str | None]
    ) -> Response:
        state = self.state
        fault = state.arrive(endpoint)
        if fault == "drop":
            return Response(status=0, drop=True)
        if fault in {"500", "503"}:
            status = int(fault)
            category = "INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE"
            return HubSpotError(status, category, "The server failed; retry later.").response()
        if request.bearer_token() != state.hubspot_access_token:
            return _authentication_error()
        is_search = name == "search"
        if fault == "429":
            return _rate_limited("TEN_SECONDLY_ROLLING", self._headers(is_search, remaining=0))
        limited = self._take_rate_limit(is_search)
        if isinstance(limited, Response):
            return limited
        missing = self._missing_scopes(name, args)
        if missing:
            response = _missing_scopes(missing)
            response.headers.extend(limited)
            return response
        try:
            response = self._call(name, request, args)
        except BadJson as exc:
            response = _validation(f"Invalid input JSON: {exc}").response()
        except HubSpotError as exc:
            response = exc.response()
        response.headers.extend(limited)
        if fault == "slow" and state.fault_plan is not None:
            response.delay = state.fault_plan.spec.slow_seconds
        return response

    def _take_rate_limit(self, is_search: bool) -> list[tuple[str, str]] | Response:
        """Count the request against the limits; a 429 Response when one is exhausted.

        Search has its own per-second limit and its responses carry no rate-limit headers;
        it still uses the daily allocation.
        """
        state = self.state
        remaining = 0
        if is_search:
            allowed, _ = state.search_window.acquire()
            if not allowed:
                return _rate_limited("SECONDLY", [])
        else:
            allowed, remaining = state.hubspot_window.acquire()
            if not allowed:
                return _rate_limited("TEN_SECONDLY_ROLLING", self._headers(False, remaining=0))
        if not state.hubspot_daily.acquire():
            return _rate_limited("DAILY", self._headers(is_search, remaining=0))
        return [] if is_search else self._headers(False, remaining=remaining)

    def _headers(self, is_search: bool, *, remaining: int) -> list[tuple[str, str]]:
        if is_search:
            return []
        limits = self.state.limits
        return [
            ("X-HubSpot-RateLimit-Daily", str(limits.hubspot_daily_limit)),
            ("X-HubSpot-RateLimit-Daily-Remaining", str(self.state.hubspot_daily.remaining())),
            ("X-HubSpot-RateLimit-Interval-Milliseconds",
             str(int(limits.hubspot_window_seconds * 1000))),
            ("X-HubSpot-RateLimit-Max", str(limits.hubspot_requests_per_window)),
            ("X-HubSpot-RateLimit-Remaining", str(remaining)),
        ]

    def _missing_scopes(self, name: str, args: dict[str, str | None]) -> list[str]:
        """The scopes this call needs that the private app was not granted (none when the
        sandbox grants every scope)."""
        granted = self.state.hubspot_scopes
        if granted is None:
            return []
        return [scope for scope in _required_scopes(name, args) if scope not in granted]

    def _call(self, name: str, request: Request, args: dict[str, str | None]) -> Response:
        if name == "schemas":
            return self.schemas()
        if name == "properties" and _other_standard_type(args["type"] or "") is not None:
            return self.other_properties(_other_standard_type(args["type"] or "") or "")
        if name == "create_property" and _other_standard_type(args["type"] or "") is not None:
            raise _validation(f"The sandbox keeps no properties of {args['type']}; it emulates "
                              "contacts, companies and deals")
        object_type = _object_type(args["type"] or "")
        handlers: dict[str, Callable[[], Response]] = {
            "list": lambda: self.list_objects(object_type, request),
            "read": lambda: self.read_object(object_type, str(args["id"]), request),
            "search": lambda: self.search(object_type, _body(request)),
            "batch_read": lambda: self.batch_read(object_type, _body(request), request),
            "batch_update": lambda: self.batch_update(object_type, _body(request)),
            "merge": lambda: self.merge(object_type, _body(request)),
            "associations": lambda: self.associations(
                object_type, _object_type(args["to"] or ""), _body(request)),
            "properties": lambda: self.properties(object_type, args.get("name")),
            "create_property": lambda: self.create_property(object_type, _body(request)),
        }
        return handlers[name]()

    # ---- objects --------------------------------------------------------------------------

    def list_objects(self, object_type: str, request: Request) -> Response:
        """`GET /crm/v3/objects/{type}`: id order, cursor `after` = the next id to return."""
        limit = min(_int_param(request.param("limit"), 10), LIST_MAX)
        archived = (request.param("archived") or "false").lower() == "true"
        after = _int_param(request.param("after"), 0)
        names = _requested(object_type, request.params("properties"))
        linked = _association_types(object_type, request.params("associations"))
        data = self.state.dataset
        with data.lock:
            records = data.hubspot[object_type]
            order = data.hubspot_id_order(object_type)
            chosen: list[dict[str, Any]] = []
            for number in order[bisect.bisect_left(order, after):]:
                record = records[str(number)]
                if record["archived"] == archived:
                    chosen.append(record)
                    if len(chosen) > limit:
                        break
            page = [self._render_with_associations(r, object_type, names, linked)
                    for r in chosen[:limit]]
        payload: dict[str, Any] = {"results": page}
        if len(chosen) > limit:
            next_after = chosen[limit]["id"]
            payload["paging"] = {"next": {
                "after": next_after,
                "link": f"/crm/v3/objects/{object_type}?after={next_after}",
            }}
        self.state.counters.returned("hubspot.list", len(page))
        return json_response(200, payload)

    def read_object(self, object_type: str, record_id: str, request: Request) -> Response:
        """`GET /crm/v3/objects/{type}/{id}` (optionally by `idProperty`)."""
        names = _requested(object_type, request.params("properties"))
        linked = _association_types(object_type, request.params("associations"))
        data = self.state.dataset
        with data.lock:
            found = self._lookup(object_type, [record_id], request.param("idProperty"))
            record = found.get(record_id)
            if record is None or record["archived"]:
                raise HubSpotError(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are "
                                   "usually numeric.")
            rendered = self._render_with_associations(record, object_type, names, linked)
        self.state.counters.returned("hubspot.read", 1)
        return json_response(200, rendered)

    def _render_with_associations(
        self, record: dict[str, Any], object_type: str, names: tuple[str, ...],
        linked: tuple[str, ...],
    ) -> dict[str, Any]:
        """`_render` plus the requested associations; a type the record has none of is left
        out, and so is the whole `associations` key when it has none of any requested type."""
        rendered = _render(record, object_type, names, self._defined(object_type))
        data = self.state.dataset
        associations = {}
        for to_type in linked:
            targets = data.associated_ids(object_type, to_type, record["id"])
            if targets:
                primary = [_is_primary(data, object_type, record["id"], to_type, target, position)
                           for position, target in enumerate(targets)]
                associations[to_type] = _inline_associations(
                    object_type, record["id"], to_type, list(zip(targets, primary, strict=True)))
        if associations:
            rendered["associations"] = associations
        return rendered

    def _lookup(
        self, object_type: str, keys: list[str], id_property: str | None
    ) -> dict[str, dict[str, Any]]:
        """Map each requested key (an id or an `idProperty` value) to its live record."""
        records = self.state.dataset.hubspot[object_type]
        if not id_property or id_property == "hs_object_id":
            return {k: records[k] for k in keys if k in records and not records[k]["archived"]}
        if hubspot_property(object_type, id_property) is None:
            raise _validation(f"Property {id_property} does not exist")
        wanted = {k.lower(): k for k in keys}
        found: dict[str, dict[str, Any]] = {}
        for record in records.values():
            value = record["properties"].get(id_property)
            if value is not None and value.lower() in wanted and not record["archived"]:
                found.setdefault(wanted[value.lower()], record)
        return found

    # ---- search ---------------------------------------------------------------------------

    def search(self, object_type: str, body: dict[str, Any]) -> Response:
        """`POST /crm/v3/objects/{type}/search` with HubSpot's limits and the 10,000 cap."""
        limit = _int_value(body.get("limit", 10), "limit")
        if limit > SEARCH_MAX:
            raise _validation(f"limit must be less than or equal to {SEARCH_MAX}")
        after = _int_value(body.get("after") or 0, "after")
        if after >= SEARCH_CAP:
            raise _validation(
                f"There was a problem with the request: paging past {SEARCH_CAP} results "
                "is not supported; narrow the search."
            )
        names = _requested(object_type, body.get("properties") or [])
        data = self.state.dataset
        with data.lock:
            matches = self._matches(object_type, body)
            end = min(after + limit, len(matches), SEARCH_CAP)
            defined = self._defined(object_type)
            page = [_render(r, object_type, names, defined) for r in matches[after:end]]
        payload: dict[str, Any] = {"total": len(matches), "results": page}
        if end < len(matches):
            payload["paging"] = {"next": {"after": str(end)}}
        self.state.counters.returned("hubspot.search", len(page))
        return json_response(200, payload)

    def _matches(self, object_type: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Every live record matching the body's filters, in its sort order (cached)."""
        groups = body.get("filterGroups") or []
        sorts = body.get("sorts") or []
        query = (body.get("query") or "").strip().lower()
        if len(groups) > MAX_FILTER_GROUPS:
            raise _validation(f"Too many filter groups: at most {MAX_FILTER_GROUPS}")
        if sum(len(g.get("filters") or []) for g in groups) > MAX_FILTERS:
            raise _validation(f"Too many filters: at most {MAX_FILTERS} in all groups")
        if len(sorts) > 1:
            raise _validation("Only one sort is supported")
        indexed_until = self._indexed_until(object_type)
        key = (object_type, self.state.dataset.versions.get(object_type, 0),
               json.dumps(groups, sort_keys=True), json.dumps(sorts), query, indexed_until)
        cached = self._search_cache.get(key)
        if cached is not None:
            return cached
        predicates = [[_filter(object_type, f) for f in g.get("filters") or []] for g in groups]
        modified = HUBSPOT_MODIFIED_PROPERTY[object_type]
        matched = [
            r for r in self.state.dataset.hubspot[object_type].values()
            if not r["archived"]
            and (indexed_until is None or r["properties"][modified] <= indexed_until)
            and (not predicates or any(all(p(r) for p in group) for group in predicates))
            and (not query or _text_match(r, object_type, query))
        ]
        matched.sort(key=lambda r: int(r["id"]))
        if sorts:
            prop, descending = _sort_spec(object_type, sorts[0])
            matched.sort(key=lambda r: _sort_key(object_type, prop, r), reverse=descending)
        self._search_cache[key] = matched
        if len(self._search_cache) > 16:
            self._search_cache.popitem(last=False)
        return matched

    def _indexed_until(self, object_type: str) -> str | None:
        """The newest modified time search can see (None: everything), with the sandbox's
        `search_lag_seconds`. HubSpot's search guide: "It may take a few moments for newly
        created or updated CRM objects to appear in search results"
        (developers.hubspot.com/docs/api-reference/search/guide). List, read and batch read
        are not indexed and see a change at once. Stored datetimes are fixed-width UTC
        strings, so comparing strings compares instants."""
        lag = self.state.limits.search_lag_seconds
        if lag <= 0:
            return None
        return hs_datetime(self.state.dataset.clock.now() - timedelta(seconds=lag))

    # ---- batches --------------------------------------------------------------------------

    def batch_read(self, object_type: str, body: dict[str, Any], request: Request) -> Response:
        """`POST .../batch/read`: 200, or 207 with OBJECT_NOT_FOUND for missing ids."""
        keys = [str(item.get("id")) for item in _inputs(body, BATCH_MAX)]
        names = _requested(object_type, body.get("properties") or [])
        data = self.state.dataset
        with data.lock:
            found = self._lookup(object_type, keys, body.get("idProperty"))
            seen: set[str] = set()
            results = []
            defined = self._defined(object_type)
            for key in keys:
                record = found.get(key)
                if record is not None and record["id"] not in seen:
                    seen.add(record["id"])
                    results.append(_render(record, object_type, names, defined))
        missing = [k for k in keys if k not in found]
        errors = []
        if missing:
            errors.append(_batch_error(
                "OBJECT_NOT_FOUND",
                f"Could not get some {SINGULAR[object_type].upper()} objects, they may be "
                "deleted or not exist. Check that ids are valid.",
                missing,
            ))
        self.state.counters.returned("hubspot.batch_read", len(results))
        return _batch_response(results, errors)

    def batch_update(self, object_type: str, body: dict[str, Any]) -> Response:
        """`POST .../batch/update`: one input failing validation refuses the whole batch.

        HubSpot answers a 400 and applies nothing; the body names the property and value,
        never the input (`_refuse_invalid_batch`). Only an id that does not exist, and the
        injected `partial` fault, fail per input with a 207. With `hubspot_strict_batches`
        off, validation failures are per input too (the older, lenient emulation).

        `lifecyclestage` only moves forward: a backward value answers success and changes
        nothing, unless an earlier request cleared the property with "".
        """
        inputs = _inputs(body, BATCH_MAX)
        ids = [str(item.get("id")) for item in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise _validation(f"Duplicate IDs found in batch input: {duplicates}. IDs must be "
                              "unique")
        portal = self.state.hubspot_portal
        if self.state.hubspot_strict_batches:
            _refuse_invalid_batch(portal, object_type, inputs)
        plan = self.state.fault_plan
        flaky = plan.record_faults("hubspot.batch_update", "partial", len(inputs)) if plan else []
        data = self.state.dataset
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with data.lock:
            found = self._lookup(object_type, ids, body.get("idProperty"))
            moment = data.clock.now()
            for index, item in enumerate(inputs):
                key = ids[index]
                properties = item.get("properties") or {}
                record = found.get(key)
                if record is None:
                    errors.append(_batch_error(
                        "OBJECT_NOT_FOUND",
                        f"Could not update some {SINGULAR[object_type].upper()} objects, "
                        "they may be deleted or not exist. Check that ids are valid.", [key]))
                    continue
                if flaky and flaky[index]:
                    errors.append(_batch_error(
                        "INTERNAL_ERROR", "The update of this input failed; retry it.", [key]))
                    continue
                problems = _property_problems(portal, object_type, properties)
                if problems:
                    errors.append(_batch_error(
                        "VALIDATION_ERROR",
                        "Property values were not valid: " + json.dumps(
                            [{"isValid": False, "message": p["message"], "error": p["code"],
                              "name": p["context"]["propertyName"][0]} for p in problems]),
                        [key], problems))
                    continue
                _apply_update(data, portal, object_type, record, properties, moment)
                results.append(_render(record, object_type, tuple(properties),
                                       self._defined(object_type)))
        self.state.counters.returned("hubspot.batch_update", len(results))
        self.state.counters.written("hubspot.batch_update", len(results))
        return _batch_response(results, errors)

    # ---- associations ---------------------------------------------------------------------

    def associations(self, from_type: str, to_type: str, body: dict[str, Any]) -> Response:
        """`POST /crm/v4/associations/{from}/{to}/batch/read` (<= 1,000 inputs), paged per
        input: at most `association_page_size` targets per result, and `paging.next.after`
        on a result with more; the client sends `{"id", "after"}` for the next page. SDK
        docstring of `crm.associations.v4.batch_api.get_page`: "The 'after' field in a
        returned paging object can be added alongside the 'id' to retrieve the next page of
        associations from that objectId ... 'paging' will only be present if there are more
        pages"; changelog "Bug Fix: Batch Read Limit for HubSpot Associations API"."""
        inputs = _inputs(body, ASSOCIATIONS_MAX)
        type_ids = ASSOCIATION_TYPE_IDS.get((from_type, to_type))
        if type_ids is None:
            raise _validation(f"No association type between {from_type} and {to_type}")
        size = max(1, self.state.limits.association_page_size)
        requested = dict.fromkeys((str(i.get("id")), str(i.get("after") or "")) for i in inputs)
        data = self.state.dataset
        results, errors = [], []
        with data.lock:
            for key, after in requested:
                targets = data.associated_ids(from_type, to_type, key)
                source = data.hubspot[from_type].get(key)
                if not targets or source is None or source["archived"]:
                    errors.append(_no_associations(from_type, to_type, key))
                    continue
                start = _association_offset(after)
                chosen = targets[start:start + size]
                result: dict[str, Any] = {
                    "from": {"id": key},
                    "to": [_association(target, type_ids, _is_primary(
                               data, from_type, key, to_type, target, start + position))
                           for position, target in enumerate(chosen)],
                }
                if start + size < len(targets):
                    result["paging"] = {"next": {"after": _association_cursor(start + size)}}
                results.append(result)
        self.state.counters.returned("hubspot.associations", len(results))
        return _batch_response(results, errors)

    # ---- merges ---------------------------------------------------------------------------

    def merge(self, object_type: str, body: dict[str, Any]) -> Response:
        """`POST /crm/v3/objects/{type}/merge` {primaryObjectId, objectIdToMerge}: "the primary
        object remains after the merge" (HubSpot API reference, "Merge two contacts" and
        "Merge two objects with same type"); the merged-away id is gone (not listed, not
        archived-listed, not readable), the survivor's `hs_merged_object_ids` names it and
        its modified date moves. Answers the survivor."""
        primary = str(body.get("primaryObjectId") or "")
        loser = str(body.get("objectIdToMerge") or "")
        data = self.state.dataset
        with data.lock:
            records = data.hubspot[object_type]
            for record_id in (primary, loser):
                if record_id not in records or records[record_id]["archived"]:
                    raise HubSpotError(404, "OBJECT_NOT_FOUND",
                                       f"{SINGULAR[object_type]} {record_id} does not exist")
            if primary == loser:
                raise _validation("Cannot merge an object with itself")
            survivor = data.merge_hubspot(object_type, primary, loser, data.clock.now())
            rendered = _render(survivor, object_type, DEFAULT_PROPERTIES[object_type],
                               self._defined(object_type))
        self.state.counters.written("hubspot.merge", 1)
        return json_response(200, rendered)

    # ---- properties and schemas -----------------------------------------------------------

    def schemas(self) -> Response:
        """`GET /crm/v3/schemas`: the portal's custom object schemas; the sandbox has none.
        (A token without the custom-objects scope would get 403.)"""
        return json_response(200, {"results": []})

    def other_properties(self, object_type: str) -> Response:
        """`GET /crm/v3/properties/{type}` for a standard type the sandbox holds no records
        of: the id and date properties every object has."""
        group = f"{object_type.rstrip('s')}information"
        common = ("hs_object_id", "hs_createdate", "hs_lastmodifieddate")
        labels = ("Record ID", "Create Date", "Last Modified Date")
        results = [
            _property_json(HubSpotProperty(
                name, label, "number" if name == "hs_object_id" else "datetime",
                "number" if name == "hs_object_id" else "date", read_only=True, group=group), i)
            for i, (name, label) in enumerate(zip(common, labels, strict=True))
        ]
        self.state.counters.returned("hubspot.properties", len(results))
        return json_response(200, {"results": results})

    def create_property(self, object_type: str, body: dict[str, Any]) -> Response:
        """`POST /crm/v3/properties/{type}`: 201 with the new property, as HubSpot answers.

        Refused as HubSpot refuses (https://developers.hubspot.com/docs/api/crm/properties,
        "Create a property"): 400 VALIDATION_ERROR when a required field (name, label, type,
        fieldType, groupName) is missing, the type is unknown, the fieldType does not go with
        the type ("Property type and fieldType values"), the group does not exist, or the
        options are malformed (enumeration: a label and a unique value each; bool: the values
        true and false); 409 CONFLICT when a property of that name exists ("Returns a 409
        Conflict error if there is already a property with the 'name' you used. Property
        names must be unique.", HubSpot's create-property reference; the category HubSpot
        gives its 409s, e.g. "Contact already exists", PipedreamHQ/pipedream#8749). Options
        sent with any other type are ignored. A bool sent without options gets Yes (true) and
        No (false), the options HubSpot's own checkboxes list.
        """
        portal = self.state.hubspot_portal
        definition = _property_from_body(object_type, body, portal.groups(object_type))
        if not portal.add_property(object_type, definition):
            raise HubSpotError(409, "CONFLICT",
                               f"Property named '{definition.name}' already exists.")
        self.state.counters.written("hubspot.create_property", 1)
        order = list(portal.properties(object_type)).index(definition.name)
        return json_response(201, _property_json(definition, order))

    def _defined(self, object_type: str) -> frozenset[str]:
        return self.state.hubspot_portal.names(object_type)

    def properties(self, object_type: str, name: str | None) -> Response:
        """`GET /crm/v3/properties/{type}[/{name}]` with options in display order."""
        definitions = self.state.hubspot_portal.properties(object_type)
        if name is None:
            results = [_property_json(p, i) for i, p in enumerate(definitions.values())]
            self.state.counters.returned("hubspot.properties", len(results))
            return json_response(200, {"results": results})
        definition = definitions.get(name)
        if definition is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND",
                               f"Unable to find property {name} on object type {object_type}")
        self.state.counters.returned("hubspot.properties", 1)
        return json_response(200, _property_json(definition, 0))


# ---- helpers: requests ----------------------------------------------------------------------


def _object_type(raw: str) -> str:
    object_type = TYPE_ALIASES.get(raw.lower())
    if object_type is None:
        raise _validation(f"Unable to infer object type from: {raw}")
    return object_type


def _other_standard_type(raw: str) -> str | None:
    """A standard object type outside contacts/companies/deals, by name or type id."""
    name = raw.lower()
    for object_type, type_id in OTHER_STANDARD_TYPES.items():
        if name in {object_type, object_type.rstrip("s"), type_id}:
            return object_type
    return None


def _association_cursor(offset: int) -> str:
    """An opaque `after` for the next page of one input's associations."""
    return base64.urlsafe_b64encode(f"assoc-{offset}".encode()).decode()


def _association_offset(after: str) -> int:
    if not after:
        return 0
    try:
        text = base64.urlsafe_b64decode(after.encode()).decode()
        return max(0, int(text.removeprefix("assoc-")))
    except ValueError:
        raise _validation(f"Invalid after token: {after!r}") from None


def _no_associations(from_type: str, to_type: str, key: str) -> dict[str, Any]:
    return {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
        "message": f"No {SINGULAR[to_type]} is associated with {SINGULAR[from_type]} {key}.",
        "context": {"fromObjectId": [key]},
        "errors": [],
        "links": {},
    }


def _body(request: Request) -> dict[str, Any]:
    body = request.json()
    if not isinstance(body, dict):
        raise BadJson("expected a JSON object")
    return body


def _inputs(body: dict[str, Any], maximum: int) -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise _validation("inputs must be a list of objects")
    if len(inputs) > maximum:
        raise _validation(f"Batch input size too large: {len(inputs)} > {maximum}")
    return inputs


def _int_param(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    return _int_value(raw, "parameter")


def _int_value(raw: Any, what: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _validation(f"{what} must be an integer, got {raw!r}") from None


def _requested(object_type: str, names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The properties to render: the requested ones, or the type's defaults."""
    return tuple(names) if names else DEFAULT_PROPERTIES[object_type]


def _association_types(object_type: str, names: list[str]) -> tuple[str, ...]:
    """The requested association types as plural object types, once each; names HubSpot does
    not know, or without an association to `object_type`, are ignored rather than refused."""
    wanted = (TYPE_ALIASES.get(name.strip().lower()) for name in names)
    return tuple(dict.fromkeys(
        t for t in wanted if t is not None and (object_type, t) in ASSOCIATION_TYPE_IDS))


# ---- helpers: rendering ---------------------------------------------------------------------


def _render(
    record: dict[str, Any], object_type: str, names: tuple[str, ...], defined: frozenset[str]
) -> dict[str, Any]:
    """A record as HubSpot returns it: the requested properties the portal has (null when
    empty; a name it has no property of is left out, as HubSpot does) plus the id and dates
    HubSpot always includes."""
    props = record["properties"]
    modified = HUBSPOT_MODIFIED_PROPERTY[object_type]
    out = {n: props.get(n) for n in names if n in defined}
    for always in ("hs_object_id", "createdate", modified):
        out[always] = props.get(always)
    rendered: dict[str, Any] = {
        "id": record["id"],
        "properties": out,
        "createdAt": props["createdate"],
        "updatedAt": props[modified],
        "archived": record["archived"],
    }
    if record["archived"]:
        rendered["archivedAt"] = record.get("archivedAt") or props[modified]
    return rendered


def _batch_error(
    category: str, message: str, ids: list[str], errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": ids},
        "errors": errors or [],
        "links": {},
    }


def _batch_response(results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> Response:
    """200 COMPLETE, or 207 with `numErrors` and `errors` when any input failed."""
    now = hs_datetime(datetime.now().astimezone())
    payload: dict[str, Any] = {"status": "COMPLETE", "results": results,
                               "startedAt": now, "completedAt": now}
    if not errors:
        return json_response(200, payload)
    payload["numErrors"] = len(errors)
    payload["errors"] = errors
    return json_response(207, payload)


def _is_primary(
    data: Any, from_type: str, from_id: str, to_type: str, to_id: str, position: int
) -> bool:
    """A deal's or contact's first company is its primary one; the same association read from
    the company carries the primary label too."""
    if ASSOCIATION_TYPE_IDS[(from_type, to_type)][1] is None:
        return False
    if to_type == "companies":
        return position == 0
    return data.associated_ids(to_type, from_type, to_id)[:1] == [from_id]


def _association(target: str, type_ids: tuple[int, int | None], primary: bool) -> dict[str, Any]:
    plain, primary_id = type_ids
    types = [{"category": "HUBSPOT_DEFINED", "typeId": plain, "label": None}]
    if primary_id is not None and primary:
        types.insert(0, {"category": "HUBSPOT_DEFINED", "typeId": primary_id,
                         "label": "Primary"})
    return {"toObjectId": int(target), "associationTypes": types}


def _association_labels(from_type: str, to_type: str, primary: bool) -> list[str]:
    """The v3 `type` names of one association: a primary one comes as two rows,
    `deal_to_company` and `deal_to_company_unlabeled`; pairs without a primary label have one
    name (`deal_to_contact`)."""
    name = f"{SINGULAR[from_type]}_to_{SINGULAR[to_type]}"
    if ASSOCIATION_TYPE_IDS[(from_type, to_type)][1] is None:
        return [name]
    return [name, f"{name}_unlabeled"] if primary else [f"{name}_unlabeled"]


def _inline_associations(
    from_type: str, record_id: str, to_type: str, targets: list[tuple[str, bool]]
) -> dict[str, Any]:
    """One record's associations of one type (target id, primary?) as the objects API inlines
    them: `{id, type}` rows, the first 100, with a per-record `paging.next` cursor when there
    are more."""
    rows = [{"id": target, "type": label}
            for target, primary in targets
            for label in _association_labels(from_type, to_type, primary)]
    out: dict[str, Any] = {"results": rows[:INLINE_ASSOCIATIONS_MAX]}
    if len(rows) > INLINE_ASSOCIATIONS_MAX:
        last = rows[INLINE_ASSOCIATIONS_MAX - 1]["id"]
        after = base64.b64encode(f"{INLINE_ASSOCIATIONS_MAX}-{last}".encode()).decode()
        out["paging"] = {"next": {
            "after": after,
            "link": f"/crm/v3/objects/{from_type}/{record_id}/associations/{to_type}"
                    f"?after={quote(after)}",
        }}
    return out


def _property_from_body(
    object_type: str, body: dict[str, Any], groups: set[str]
) -> HubSpotProperty:
    """The property a create request describes, or the 400 HubSpot answers for it."""
    missing = [key for key in PROPERTY_REQUIRED
               if not isinstance(body.get(key), str) or not body[key].strip()]
    if missing:
        raise _validation(f"Missing required field(s) {', '.join(missing)}: a property needs "
                          f"{', '.join(PROPERTY_REQUIRED)}")
    type_, field_type = body["type"], body["fieldType"]
    if type_ not in PROPERTY_FIELD_TYPES:
        raise _validation(f"Property type '{type_}' is not valid; valid types: "
                          f"{', '.join(PROPERTY_FIELD_TYPES)}")
    if field_type not in PROPERTY_FIELD_TYPES[type_]:
        raise _validation(f"fieldType '{field_type}' is not valid for type '{type_}'; valid: "
                          f"{', '.join(PROPERTY_FIELD_TYPES[type_])}")
    if body["groupName"] not in groups:
        raise _validation(f"Property group '{body['groupName']}' does not exist on "
                          f"{object_type}; existing groups: {', '.join(sorted(groups))}")
    return HubSpotProperty(
        name=body["name"], label=body["label"], type=type_, field_type=field_type,
        options=_created_options(type_, body.get("options")), group=body["groupName"],
        description=str(body.get("description") or ""), created=True)


def _created_options(type_: str, raw: Any) -> tuple[Option, ...]:
    if type_ not in ("enumeration", "bool"):
        return ()
    if raw is None and type_ == "bool":
        return (Option("true", "Yes"), Option("false", "No"))
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _validation("options must be a list of {label, value} objects")
    options = []
    for position, item in enumerate(raw):
        label = item.get("label") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(label, str) or not label or not isinstance(value, str) or not value:
            raise _validation(f"options[{position}] needs a label and a value (non-empty text)")
        if any(option.value == value for option in options):
            raise _validation(f"options[{position}]: the value '{value}' is listed twice")
        options.append(Option(value, label))
    if type_ == "bool" and {o.value for o in options} != {"true", "false"}:
        raise _validation("A bool property's options are exactly the values true and false")
    return tuple(options)


def _property_json(definition: HubSpotProperty, order: int) -> dict[str, Any]:
    stamp = "2020-01-01T00:00:00.000Z"
    return {
        "name": definition.name,
        "label": definition.label,
        "type": definition.type,
        "fieldType": definition.field_type,
        "description": definition.description,
        "groupName": definition.group,
        "options": [
            {"label": o.label, "value": o.value, "description": "", "displayOrder": i,
             "hidden": False}
            for i, o in enumerate(definition.options)
        ],
        "displayOrder": order,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": definition.name == "hs_object_id",
        "hidden": False,
        "hubspotDefined": not definition.created and not definition.name.startswith("crmsync_")
        and "_date" not in definition.name,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": True,
            "readOnlyValue": definition.read_only,
        },
        "formField": not definition.read_only,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }


def _authentication_error() -> Response:
    return HubSpotError(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
        "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    ).response()


def _required_scopes(name: str, args: dict[str, str | None]) -> list[str]:
    """The private-app scopes a call needs: `crm.objects.{type}.read` to read, `.write` to
    update or merge, `crm.schemas.{type}.read` for properties and `.write` to create one
    (HubSpot's scopes reference,
    developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/scopes)."""
    if name == "schemas":
        return ["crm.schemas.custom.read"]
    object_type = TYPE_ALIASES.get((args.get("type") or "").lower())
    if object_type is None:
        return []
    if name == "properties":
        return [f"crm.schemas.{object_type}.read"]
    if name == "create_property":  # the create-property reference's scope requirements
        return [f"crm.schemas.{object_type}.write"]
    if name in {"batch_update", "merge"}:
        return [f"crm.objects.{object_type}.write"]
    needed = [f"crm.objects.{object_type}.read"]
    other = TYPE_ALIASES.get((args.get("to") or "").lower()) if name == "associations" else None
    if other is not None and other != object_type:
        needed.append(f"crm.objects.{other}.read")
    return needed


def _missing_scopes(scopes: list[str]) -> Response:
    """HubSpot's 403 for a token without a scope the call needs. Shape as HubSpot answers it
    (HubSpot/hubspot-api-nodejs#268, "Incorrect missing scope for Owners API"; the
    error-handling page: a token without the scope "would get a 403")."""
    return json_response(403, {
        "status": "error",
        "message": "This app hasn't been granted all required scopes to make this call. "
                   "Read more about required scopes here: https://developers.hubspot.com/scopes.",
        "correlationId": correlation_id(),
        "errors": [{"message": "One or more of the following scopes are required.",
                    "context": {"requiredScopes": scopes}}],
        "links": {"scopes": "https://developers.hubspot.com/scopes"},
        "category": "MISSING_SCOPES",
    })


def _rate_limited(policy: str, headers: list[tuple[str, str]]) -> Response:
    label = {"TEN_SECONDLY_ROLLING": "ten_secondly_rolling", "DAILY": "daily",
             "SECONDLY": "secondly"}[policy]
    return json_response(
        429,
        {
            "status": "error",
            "message": f"You have reached your {label} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": policy,
        },
        headers,
    )


# ---- helpers: filters and sorting -----------------------------------------------------------


def _definition(object_type: str, name: str) -> HubSpotProperty:
    definition = hubspot_property(object_type, name)
    if definition is None:
        raise _validation(f"Property {name!r} does not exist on {object_type}")
    return definition


def _comparable(definition: HubSpotProperty, value: Any) -> Any:
    """Turn a stored or filter value into something ordered like HubSpot orders that type."""
    if value is None or value == "":
        return None
    if definition.type == "number":
        return float(value)
    if definition.type == "datetime":
        return hs_datetime(parse_instant(value))
    if definition.type == "date":
        return parse_instant(value).date().isoformat()
    return str(value).lower()


def _filter(object_type: str, spec: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """A predicate for one search filter (operators as HubSpot names them)."""
    name = spec.get("propertyName") or ""
    definition = _definition(object_type, name)
    operator = (spec.get("operator") or "EQ").upper()
    try:
        value = _comparable(definition, spec.get("value"))
        high = _comparable(definition, spec.get("highValue"))
        values = {_comparable(definition, v) for v in spec.get("values") or []}
    except (TypeError, ValueError):
        raise _validation(f"Invalid filter value for {name}: {spec.get('value')!r}") from None

    def current(record: dict[str, Any]) -> Any:
        return _comparable(definition, record["properties"].get(name))

    tests: dict[str, Callable[[Any], bool]] = {
        "EQ": lambda v: v is not None and v == value,
        "NEQ": lambda v: v != value,
        "LT": lambda v: v is not None and v < value,
        "LTE": lambda v: v is not None and v <= value,
        "GT": lambda v: v is not None and v > value,
        "GTE": lambda v: v is not None and v >= value,
        "BETWEEN": lambda v: v is not None and value <= v <= high,
        "IN": lambda v: v in values,
        "NOT_IN": lambda v: v not in values,
        "HAS_PROPERTY": lambda v: v is not None,
        "NOT_HAS_PROPERTY": lambda v: v is None,
        "CONTAINS_TOKEN": lambda v: v is not None and str(value).strip("*") in str(v),
        "NOT_CONTAINS_TOKEN": lambda v: v is None or str(value).strip("*") not in str(v),
    }
    test = tests.get(operator)
    if test is None:
        raise _validation(f"Unsupported filter operator {operator}")
    if operator in {"LT", "LTE", "GT", "GTE", "BETWEEN"} and value is None:
        raise _validation(f"Filter on {name} with {operator} needs a value")
    return lambda record: test(current(record))


def _sort_spec(object_type: str, sort: Any) -> tuple[str, bool]:
    if isinstance(sort, str):
        descending = sort.startswith("-")
        name = sort.lstrip("-")
    else:
        name = sort.get("propertyName") or ""
        descending = (sort.get("direction") or "ASCENDING").upper() == "DESCENDING"
    _definition(object_type, name)
    return name, descending


def _sort_key(object_type: str, name: str, record: dict[str, Any]) -> tuple[int, Any]:
    """Empty values sort last in ascending order; ties keep id order (the sort is stable)."""
    value = _comparable(_definition(object_type, name), record["properties"].get(name))
    return (1, "") if value is None else (0, value)


def _text_match(record: dict[str, Any], object_type: str, query: str) -> bool:
    props = record["properties"]
    fields = ("email", "firstname", "lastname", "name", "domain", "dealname")
    return any(query in (props.get(f) or "").lower() for f in fields if f in props)


# ---- helpers: writes ------------------------------------------------------------------------


def _refuse_invalid_batch(
    portal: HubSpotPortal, object_type: str, inputs: list[dict[str, Any]]
) -> None:
    """Raise HubSpot's whole-batch 400 when any input fails validation.

    The shape: `{"status": "error", "message": "Property values were not valid: [{"isValid":
    false, "message", "error", "name", "localizedErrorMessage", "portalId"}]", "correlationId",
    "category": "VALIDATION_ERROR"}`: the message embeds a JSON list naming each invalid
    property and, in its own message, the value; no input id anywhere. Seen in peers' captured
    answers (e.g. HubSpot/hubspot-api-nodejs issues; gitcoinco/code_fund_ads#479 for the
    v1 form) and in HubSpot's OpenAPI spec for batch/update ("Read-only and non-existent
    properties will result in an error"); 207 is documented only for batch create with
    `objectWriteTraceId` (developers.hubspot.com/docs/api-reference/error-handling).
    Which inputs HubSpot lists when several fail is not documented: the sandbox lists the
    first failing input's problems only, the harder case for a client.
    """
    for item in inputs:
        problems = _property_problems(portal, object_type, item.get("properties") or {})
        if problems:
            listed = [{"isValid": False, "message": p["message"], "error": p["code"],
                       "name": p["context"]["propertyName"][0],
                       "localizedErrorMessage": p["message"], "portalId": SANDBOX_PORTAL_ID}
                      for p in problems]
            raise _validation("Property values were not valid: "
                              + json.dumps(listed, separators=(",", ":")))


def _property_problems(
    portal: HubSpotPortal, object_type: str, properties: dict[str, Any]
) -> list[dict[str, Any]]:
    """What HubSpot would reject in one input's properties (unknown, read-only, bad values)."""
    problems = []
    for name, raw in properties.items():
        definition = portal.property(object_type, name)
        if definition is None:
            problems.append(_problem(f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST",
                                     name))
            continue
        if definition.read_only:
            problems.append(_problem(f'"{name}" is a read only property; its value cannot be set.',
                                     "READ_ONLY_VALUE", name))
            continue
        if raw is None or raw == "":
            continue
        message = _value_problem(definition, raw)
        if message:
            code = "INVALID_OPTION" if definition.options else f"INVALID_{definition.type.upper()}"
            problems.append(_problem(message, code, name))
    return problems


def _value_problem(definition: HubSpotProperty, raw: Any) -> str | None:
    value = "true" if raw is True else "false" if raw is False else str(raw)
    if definition.options:
        allowed = [o.value for o in definition.options]
        if value not in allowed:
            labels = ", ".join(f"{o.value}" for o in definition.options)
            return f"{value} was not one of the allowed options: [{labels}]"
        return None
    try:
        if definition.type == "number":
            float(value)
        elif definition.type in {"date", "datetime"}:
            parse_instant(value)
    except ValueError:
        return f"{value} is not a valid {definition.type}"
    return None


def _problem(message: str, code: str, name: str) -> dict[str, Any]:
    return {"message": message, "code": code, "context": {"propertyName": [name]}}


def _apply_update(
    data: Any, portal: HubSpotPortal, object_type: str, record: dict[str, Any],
    properties: dict[str, Any], moment: datetime,
) -> None:
    """Write the values (lifecycle stage forward only); bump the modified date on change."""
    props = record["properties"]
    changed = False
    for name, raw in properties.items():
        value = _stored(portal.property(object_type, name), raw)
        current = props.get(name)
        backward = (name == "lifecyclestage" and value and current
                    and LIFECYCLE_ORDER[value] < LIFECYCLE_ORDER.get(str(current), -1))
        if backward:
            continue  # HubSpot answers success and keeps the later stage
        if props.get(name) != value:
            props[name] = value
            changed = True
    if changed:
        data.bump_hubspot(object_type, record, moment)


def _stored(definition: HubSpotProperty | None, raw: Any) -> str | None:
    """The string HubSpot stores for a written value ("" clears to no value)."""
    if raw is None or raw == "":
        return None
    if raw is True or raw is False:
        return "true" if raw else "false"
    if definition is not None and definition.type == "date":
        return parse_instant(raw).date().isoformat()
    if definition is not None and definition.type == "datetime":
        return hs_datetime(parse_instant(raw))
    return str(raw)
