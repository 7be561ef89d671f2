"""HubSpot adapter over hubspot-api-client 12: contacts, companies and deals as plain dicts.

Records keep HubSpot's own shape (`id`, `properties`, `updatedAt`, ...) plus an `associations`
key holding lists of ids (`{"companies": ["12"], "contacts": [...]}`) for linking.

Choices the design notes force (../shared/design.md, "Measured traps"):
- One `HubSpot` client, and each API object built once and cached: every attribute access on
  the SDK builds a new ApiClient and connection pool (a TLS handshake per call otherwise).
- Raw JSON (`_preload_content=False` + `json.loads`): model deserialisation is the bottleneck
  (dateutil parses every timestamp). It also gives us the response headers on success, which
  carry the rate-limit counters. See bench/raw_json.py for the measure.
- `retry=False` on the SDK: its urllib3 retry skips POST and hides 429s; `RetryPolicy` owns all
  retries. Every call passes `_request_timeout` (the SDK has none by default).
- Search pages by key, not offset: every page is a fresh query from the newest modified time
  read (the offset `after` shifts when a record is edited mid-read, and stops at 10,000);
  an instant shared by more records than one filter can exclude is read in id order.
- A 200 without a `results` list is retried, never taken as the last page; TLS failures are
  a clear FatalApiError naming the URL.
- Deletions come from the archived list (`read_deleted`); merges as tombstones for the ids in a
  survivor's `hs_merged_object_ids`.
- Budgets: the 10-second window is a share of the server's own X-HubSpot-RateLimit-Max and
  search (exempt from it, with its own 5/s) is not charged to it; the run stops before the
  portal's daily use reaches its share (X-HubSpot-RateLimit-Daily / -Daily-Remaining).
- A batch update HubSpot refuses as a whole (400, the property and value named, not the input)
  is never bisected: a property or option the portal lacks, or a read-only property, stops
  the run (ConfigurationError); a bad value only some records carry rejects those records
  and the rest is resent (`_send_batch`). A 403 MISSING_SCOPES names the scopes.
- Deals need their contacts and companies. The list API returns them inline; search and batch
  read cannot, so those records (and any whose inline list was cut off) are looked up with the
  v4 batch read, 1,000 ids a call shared by up to ten pages, each page yielded only once all of
  its records are complete (the engine commits a page and its watermark together).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import urllib3
from hubspot import HubSpot
from pydantic import SecretStr

from connector.catalog import CATALOG
from connector.exceptions import (
    ApiError,
    AuthenticationError,
    BudgetExhausted,
    ConfigurationError,
    CredentialsRejected,
    FatalApiError,
    MissingScopes,
    RateLimitedError,
    RetriableApiError,
    scrub,
)
from connector.systems._writes import result_from_error, send_or_split, write_records
from connector.systems.base import (
    ApiUsage,
    FieldInfo,
    Page,
    RecordUpdate,
    Tombstone,
    WriteResult,
    as_utc,
    chunked,
    parse_timestamp,
)
from connector.systems.resilience import (
    DailyAllocation,
    RateWindow,
    RetryPolicy,
    UsageMeter,
    guarded_call,
    parse_hubspot_daily,
    parse_retry_after,
)

__all__ = ["HubSpotAdapter", "HubSpotLimits", "PropertyCreated", "classify_hubspot_error"]

log = logging.getLogger(__name__)

SYSTEM = "hubspot"
_CATALOG = CATALOG[SYSTEM]
OBJECT_TYPES = tuple(_CATALOG.objects)
MODIFIED_PROPERTY = {name: spec.cursor_field for name, spec in _CATALOG.objects.items()}
# Set on a merge's survivor: the ids merged into it, ";"-separated (design.md, HubSpot facts).
MERGED_PROPERTY = "hs_merged_object_ids"
# Properties linking needs, requested whatever the mapping names.
LINK_PROPERTIES = {name: spec.link_fields for name, spec in _CATALOG.objects.items()}
# Associations linking needs that no property carries (a contact's company is a property).
ASSOCIATED_TYPES: dict[str, tuple[str, ...]] = {"deals": ("contacts", "companies")}

LIST_PAGE_SIZE = 100
SEARCH_PAGE_SIZE = 200
# Ids excluded by one NOT_IN filter when a page ends among records sharing a modified time;
# past this many at one millisecond the instant is read in hs_object_id order instead.
NOT_IN_MAX = 100
BATCH_SIZE = 100
ASSOCIATION_BATCH_SIZE = 1_000
# Pages held back while their association lookups gather into one v4 call.
HELD_PAGES_MAX = 10
RETRIABLE_RECORD_CATEGORIES = frozenset({"RATE_LIMITS", "LOCKED", "INTERNAL_ERROR", "TIMEOUT"})
# Whole-batch refusals we cannot read (no property list): split as the last resort.
BISECTABLE_STATUSES = frozenset({400, 404, 409, 422})
# Property problems that every input setting the property would meet: the portal, not the
# record, is wrong. INVALID_OPTION joins them when the option is missing from the property.
PORTAL_PROBLEMS = frozenset({"PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"})
INVALID_PROPERTIES_PREFIX = "Property values were not valid:"
# X-HubSpot-RateLimit-Max before the first answer says otherwise: Free/Starter's 100.
SMALLEST_WINDOW_MAX = 100


@dataclass(frozen=True)
class HubSpotLimits:
    """Client-side budgets.

    The 10-second window: `window_share` of the server's X-HubSpot-RateLimit-Max (100 on
    Free/Starter, 190 on Pro/Enterprise; changelog "Increasing our API limits"), 90 until the
    first answer; `requests_per_window` fixes it instead. Search is exempt from that window
    (OpenAPI spec: `x-hubspot-rate-limit-exemptions: ["ten-secondly"]`) and has its own limit
    of 5 per second. The run stops before the portal's daily use reaches `max_daily_share`.
    """

    requests_per_window: int | None = None
    window_seconds: float = 10.0
    search_per_second: int = 5
    window_share: float = 0.9
    max_daily_share: float = 0.5

    def initial_window(self) -> int:
        if self.requests_per_window is not None:
            return self.requests_per_window
        return self.window_for(SMALLEST_WINDOW_MAX)

    def window_for(self, server_max: int) -> int:
        """Our share of a server window of `server_max` requests."""
        return max(1, int(self.window_share * server_max))


@dataclass(frozen=True)
class _InvalidProperty:
    """One entry of HubSpot's whole-batch validation 400: a property, its error code, and a
    message that quotes the value (`"x was not one of the allowed options: [...]"`)."""

    name: str
    code: str
    message: str


@dataclass
class _Batch:
    """One response's records, and per association type those still to be looked up."""

    records: list[dict[str, Any]]
    unresolved: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class _TieBoundary:
    """Ids already read at the newest modified time, so a restarted query skips them."""

    at_ms: int = -1
    ids: set[str] | None = None

    def is_new(self, record_id: str, modified_ms: int) -> bool:
        return not (modified_ms == self.at_ms and self.ids is not None and record_id in self.ids)

    def ids_at(self, modified_ms: int) -> set[str]:
        """The ids already read at `modified_ms` when that is the newest time read."""
        return set(self.ids or ()) if modified_ms == self.at_ms else set()

    def remember(self, record_id: str, modified_ms: int) -> None:
        if modified_ms > self.at_ms or self.ids is None:
            self.at_ms, self.ids = modified_ms, {record_id}
        elif modified_ms == self.at_ms:
            self.ids.add(record_id)


@dataclass(frozen=True)
class PropertyCreated:
    """What creating one property came to: created, or found made meanwhile (409)."""

    name: str
    created: bool
    detail: str = ""


# The properties API's JSON names -> the SDK models' argument names.
_SNAKE = {"fieldType": "field_type", "groupName": "group_name", "displayOrder": "display_order",
          "formField": "form_field", "hasUniqueValue": "has_unique_value",
          "externalOptions": "external_options", "calculationFormula": "calculation_formula",
          "referencedObjectType": "referenced_object_type"}


class HubSpotAdapter:
    """CrmAdapter for HubSpot; see the module docstring for the choices it makes."""

    system = SYSTEM

    def __init__(
        self,
        access_token: SecretStr | str,
        base_url: str = "https://api.hubapi.com",
        *,
        ca_bundle: str | None = None,
        timeout_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
        limits: HubSpotLimits | None = None,
    ) -> None:
        token = (
            access_token.get_secret_value() if isinstance(access_token, SecretStr) else access_token
        )
        self.base_url = base_url.rstrip("/")
        self._token = SecretStr(token)
        self._client = HubSpot(
            access_token=token, host=self.base_url, retry=False, ssl_ca_cert=ca_bundle
        )
        self._apis: dict[tuple[str, str], Any] = {}
        self._timeout = timeout_seconds
        self._retry = retry or RetryPolicy()
        self._limits = limits = limits or HubSpotLimits()
        self._window = RateWindow(limits.initial_window(), limits.window_seconds, name=SYSTEM)
        self._search_window = RateWindow(limits.search_per_second, 1.0, name=f"{SYSTEM} search")
        self._daily = DailyAllocation(
            limits.max_daily_share, system=SYSTEM, setting="CRMSYNC_HUBSPOT_MAX_DAILY_SHARE"
        )
        self._described: dict[str, dict[str, FieldInfo]] = {}
        self._meter = UsageMeter(
            SYSTEM, self._retry, self._daily, windows=(self._window, self._search_window)
        )

    def __repr__(self) -> str:
        return f"HubSpotAdapter(base_url={self.base_url!r})"

    # --- usage ------------------------------------------------------------------------------

    @property
    def api_calls(self) -> int:
        return self._meter.calls

    def usage(self) -> ApiUsage:
        return self._meter.snapshot()

    # --- reads ------------------------------------------------------------------------------

    def read_changed(
        self, object_type: str, since: datetime | None, fields: Iterable[str]
    ) -> Iterator[Page]:
        """Search ascending on the modified date from `since`; a full list read when None."""
        if since is None:
            return self.read_all(object_type, fields)
        return self._search_changed(object_type, self._properties(object_type, fields), since)

    def read_all(
        self,
        object_type: str,
        fields: Iterable[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Page]:
        """The list API (100 a page, no result cap); with a date range, search within it."""
        properties = self._properties(object_type, fields)
        if since is not None or until is not None:
            return self._search_changed(object_type, properties, since, until)
        return self._list_pages(object_type, properties)

    def count(
        self, object_type: str, since: datetime | None = None, until: datetime | None = None
    ) -> int | None:
        """What `read_all` would return, from one search's `total` (limit 1).

        The same filters as `read_all` over a date range (none without one: the list API has
        no filter either). `total` counts past the 10,000 results a search can page through.
        """
        properties = self._properties(object_type, ())
        modified = MODIFIED_PROPERTY[object_type]
        filters: list[dict[str, Any]] = []
        if since is not None or until is not None:
            filters = _range_filters(modified, *_range_ms(since, until))
        body = _search_body(filters, modified, properties, 0, limit=1)
        total = self._search(object_type, body).get("total")
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    def read_deleted(self, object_type: str, since: datetime | None) -> Iterator[Page]:
        """Archived (deleted) records with `archivedAt` >= `since`, oldest first, as pages of
        tombstones. Search never returns archived records ("won't return archived CRM
        objects", HubSpot search guide) and the list API has no date filter, so this lists
        `archived=true` to the end and filters client-side: one call per 100 archived
        records, one call when there are none. Sorted before yielding (the list is in id
        order), so a watermark taken from any page never passes an unread deletion.
        Merged-away records are not archived: they come as tombstones on the survivor's page.
        """
        self._properties(object_type, ())
        since_ms = _epoch_ms(since) if since is not None else None
        found: list[Tombstone] = []
        for raw in self._archived_records(object_type):
            deleted_at = parse_timestamp(raw.get("archivedAt"))
            if since_ms is None or (deleted_at is not None and _epoch_ms(deleted_at) >= since_ms):
                found.append(Tombstone(str(raw["id"]), deleted_at=deleted_at))
        found.sort(key=lambda t: (_epoch_ms(t.deleted_at) if t.deleted_at else 0, t.record_id))
        for chunk in chunked(found, LIST_PAGE_SIZE):
            times = [t.deleted_at for t in chunk if t.deleted_at is not None]
            yield Page(records=[], max_modified=max(times) if times else None, tombstones=chunk)

    def _archived_records(self, object_type: str) -> Iterator[dict[str, Any]]:
        api = self._api(object_type, "basic_api")
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": LIST_PAGE_SIZE,
                "properties": [MODIFIED_PROPERTY[object_type]],
                "archived": True,
            }
            if after:
                kwargs["after"] = after
            data = self._call(
                "list_archived",
                lambda kw=kwargs: api.get_page(**kw, **self._raw()),
                where=f"GET /crm/v3/objects/{object_type}?archived=true",
            )
            yield from data["results"]
            after = _next_after(data)
            if not after:
                return

    def read_by_ids(
        self, object_type: str, ids: Iterable[str], fields: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Batch read, 100 ids a call; ids HubSpot does not know are left out."""
        unique = list(dict.fromkeys(str(i) for i in ids if i))
        return self._batch_read(object_type, unique, self._properties(object_type, fields))

    def read_by_emails(
        self, object_type: str, emails: Iterable[str], fields: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Batch read with idProperty=email (contacts), 100 addresses a call."""
        unique = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        properties = self._properties(object_type, fields)
        return self._batch_read(object_type, unique, properties, id_property="email")

    def _list_pages(self, object_type: str, properties: list[str]) -> Iterator[Page]:
        return self._complete_pages(object_type, self._list_batches(object_type, properties))

    def _list_batches(self, object_type: str, properties: list[str]) -> Iterator[_Batch]:
        """The list API, associations inline; only lists cut off at 100 need a lookup."""
        api = self._api(object_type, "basic_api")
        associations = list(ASSOCIATED_TYPES.get(object_type, ()))
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": LIST_PAGE_SIZE,
                "properties": properties,
                "archived": False,
            }
            if after:
                kwargs["after"] = after
            if associations:
                kwargs["associations"] = associations
            data = self._call(
                "list",
                lambda kw=kwargs: api.get_page(**kw, **self._raw()),
                where=f"GET /crm/v3/objects/{object_type}",
            )
            results = data.get("results", [])
            if results:
                yield self._batch(object_type, results, inline=True)
            after = _next_after(data)
            if not after:
                return

    def _search_changed(
        self,
        object_type: str,
        properties: list[str],
        since: datetime | None,
        until: datetime | None = None,
    ) -> Iterator[Page]:
        """Every record modified in [since, until), oldest first, each exactly once."""
        batches = self._search_batches(object_type, properties, since, until)
        return self._complete_pages(object_type, batches)

    def _search_batches(
        self,
        object_type: str,
        properties: list[str],
        since: datetime | None,
        until: datetime | None,
    ) -> Iterator[_Batch]:
        """Keyset paging: every page is a fresh query from the newest modified time read so
        far (`>=`, excluding by id the records already read at that time), never `after`.

        Search `after` is an offset into a live index: a record edited after we read it moves
        to the end and shifts every later record down one place, so offset paging skips one
        unread record per edit (api-fidelity-2 F2; HubSpot search guide). A fresh query per
        page costs the same calls, and no query pages towards the 10,000-result cap. When more
        records than NOT_IN_MAX were read at one millisecond, that instant is read in
        hs_object_id order instead, and the query goes on after it.
        """
        modified = MODIFIED_PROPERTY[object_type]
        lower_ms, until_ms = _range_ms(since, until)
        inclusive = True
        boundary = _TieBoundary()
        while True:
            read_here = boundary.ids_at(lower_ms) if inclusive else set()
            if len(read_here) > NOT_IN_MAX:
                yield from self._search_one_instant(object_type, properties, lower_ms, boundary)
                inclusive, read_here = False, set()
            filters = _range_filters(modified, lower_ms, until_ms, inclusive=inclusive)
            if read_here:
                filters.append(_not_in("hs_object_id", read_here))
            data = self._search(object_type, _search_body(filters, modified, properties, 0))
            results = data["results"]
            batch = self._new_records(object_type, results, boundary)
            if batch is not None:
                yield batch
            if not results or _next_after(data) is None:
                return
            lower_ms, inclusive = boundary.at_ms, True

    def _search_one_instant(
        self, object_type: str, properties: list[str], at_ms: int, boundary: _TieBoundary
    ) -> Iterator[_Batch]:
        """All records modified exactly at `at_ms`, by ascending hs_object_id, each page a
        fresh query after the last id read (no offsets, no cap)."""
        modified = MODIFIED_PROPERTY[object_type]
        last_id = 0
        while True:
            filters = [_filter(modified, "EQ", at_ms), _filter("hs_object_id", "GT", last_id)]
            data = self._search(object_type, _search_body(filters, "hs_object_id", properties, 0))
            results = data["results"]
            if not results:
                return
            last_id = max(last_id, *(int(r["id"]) for r in results))
            batch = self._new_records(object_type, results, boundary)
            if batch is not None:
                yield batch
            if _next_after(data) is None:
                return

    def _new_records(
        self, object_type: str, results: list[dict[str, Any]], boundary: _TieBoundary
    ) -> _Batch | None:
        modified = MODIFIED_PROPERTY[object_type]
        fresh = []
        for raw in results:
            record_id, modified_ms = str(raw["id"]), _modified_ms(raw, modified)
            if boundary.is_new(record_id, modified_ms):
                fresh.append(raw)
            boundary.remember(record_id, modified_ms)
        if not fresh:
            return None
        return self._batch(object_type, fresh, inline=False)

    def _batch_read(
        self,
        object_type: str,
        ids: list[str],
        properties: list[str],
        id_property: str | None = None,
    ) -> list[dict[str, Any]]:
        api = self._api(object_type, "batch_api")
        records: list[dict[str, Any]] = []
        for chunk in chunked(ids, BATCH_SIZE):
            body: dict[str, Any] = {
                "properties": properties,
                "propertiesWithHistory": [],
                "inputs": [{"id": i} for i in chunk],
            }
            if id_property:
                body["idProperty"] = id_property
            data = self._call(
                "batch_read",
                lambda b=body: api.read(b, archived=False, **self._raw()),
                where=f"POST /crm/v3/objects/{object_type}/batch/read",
            )
            records.extend(self._shape(object_type, r) for r in data.get("results", []))
        # Batch read has no `associations` parameter: look them all up, 1,000 ids a call.
        self._look_up_associations(
            object_type, dict.fromkeys(ASSOCIATED_TYPES.get(object_type, ()), records)
        )
        return records

    # --- associations -----------------------------------------------------------------------

    def _batch(self, object_type: str, raw: list[dict[str, Any]], *, inline: bool) -> _Batch:
        """Shape one response's records and note which associations are still to be read.

        `inline`: the request asked for `associations` (list API). HubSpot then returns, per
        record and type, the first 100 associations with a `paging.next` cursor when there are
        more (changelog, "Announcing a change to how v3 CRM APIs return association data").
        A type absent from a record means the record has none of it: the types we ask for
        exist (only unknown ones are ignored, per the API's parameter description), and any
        association there is would be listed. So only cut-off lists need a lookup.
        """
        records = [self._shape(object_type, r) for r in raw]
        unresolved: dict[str, list[dict[str, Any]]] = {}
        for to_type in ASSOCIATED_TYPES.get(object_type, ()):
            pending = [
                record
                for record, source in zip(records, raw, strict=True)
                if not inline or _inline_cut_off(source, to_type)
            ]
            if pending:
                unresolved[to_type] = pending
        return _Batch(records, unresolved)

    def _complete_pages(self, object_type: str, batches: Iterable[_Batch]) -> Iterator[Page]:
        """Pages in their order, each once its records' associations are complete.

        Lookups wait for later pages until one more would take a type past 1,000 ids (the v4
        batch limit) or HELD_PAGES_MAX pages are held, so one call serves several pages.
        """
        held: list[list[dict[str, Any]]] = []
        waiting: dict[str, list[dict[str, Any]]] = {}
        for batch in batches:
            too_many = any(
                len(waiting.get(t, ())) + len(rs) > ASSOCIATION_BATCH_SIZE
                for t, rs in batch.unresolved.items()
            )
            if held and (too_many or len(held) >= HELD_PAGES_MAX):
                self._look_up_associations(object_type, waiting)
                yield from (self._page(object_type, records) for records in held)
                held, waiting = [], {}
            held.append(batch.records)
            for to_type, records in batch.unresolved.items():
                waiting.setdefault(to_type, []).extend(records)
            if not waiting:
                yield from (self._page(object_type, records) for records in held)
                held = []
        if held:
            self._look_up_associations(object_type, waiting)
            yield from (self._page(object_type, records) for records in held)

    def _look_up_associations(
        self, object_type: str, waiting: dict[str, list[dict[str, Any]]]
    ) -> None:
        """Fill in each waiting record's associations of a type from the v4 batch read."""
        for to_type, records in waiting.items():
            if not records:
                continue
            ids = list(dict.fromkeys(r["id"] for r in records))
            found = self._associated_ids(object_type, to_type, ids)
            for record in records:
                record["associations"][to_type] = found.get(record["id"], [])

    def _associated_ids(self, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[str]]:
        """Every associated id per record. The v4 batch read pages per input: a result with
        more targets carries `paging.next.after`, sent back as `{"id", "after"}` (SDK
        docstring of `batch_api.get_page`; changelog "Bug Fix: Batch Read Limit for HubSpot
        Associations API"). Follow-ups share calls, up to 1,000 inputs each."""
        api = self._associations_api()
        found: dict[str, list[str]] = {}
        queue: list[dict[str, str]] = [{"id": i} for i in ids]
        while queue:
            inputs, queue = queue[:ASSOCIATION_BATCH_SIZE], queue[ASSOCIATION_BATCH_SIZE:]
            data = self._call(
                "associations",
                lambda b={"inputs": inputs}: api.get_page(from_type, to_type, b, **self._raw()),
                where=f"POST /crm/v4/associations/{from_type}/{to_type}/batch/read",
            )
            for result in data["results"]:
                source = str(result.get("_from", result.get("from", {})).get("id"))
                targets = [str(t["toObjectId"]) for t in result.get("to", [])]
                found.setdefault(source, []).extend(targets)
                after = _next_after(result)
                if after:
                    queue.append({"id": source, "after": after})
        return {source: list(dict.fromkeys(targets)) for source, targets in found.items()}

    # --- writes -----------------------------------------------------------------------------

    def write(
        self,
        object_type: str,
        updates: Sequence[RecordUpdate],
        *,
        confirm_fields: Collection[str] = (),
    ) -> list[WriteResult]:
        """Batch update, 100 a call, steps in order; `confirm_fields` are read back after.

        Pass confirm_fields={"lifecyclestage"} where the mapping asks: HubSpot only moves the
        stage forward and may answer 2xx to a backward write without changing anything.
        """
        return write_records(
            updates,
            lambda batch: self._send_batch(object_type, batch),
            batch_size=BATCH_SIZE,
            retry=self._retry,
            confirm_fields=confirm_fields,
            read_back=lambda ids, fields: self._read_back(object_type, ids, fields),
            same=_same_value,
        )

    def _send_batch(self, object_type: str, batch: list[RecordUpdate]) -> list[WriteResult]:
        """One batch update, and what to do when HubSpot refuses it as a whole.

        HubSpot answers a validation failure with a 400 for the whole batch, applying nothing;
        the body names the property and (in its message) the value, never the input
        (design.md, "HubSpot facts"). So:
        - a property the portal lacks, a read-only one, or an option missing from the
          property would fail every input that sets it: ConfigurationError, before more writes;
        - otherwise the inputs carrying the named (property, value) are rejected with
          HubSpot's code and message, and the rest is resent: one call per bad value named.
        Splitting in halves (13 calls for one bad record in 100, 199 when all are bad;
        api-fidelity-2 F8) is left only for a refusal that names no property, or a value we
        cannot find in our inputs: then nothing else can tell the bad inputs from the good.
        """
        results: dict[int, WriteResult] = {}
        pending = list(range(len(batch)))
        while pending:
            part = [batch[i] for i in pending]
            try:
                answers = self._send_once(object_type, part)
            except (AuthenticationError, BudgetExhausted):
                raise
            except RetriableApiError as error:
                answers = [result_from_error(u, "retry_later", error) for u in part]
            except FatalApiError as error:
                refused = self._refused_inputs(object_type, part, error)
                if refused is None:
                    answers = self._split(object_type, part)
                else:
                    for position, result in refused.items():
                        results[pending[position]] = result
                    pending = [i for n, i in enumerate(pending) if n not in refused]
                    continue
            results.update(zip(pending, answers, strict=True))
            break
        return [results[i] for i in range(len(batch))]

    def _split(self, object_type: str, part: list[RecordUpdate]) -> list[WriteResult]:
        """The last resort: halves until the bad inputs stand alone (see `_send_batch`)."""
        return send_or_split(
            part,
            lambda half: self._send_once(object_type, half),
            lambda error: error.status in BISECTABLE_STATUSES,
        )

    def _refused_inputs(
        self, object_type: str, part: list[RecordUpdate], error: FatalApiError
    ) -> dict[int, WriteResult] | None:
        """Rejections for the inputs a whole-batch 400 names by (property, value), by position
        in `part`; ConfigurationError when the portal itself is wrong; None when the answer
        does not let us tell which inputs are bad."""
        problems = _invalid_properties(error)
        if not problems:
            return None
        refused: dict[int, WriteResult] = {}
        for problem in problems:
            carriers = self._carriers(object_type, part, problem)
            if not carriers:
                return None
            for position in carriers:
                update = part[position]
                refused.setdefault(position, WriteResult(
                    update.record_id, "rejected", code=problem.code,
                    message=scrub(f"{problem.name}: {problem.message}"), step=update.step))
        return refused

    def _carriers(
        self, object_type: str, part: list[RecordUpdate], problem: _InvalidProperty
    ) -> list[int]:
        """Positions of the inputs that carry the (property, value) a problem names; raises
        ConfigurationError when every input setting that property would fail."""
        values = {
            position: _hubspot_value(update.fields[problem.name])
            for position, update in enumerate(part)
            if problem.name in update.fields and update.fields[problem.name] not in (None, "")
        }
        if problem.code in PORTAL_PROBLEMS:
            raise _portal_problem(object_type, problem, next(iter(values.values()), ""))
        if problem.code == "INVALID_OPTION":
            options = self._options(object_type, problem.name)
            missing = sorted({v for v in values.values() if options and v not in options})
            if missing:
                raise _missing_option(object_type, problem, missing, options)
        named = _value_named(problem.message, set(values.values()))
        return [position for position, value in values.items() if value == named]

    def _options(self, object_type: str, name: str) -> tuple[str, ...]:
        """The property's options as the portal has them now (one properties call per object
        type and run); empty when it has none listed (e.g. options kept elsewhere)."""
        if object_type not in self._described:
            self._described[object_type] = self.describe_fields(object_type)
        info = self._described[object_type].get(name)
        return info.options if info is not None else ()

    def _send_once(self, object_type: str, batch: list[RecordUpdate]) -> list[WriteResult]:
        api = self._api(object_type, "batch_api")
        body = {"inputs": [_update_input(u) for u in batch]}
        data = self._call(
            "batch_update",
            lambda: api.update(body, **self._raw()),
            where=f"POST /crm/v3/objects/{object_type}/batch/update",
        )
        return _reconcile_batch(batch, data)

    def _read_back(
        self, object_type: str, ids: list[str], fields: list[str]
    ) -> dict[str, dict[str, Any]]:
        api = self._api(object_type, "batch_api")
        held: dict[str, dict[str, Any]] = {}
        for chunk in chunked(ids, BATCH_SIZE):
            body = {
                "properties": fields,
                "propertiesWithHistory": [],
                "inputs": [{"id": i} for i in chunk],
            }
            data = self._call(
                "batch_read",
                lambda b=body: api.read(b, archived=False, **self._raw()),
                where=f"POST /crm/v3/objects/{object_type}/batch/read",
            )
            for record in data.get("results", []):
                held[str(record["id"])] = record.get("properties", {})
        return held

    # --- schema -----------------------------------------------------------------------------

    def describe_fields(self, object_type: str) -> dict[str, FieldInfo]:
        """Every property of the object type (GET /crm/v3/properties/{type})."""
        api = self._properties_api()
        data = self._call(
            "properties",
            lambda: api.get_all(object_type, archived=False, **self._raw()),
            where=f"GET /crm/v3/properties/{object_type}",
        )
        fields: dict[str, FieldInfo] = {}
        for prop in data.get("results", []):
            metadata = prop.get("modificationMetadata") or {}
            fields[prop["name"]] = FieldInfo(
                name=prop["name"],
                label=prop.get("label", ""),
                type=prop.get("type", ""),
                writable=not metadata.get("readOnlyValue", False) and not prop.get("calculated"),
                options=tuple(str(o.get("value")) for o in prop.get("options") or ()),
            )
        return fields

    def create_property(self, object_type: str, body: dict[str, Any]) -> PropertyCreated:
        """Create one property (POST /crm/v3/properties/{type}, the SDK's properties API).

        `body` is the request as HubSpot documents it (connector.fields.hubspot_property_body).
        A property of that name made meanwhile (409) is `PropertyCreated(created=False)`, never
        changed; any other refusal raises as every call does (FatalApiError with HubSpot's
        message, MissingScopes naming crm.schemas.{type}.write).
        """
        from hubspot.crm.properties import OptionInput, PropertyCreate  # noqa: PLC0415

        api = self._properties_api()
        options = [OptionInput(**{_SNAKE.get(k, k): v for k, v in option.items()})
                   for option in body.get("options") or ()]
        model = PropertyCreate(**{_SNAKE.get(k, k): v for k, v in body.items()
                                  if k != "options"}, options=options or None)
        try:
            data = self._call(
                "create_property",
                lambda: api.create(object_type, model, **self._raw()),
                where=f"POST /crm/v3/properties/{object_type}",
                answer=_object_answer,
            )
        except FatalApiError as error:
            if error.status == 409:
                return PropertyCreated(body["name"], created=False, detail=str(error))
            raise
        self._described.pop(object_type, None)
        return PropertyCreated(str(data.get("name") or body["name"]), created=True)

    # --- plumbing ---------------------------------------------------------------------------

    def _properties(self, object_type: str, fields: Iterable[str]) -> list[str]:
        if object_type not in MODIFIED_PROPERTY:
            raise ValueError(f"unknown HubSpot object type {object_type!r}; use {OBJECT_TYPES}")
        wanted = set(fields) | {MODIFIED_PROPERTY[object_type], MERGED_PROPERTY}
        return sorted(wanted | set(LINK_PROPERTIES[object_type]))

    def _api(self, object_type: str, kind: str) -> Any:
        """The SDK's API object, built once: each SDK attribute access builds a new pool."""
        key = (object_type, kind)
        if key not in self._apis:
            if object_type not in MODIFIED_PROPERTY:
                raise ValueError(f"unknown HubSpot object type {object_type!r}")
            self._apis[key] = getattr(getattr(self._client.crm, object_type), kind)
        return self._apis[key]

    def _properties_api(self) -> Any:
        if ("properties", "core") not in self._apis:
            self._apis["properties", "core"] = self._client.crm.properties.core_api
        return self._apis["properties", "core"]

    def _associations_api(self) -> Any:
        if ("associations", "v4") not in self._apis:
            self._apis["associations", "v4"] = self._client.crm.associations.v4.batch_api
        return self._apis["associations", "v4"]

    def _raw(self) -> dict[str, Any]:
        return {"_preload_content": False, "_request_timeout": self._timeout}

    def _search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        api = self._api(object_type, "search_api")
        return self._call(
            "search",
            lambda: api.do_search(body, **self._raw()),
            where=f"POST /crm/v3/objects/{object_type}/search",
            search=True,
        )

    def _call(
        self, operation: str, send: Callable[[], Any], *, where: str, search: bool = False,
        answer: Callable[[bytes | str | None, str, str], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Send one request under the budgets and the retry policy; return its JSON.

        Every endpoint we call answers an object with a `results` list. A 200 without one
        (empty, `{}`, an HTML page, cut-off JSON: proxies and overloaded front ends send
        them) is retried like a 5xx; taken as an empty page it would end a read early and
        the object would count as completely read. `where` names the endpoint in errors.
        """
        url = f"{where.split(' ', 1)[0]} {self.base_url}{where.split(' ', 1)[-1]}"
        # Search is exempt from the 10-second window and has its own per-second limit.
        window = self._search_window if search else self._window
        read_answer = answer or _results_answer
        return guarded_call(
            operation,
            lambda: read_answer(self._receive(send()), operation, url),
            system=SYSTEM,
            retry=self._retry,
            usage=self._meter,
            classify=lambda error: self._classify(error, operation),
            transport=(urllib3.exceptions.HTTPError, OSError),
            before=(self._daily.check, window.acquire, self._daily.count_call),
        )

    def _receive(self, response: Any) -> Any:
        """The raw body of an answer, once its rate-limit headers are noted."""
        payload = response.data
        self._observe(response.headers)
        response.release_conn()
        return payload

    def _classify(self, error: Exception, operation: str) -> BaseException | None:
        """An SDK failure as our exception tree; None for anything that is not one."""
        sdk_error = _sdk_error_of(error)
        if sdk_error is None:
            return None
        if _is_tls_failure(sdk_error):
            return FatalApiError(
                f"TLS verification failed for {self.base_url}: "
                f"{_tls_reason(sdk_error)}. Check CRMSYNC_CA_BUNDLE and the base URL.",
                system=SYSTEM, operation=operation, code="TLS",
            )
        return classify_hubspot_error(sdk_error, operation, self._observe)

    def _observe(self, headers: Any) -> None:
        """Follow the server's rate-limit headers, when it sends them (not on search): the
        window's size (X-HubSpot-RateLimit-Max, unless fixed by settings), the requests left
        in it, and the portal's daily use."""
        if not headers:
            return
        server_max = _int_header(headers, "X-HubSpot-RateLimit-Max")
        if server_max and self._limits.requests_per_window is None:
            wanted = self._limits.window_for(server_max)
            if wanted != self._window.max_requests:
                self._window.resize(wanted)
        remaining = _int_header(headers, "X-HubSpot-RateLimit-Remaining")
        if remaining is not None:
            # The server counts the whole portal; keep the other integrations' share free.
            reserve = max(0, (server_max or 0) - self._window.max_requests)
            self._window.observe_remaining(remaining - reserve)
        self._daily.observe_usage(parse_hubspot_daily(
            _header(headers, "X-HubSpot-RateLimit-Daily"),
            _header(headers, "X-HubSpot-RateLimit-Daily-Remaining"),
        ))

    def _shape(self, object_type: str, raw: dict[str, Any]) -> dict[str, Any]:
        """HubSpot's record with `associations` reduced to lists of ids."""
        record = dict(raw)
        record["id"] = str(raw["id"])
        record.setdefault("properties", {})
        associations: dict[str, list[str]] = {}
        for to_type, value in (raw.get("associations") or {}).items():
            ids = (
                [str(a["id"]) for a in value.get("results", [])] if isinstance(value, dict) else []
            )
            associations[_association_key(to_type)] = list(dict.fromkeys(ids))
        if object_type == "contacts":
            company = record["properties"].get("associatedcompanyid")
            associations.setdefault("companies", [str(company)] if company else [])
        for to_type in ASSOCIATED_TYPES.get(object_type, ()):
            associations.setdefault(to_type, [])
        record["associations"] = associations
        return record

    def _page(self, object_type: str, records: list[dict[str, Any]]) -> Page:
        """A page of records, with a tombstone for every id a survivor says was merged into
        it (`hs_merged_object_ids`, ";"-separated; the merged-away record itself is gone)."""
        modified = MODIFIED_PROPERTY[object_type]
        times = [t for r in records if (t := _modified_time(r, modified)) is not None]
        tombstones = [
            Tombstone(merged_id, merged_into=record["id"])
            for record in records
            for merged_id in _merged_ids(record)
        ]
        return Page(
            records=records, max_modified=max(times) if times else None, tombstones=tombstones
        )


# --- pure helpers ---------------------------------------------------------------------------


def classify_hubspot_error(
    error: Any, operation: str = "", observe: Callable[[Any], None] | None = None
) -> ApiError | BudgetExhausted | MissingScopes:
    """An SDK ApiException (any package's: they share no base) as our exception tree."""
    status = int(getattr(error, "status", 0) or 0)
    headers = getattr(error, "headers", None) or {}
    body = _json_body(getattr(error, "body", None))
    message = str(body.get("message") or getattr(error, "reason", "") or "")
    code = body.get("category") or body.get("errorType")
    details = {"system": SYSTEM, "operation": operation, "status": status or None, "code": code}
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    if status == 0:
        if "CERTIFICATE_VERIFY_FAILED" in message:
            return FatalApiError(f"TLS verification failed: {message}", **details)
        return RetriableApiError(message or "connection failed", **details)
    if status == 429:
        if observe is not None:
            observe(headers)
        policy = body.get("policyName")
        if policy == "DAILY":
            return BudgetExhausted(
                "hubspot: the daily API limit is used up. Stopped cleanly; rerun tomorrow."
            )
        return RateLimitedError(message, policy=policy, retry_after=retry_after, **details)
    if status == 403 and code == "MISSING_SCOPES":
        scopes = _required_scopes(body)
        return MissingScopes(
            f"hubspot {operation}: the private app's token lacks the scope(s) "
            f"{', '.join(scopes) or '(not named)'}: {message} Grant them in HubSpot (Settings > "
            "Integrations > Private Apps > the app > Scopes), then run `crmsync check`.",
            system=SYSTEM,
            scopes=scopes,
        )
    if status == 401:  # a wrong or revoked private-app token: an admin must fix the setting
        return CredentialsRejected(
            f"{message or 'the access token was refused'}; check "
            "CRMSYNC_HUBSPOT_ACCESS_TOKEN (the private app's access token)",
            **details,
        )
    if status == 423:
        return RetriableApiError(message, retry_after=max(2.0, retry_after or 0.0), **details)
    if status >= 500 or status == 408:
        return RetriableApiError(message, retry_after=retry_after, **details)
    return FatalApiError(message, **details)


def _reconcile_batch(batch: list[RecordUpdate], data: dict[str, Any]) -> list[WriteResult]:
    """Per-record outcome of a batch update (200 or 207): match input ids against `results` and
    the ids named in `errors`, never trusting numErrors; an id in neither is retried later."""
    applied = {str(r["id"]): r.get("properties") or {} for r in data.get("results", [])}
    failed: dict[str, dict[str, Any]] = {}
    for error in data.get("errors", []) or []:
        for record_id in _error_ids(error):
            failed.setdefault(record_id, error)
    results = []
    for update in batch:
        if update.record_id in applied:
            echoed = applied[update.record_id]
            fields = {k: echoed[k] for k in update.fields if k in echoed} or None
            results.append(
                WriteResult(update.record_id, "applied", fields=fields, step=update.step)
            )
        elif update.record_id in failed:
            error = failed[update.record_id]
            category = str(error.get("category") or "") or None
            retriable = category in RETRIABLE_RECORD_CATEGORIES or _error_status(error) >= 500
            results.append(
                WriteResult(
                    update.record_id,
                    "retry_later" if retriable else "rejected",
                    code=category,
                    message=scrub(str(error.get("message", ""))),
                    step=update.step,
                )
            )
        else:
            results.append(
                WriteResult(
                    update.record_id,
                    "retry_later",
                    code="NOT_IN_RESPONSE",
                    message="HubSpot returned neither a result nor an error for this id",
                    step=update.step,
                )
            )
    return results


def _required_scopes(body: dict[str, Any]) -> list[str]:
    """The scopes a 403 MISSING_SCOPES names: `errors[].context.requiredScopes` (or, in newer
    answers, `requiredGranularScopes`). Shape: HubSpot/hubspot-api-nodejs#268."""
    scopes: list[str] = []
    for entry in body.get("errors") or []:
        context = entry.get("context") if isinstance(entry, dict) else None
        for key in ("requiredScopes", "requiredGranularScopes"):
            for scope in (context or {}).get(key) or []:
                if str(scope) not in scopes:
                    scopes.append(str(scope))
    return scopes


def _invalid_properties(error: ApiError) -> list[_InvalidProperty]:
    """The properties a whole-batch validation 400 names, from its message
    `Property values were not valid: [{"isValid":false,"message":...,"error":"INVALID_OPTION",
    "name":"crmsync_priority",...}]` (the shape HubSpot's CRM v3 answers; see the sandbox's
    `_refuse_invalid_batch`). Empty for any other error."""
    if error.status != 400:
        return []
    text = str(error)
    start = text.find(INVALID_PROPERTIES_PREFIX)
    if start < 0:
        return []
    listed = text[start + len(INVALID_PROPERTIES_PREFIX):].lstrip()
    try:
        entries, _ = json.JSONDecoder().raw_decode(listed)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    return [
        _InvalidProperty(str(e["name"]), str(e.get("error") or "INVALID"), str(e.get("message")))
        for e in entries
        if isinstance(e, dict) and e.get("name")
    ]


def _value_named(message: str, values: Collection[str]) -> str | None:
    """Which of `values` a HubSpot validation message quotes ("twelve is not a valid number",
    "x was not one of the allowed options: [a, b]"): the longest one standing as a whole
    word in the message before any list of allowed options, else the only value there is."""
    head = message.split(": [", 1)[0]
    quoted = [
        value for value in values
        if re.search(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])", head)
    ]
    if quoted:
        return max(quoted, key=len)
    return next(iter(values)) if len(values) == 1 else None


def _portal_problem(object_type: str, problem: _InvalidProperty, value: str) -> ConfigurationError:
    what = {
        "PROPERTY_DOESNT_EXIST": f"HubSpot {object_type} has no property '{problem.name}'",
        "READ_ONLY_VALUE": f"HubSpot {object_type}.{problem.name} is read-only",
    }[problem.code]
    return ConfigurationError(
        f"{what} (writing {value!r}): {problem.code}: {scrub(problem.message)}. Every write "
        "that sets it fails, so the run stopped before sending more. Fix the property in "
        "HubSpot or the mapping's write_back, then run `crmsync check`."
    )


def _missing_option(
    object_type: str, problem: _InvalidProperty, missing: list[str], options: Collection[str]
) -> ConfigurationError:
    values = ", ".join(repr(v) for v in missing)
    return ConfigurationError(
        f"HubSpot {object_type}.{problem.name} has no option {values}: every write of that "
        f"value fails ({problem.code}), so the run stopped before sending more. The "
        f"property's options are {sorted(options)}. Add the option in HubSpot (Settings > "
        f"Properties > {object_type} > {problem.name}) or change the mapping's reverse map, "
        "then run `crmsync check`."
    )


def _int_header(headers: Any, name: str) -> int | None:
    value = _header(headers, name)
    if value is None or not str(value).lstrip("-").isdigit():
        return None
    return int(str(value))


def _error_ids(error: dict[str, Any]) -> list[str]:
    context = error.get("context") or {}
    ids = context.get("ids") or context.get("id") or []
    if isinstance(ids, str):
        ids = [ids]
    return [str(i) for i in ids]


def _error_status(error: dict[str, Any]) -> int:
    status = error.get("status")
    return int(status) if isinstance(status, int) or str(status).isdigit() else 0


def _update_input(update: RecordUpdate) -> dict[str, Any]:
    properties = {name: _hubspot_value(value) for name, value in update.fields.items()}
    return {"id": update.record_id, "properties": properties}


def _is_sdk_error(error: BaseException) -> bool:
    return type(error).__module__.startswith("hubspot.") and hasattr(error, "status")


def _sdk_error_of(error: BaseException) -> BaseException | None:
    """The SDK's ApiException behind `error`, if any. hubspot-api-client 12 raises a
    transport failure (TLS included) as an ApiException with status 0 and no body, and its
    own `ApiClient.__call_api` then fails on `e.body.decode(...)`: what reaches us is an
    AttributeError whose context is the real error."""
    if _is_sdk_error(error):
        return error
    context = error.__context__
    if isinstance(error, AttributeError) and context is not None and _is_sdk_error(context):
        return context
    return None


def _is_tls_failure(error: BaseException) -> bool:
    reason = str(getattr(error, "reason", "") or "")
    return int(getattr(error, "status", 0) or 0) == 0 and (
        "SSLError" in reason or "CERTIFICATE_VERIFY_FAILED" in reason
    )


def _tls_reason(error: BaseException) -> str:
    reason = str(getattr(error, "reason", "") or "")
    return " ".join(line for line in reason.splitlines() if line != "SSLError").strip()


def _results_answer(payload: bytes | str | None, operation: str, url: str) -> dict[str, Any]:
    """The JSON object of a 200 answer that carries a `results` list; RetriableApiError for
    anything else, naming the endpoint."""
    problem = None
    data: Any = None
    if not payload:
        problem = "an empty body"
    else:
        try:
            data = json.loads(payload)
        except ValueError:
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            problem = f"a body that is not JSON ({text[:60]!r})"
    if problem is None and not (isinstance(data, dict) and isinstance(data.get("results"), list)):
        problem = "no `results` list"
    if problem is not None:
        raise RetriableApiError(
            f"HTTP 200 with {problem} from {url}; not the documented answer, so not taken "
            "as an empty page",
            system=SYSTEM, operation=operation, code="BAD_ANSWER",
        )
    return data


def _object_answer(payload: bytes | str | None, operation: str, url: str) -> dict[str, Any]:
    """The JSON object of an answer that is one object (a created property)."""
    try:
        data = json.loads(payload) if payload else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RetriableApiError(
            f"HTTP 2xx without a JSON object from {url}; not the documented answer",
            system=SYSTEM, operation=operation, code="BAD_ANSWER",
        )
    return data


def _json_body(body: Any) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return {"message": str(body)[:500]}
    return parsed if isinstance(parsed, dict) else {}


def _header(headers: Any, name: str) -> str | None:
    try:
        return headers.get(name)
    except AttributeError:
        return None


def _search_body(
    filters: list[dict[str, Any]],
    sort_property: str,
    properties: list[str],
    after: int,
    *,
    limit: int = SEARCH_PAGE_SIZE,
) -> dict[str, Any]:
    return {
        "filterGroups": [{"filters": filters}] if filters else [],
        "sorts": [{"propertyName": sort_property, "direction": "ASCENDING"}],
        "properties": properties,
        "limit": limit,
        "after": str(after),
    }


def _range_ms(since: datetime | None, until: datetime | None) -> tuple[int, int | None]:
    """[since, until) as epoch ms bounds: no lower bound is 0, no upper bound is None."""
    lower_ms = _epoch_ms(since) if since is not None else 0
    until_ms = _epoch_ms(until) if until is not None else None
    return lower_ms, until_ms


def _range_filters(
    modified: str, lower_ms: int, until_ms: int | None, *, inclusive: bool = True
) -> list[dict[str, Any]]:
    """Search filters for a modified date from `lower_ms` (>= or >) to before `until_ms`."""
    filters = [_filter(modified, "GTE" if inclusive else "GT", lower_ms)]
    if until_ms is not None:
        filters.append(_filter(modified, "LT", until_ms))
    return filters


def _filter(name: str, operator: str, value: int) -> dict[str, Any]:
    return {"propertyName": name, "operator": operator, "value": str(value)}


def _not_in(name: str, values: Collection[str]) -> dict[str, Any]:
    return {"propertyName": name, "operator": "NOT_IN", "values": sorted(values, key=int)}


def _inline_cut_off(raw: dict[str, Any], to_type: str) -> bool:
    """Whether a record's inline associations of a type go on past this response."""
    for key, value in (raw.get("associations") or {}).items():
        if _association_key(key) == to_type:
            return not isinstance(value, dict) or _next_after(value) is not None
    return False


def _next_after(data: dict[str, Any]) -> str | None:
    after = ((data.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


def _epoch_ms(moment: datetime) -> int:
    return int(as_utc(moment).timestamp() * 1000)


def _modified_time(record: dict[str, Any], modified: str) -> datetime | None:
    value = (record.get("properties") or {}).get(modified) or record.get("updatedAt")
    return parse_timestamp(value)


def _modified_ms(record: dict[str, Any], modified: str) -> int:
    moment = _modified_time(record, modified)
    return _epoch_ms(moment) if moment else 0


def _merged_ids(record: dict[str, Any]) -> list[str]:
    value = (record.get("properties") or {}).get(MERGED_PROPERTY) or ""
    return [part.strip() for part in str(value).split(";") if part.strip()]


def _association_key(to_type: str) -> str:
    """The list API may key associations by a label-ish name; keep the object type."""
    for known in OBJECT_TYPES:
        if to_type == known or to_type.endswith(known):
            return known
    return to_type


def _hubspot_value(value: Any) -> str:
    """HubSpot takes every property value as a string; None clears the property."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return str(_epoch_ms(value))
    return str(value)


def _same_value(wanted: Any, held: Any) -> bool:
    return _hubspot_value(wanted) == ("" if held is None else str(held))
