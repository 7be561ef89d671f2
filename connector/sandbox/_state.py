"""Everything that changes while the sandbox runs: data, sessions, limits, faults, counters."""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.faults import FaultPlan, FaultSpec
from connector.sandbox.schema import HUBSPOT_MODIFIED_PROPERTY, SALESFORCE_FIELDS, HubSpotPortal
from connector.sandbox.store import Dataset, hs_datetime

# Objects Salesforce merges, and the lookups on other objects a merge moves to the master.
MERGEABLE: dict[str, tuple[tuple[str, str], ...]] = {
    "Lead": (),
    "Contact": (("Opportunity", "ContactId"),),
    "Account": (("Contact", "AccountId"), ("Opportunity", "AccountId")),
}

__all__ = ["BulkControl", "Counters", "RollingWindow", "SalesforceLogins", "SandboxLimits",
           "SandboxState"]


@dataclass(frozen=True)
class SandboxLimits:
    """The allocations the sandbox enforces (defaults: HubSpot Free/Starter, SF Enterprise)."""

    hubspot_requests_per_window: int = 100
    hubspot_window_seconds: float = 10.0
    hubspot_daily_limit: int = 250_000
    # Calls other apps of the portal made today before the sandbox started (they share the
    # daily limit: "shared by every private app in the portal", design.md).
    hubspot_daily_used: int = 0
    search_requests_per_second: int = 5
    salesforce_daily_limit: int = 100_000
    session_ttl_seconds: float = 7200.0
    # HubSpot: seconds before a modified record shows in search (0: at once), and the most
    # targets the v4 association batch read returns per input before paging.
    search_lag_seconds: float = 0.0
    association_page_size: int = 500
    cursor_idle_seconds: float = 15 * 60.0
    # Salesforce answers a query in batches of at most this many rows (2,000 by default; the
    # REST API guide: "the batch size is not guaranteed", it can be smaller). Tests shrink it
    # so that a small org's reads page through cursors that can go stale.
    salesforce_query_batch: int = 2_000
    # Bulk API 2.0 ingest: records a rolling 24 hours may upload ("Salesforce creates a separate
    # batch for every 10,000 records in your job data, up to a daily maximum of 150,000,000
    # records. If the limit is exceeded while processing your job data, the remaining data
    # isn't processed. The ingest job is marked as having failed": Bulk API 2.0 Developer
    # Guide, Understanding Bulk API 2.0 Ingest; guides before Spring '21 said 100 million).
    salesforce_bulk_daily_records: int = 150_000_000


class BulkControl:
    """How the emulated org's Bulk API 2.0 queue behaves: jobs wait `queue_seconds` in
    UploadComplete before a worker takes them (InProgress), then each chunk of 200 records
    takes at least `chunk_seconds`. `pause()` holds every job where it is (a stalled job, as
    a busy org's queue leaves one), `resume()` lets them go on. Tests and benchmarks set these
    through `Sandbox.set_bulk_processing`."""

    def __init__(self, queue_seconds: float = 0.05, chunk_seconds: float = 0.0) -> None:
        self.queue_seconds = queue_seconds
        self.chunk_seconds = chunk_seconds
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self.records_uploaded = 0  # ingest records processed "today" (the daily record limit)
        self.batches = 0  # internal batches used: /limits DailyBulkApiBatches
        self.query_jobs = 0  # query jobs created: /limits DailyBulkV2QueryJobs

    def take_records(self, wanted: int, daily_limit: int) -> int:
        """How many of `wanted` records the daily ingest limit still lets through (taken)."""
        with self._lock:
            granted = max(0, min(wanted, daily_limit - self.records_uploaded))
            self.records_uploaded += granted
            return granted

    def count_batches(self, batches: int) -> None:
        with self._lock:
            self.batches += batches

    def count_query_job(self) -> None:
        with self._lock:
            self.query_jobs += 1

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> None:
        self._running.wait()


class RollingWindow:
    """At most `limit` events in any `seconds`-long window (HubSpot's rolling limits)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._events: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> tuple[bool, int]:
        """Take one slot if free; returns (allowed, remaining after this request)."""
        now = time.monotonic()
        with self._lock:
            while self._events and now - self._events[0] >= self.seconds:
                self._events.popleft()
            if len(self._events) >= self.limit:
                return False, 0
            self._events.append(now)
            return True, self.limit - len(self._events)

    def reset(self) -> None:
        with self._lock:
            self._events.clear()


class DailyAllowance:
    """A simple count against a daily allocation (the sandbox's day starts at start-up)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class Counters:
    """Requests, statuses, records returned and written, and faults, per endpoint."""

    _KINDS = ("requests", "statuses", "records_returned", "records_written", "faults")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: dict[str, int] = defaultdict(int)
            self._statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self._returned: dict[str, int] = defaultdict(int)
            self._written: dict[str, int] = defaultdict(int)
            self._faults: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def request(self, endpoint: str) -> int:
        """Count one request; returns its number at this endpoint (1 for the first)."""
        with self._lock:
            self._requests[endpoint] += 1
            return self._requests[endpoint]

    def requests(self, endpoint: str) -> int:
        with self._lock:
            return self._requests[endpoint]

    def status(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._statuses[endpoint][str(status)] += 1

    def returned(self, endpoint: str, count: int) -> None:
        with self._lock:
            self._returned[endpoint] += count

    def written(self, endpoint: str, count: int) -> None:
        with self._lock:
            self._written[endpoint] += count

    def fault(self, endpoint: str, kind: str) -> None:
        with self._lock:
            self._faults[endpoint][kind] += 1

    def snapshot(self) -> dict[str, Any]:
        """A plain-dict copy, safe to serialise and to compare."""
        with self._lock:
            return {
                "requests": dict(self._requests),
                "statuses": {k: dict(v) for k, v in self._statuses.items()},
                "records_returned": dict(self._returned),
                "records_written": dict(self._written),
                "faults": {k: dict(v) for k, v in self._faults.items()},
                "total_requests": sum(self._requests.values()),
            }


@dataclass(frozen=True)
class SalesforceLogins:
    """What the emulated org accepts besides the connected app's client id and secret: its one
    API user (every login method signs in as this user; query cursors are counted per user),
    the user's password and security token (OAuth password grant, SOAP login()), a refresh
    token issued to the connected app earlier, and the public key of the certificate uploaded
    to the connected app for the JWT bearer flow (None: no certificate, JWT is refused)."""

    username: str = "integration@crmsync-sandbox.example"
    password: str = ""
    security_token: str = ""
    refresh_token: str = ""
    jwt_public_key: Any = None
    jwt_audience: str = "https://login.salesforce.com"


@dataclass(frozen=True)
class SalesforceWriteRules:
    """What the emulated org's configuration does to sObject Collections updates.

    `duplicate_rule`: the standard Lead and Contact duplicate rules, active (Allow + Alert) as
    in every new org: an update of a Lead or Contact that shares its e-mail with another live
    Lead or Contact answers DUPLICATES_DETECTED unless `Sforce-Duplicate-Rule-Header` says
    `allowSave=true`. On by default: strict unless a test says otherwise.
    `automation_max_batch`: triggers and flows whose governor limits a collection of more
    than this many records exceeds (all records of a collection share one transaction); every
    record then fails CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY. None: no such automation.
    """

    duplicate_rule: bool = True
    automation_max_batch: int | None = None


@dataclass
class SandboxState:
    """Shared by every request thread; each part guards itself with its own lock."""

    dataset: Dataset
    hubspot_access_token: str
    salesforce_client_id: str
    salesforce_client_secret: str
    limits: SandboxLimits
    faults: FaultSpec | None = None
    counters: Counters = field(default_factory=Counters)
    salesforce_logins: SalesforceLogins = field(default_factory=SalesforceLogins)
    # HubSpot: the portal's properties (options and properties can be removed), the private
    # app's scopes (None: every scope), and whether batch update refuses a whole batch for one
    # invalid input as HubSpot does (False: the old per-input 207, for tests that need it).
    hubspot_portal: HubSpotPortal = field(default_factory=HubSpotPortal)
    hubspot_scopes: frozenset[str] | None = None
    hubspot_strict_batches: bool = True
    salesforce_writes: SalesforceWriteRules = field(default_factory=SalesforceWriteRules)
    salesforce_bulk: BulkControl = field(default_factory=BulkControl)

    def __post_init__(self) -> None:
        self._fault_plan = FaultPlan(self.faults) if self.faults else None
        self._sessions: dict[str, tuple[float, str]] = {}
        self._sessions_lock = threading.Lock()
        self._hooks: dict[tuple[str, int], list[Callable[[], None]]] = {}
        self._after_hooks: dict[tuple[str, int], list[Callable[[], None]]] = {}
        self._hooks_lock = threading.Lock()
        self._arrival = threading.local()
        self.reset_limits()
        self.hubspot_daily.used = self.limits.hubspot_daily_used

    # ---- limits ---------------------------------------------------------------------------

    def reset_limits(self) -> None:
        """Start every rolling window and daily allocation afresh."""
        limits = self.limits
        self.hubspot_window = RollingWindow(
            limits.hubspot_requests_per_window, limits.hubspot_window_seconds
        )
        self.hubspot_daily = DailyAllowance(limits.hubspot_daily_limit)
        self.search_window = RollingWindow(limits.search_requests_per_second, 1.0)
        self.salesforce_daily = DailyAllowance(limits.salesforce_daily_limit)

    # ---- faults ---------------------------------------------------------------------------

    def set_faults(self, spec: FaultSpec | None) -> None:
        """Replace the fault spec; every endpoint's random stream starts again."""
        self.faults = spec
        self._fault_plan = FaultPlan(spec) if spec else None

    @property
    def fault_plan(self) -> FaultPlan | None:
        return self._fault_plan

    def before_request(self, endpoint: str, nth: int, action: Callable[[], None]) -> None:
        """Run `action` just before the `nth` request (1-based, counted from now) to `endpoint`
        is served: how a test puts one edit at an exact point, e.g. between two pages."""
        target = self.counters.requests(endpoint) + nth
        with self._hooks_lock:
            self._hooks.setdefault((endpoint, target), []).append(action)

    def after_request(self, endpoint: str, nth: int, action: Callable[[], None]) -> None:
        """Run `action` once the `nth` request (1-based, counted from now) to `endpoint` has
        been served (its changes made, its answer built) but before the answer is sent: how a
        test puts a client's death between a CRM accepting a write and the client hearing so."""
        target = self.counters.requests(endpoint) + nth
        with self._hooks_lock:
            self._after_hooks.setdefault((endpoint, target), []).append(action)

    def answered(self) -> None:
        """Run the `after_request` hooks of the request this thread has just served."""
        number = getattr(self._arrival, "number", None)
        seen = getattr(self._arrival, "seen", None)
        if seen is None or number is None:
            return
        with self._hooks_lock:
            actions = self._after_hooks.pop((seen[0], number), [])
        for action in actions:
            action()

    def arrive(self, endpoint: str) -> str | None:
        """Count a request to `endpoint`, run any hook set for it, and draw its whole-request
        fault, counted too."""
        number = self.counters.request(endpoint)
        with self._hooks_lock:
            actions = self._hooks.pop((endpoint, number), [])
        for action in actions:
            action()
        fault = self._fault_plan.request_fault(endpoint) if self._fault_plan else None
        if fault is not None:
            self.counters.fault(endpoint, fault)
        self._arrival.seen = (endpoint, fault)
        self._arrival.number = number
        return fault

    def begin_request(self) -> None:
        """Forget the previous request's arrival on this thread (see `arrival`)."""
        self._arrival.seen = None

    def arrival(self) -> tuple[str, str | None] | None:
        """(endpoint, fault) of the request this thread is serving, or None when no endpoint
        counted it: the app counts such requests as "unknown", so none goes unseen."""
        return getattr(self._arrival, "seen", None)

    # ---- Salesforce sessions --------------------------------------------------------------

    def open_session(self, user: str) -> str:
        """Issue a Salesforce access token for `user`, valid for the configured TTL."""
        token = "00DDn0000000sbx!" + secrets.token_urlsafe(40)
        with self._sessions_lock:
            self._sessions[token] = (time.monotonic() + self.limits.session_ttl_seconds, user)
        return token

    def session_valid(self, token: str | None) -> bool:
        return self.session_user(token) is not None

    def session_user(self, token: str | None) -> str | None:
        """The user a live token was issued to (query cursors are counted per user), or None
        when the token is unknown or expired."""
        if token is None:
            return None
        with self._sessions_lock:
            found = self._sessions.get(token)
            if found is None:
                return None
            expires, user = found
            if time.monotonic() >= expires:
                del self._sessions[token]
                return None
            return user

    def expire_session(self, token: str | None) -> None:
        with self._sessions_lock:
            self._sessions.pop(token or "", None)

    def expire_sessions(self) -> None:
        with self._sessions_lock:
            self._sessions.clear()

    # ---- changes made "by a user" (test helpers) ------------------------------------------

    def user_update_hubspot(
        self, object_type: str, record_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        data = self.dataset
        with data.lock:
            record = data.hubspot[object_type][record_id]
            for name, value in properties.items():
                record["properties"][name] = None if value is None else _hs_text(value)
            data.bump_hubspot(object_type, record, data.clock.now())
            return data.hubspot_record(object_type, record_id)

    def user_create_hubspot(
        self, object_type: str, properties: dict[str, Any], associations: dict[str, list[str]]
    ) -> dict[str, Any]:
        data = self.dataset
        with data.lock:
            stamp = hs_datetime(data.clock.now())
            props = {"createdate": stamp, HUBSPOT_MODIFIED_PROPERTY[object_type]: stamp}
            props.update(properties)
            record = data.add_hubspot(object_type, props)
            for other_type, ids in associations.items():
                for other_id in ids:
                    data.associate(object_type, record["id"], other_type, str(other_id))
            return data.hubspot_record(object_type, record["id"])

    def user_update_salesforce(
        self, sobject: str, record_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        data = self.dataset
        with data.lock:
            record = data.find_salesforce(sobject, record_id)
            if record is None:
                raise KeyError(f"{sobject} {record_id}")
            unknown = set(fields) - set(SALESFORCE_FIELDS[sobject])
            if unknown:
                raise KeyError(f"{sobject} has no fields {sorted(unknown)}")
            record.update(fields)
            data.bump_salesforce(sobject, record, data.clock.now())
            return dict(record)

    def user_delete_salesforce(self, sobject: str, record_id: str) -> dict[str, Any]:
        data = self.dataset
        with data.lock:
            record = self._live_salesforce(sobject, record_id)
            data.delete_salesforce(sobject, record, data.clock.now())
            return dict(record)

    def user_merge_salesforce(
        self, sobject: str, master_id: str, loser_id: str
    ) -> dict[str, Any]:
        """Merge `loser_id` into `master_id` as Salesforce's merge does (SOAP API Developer
        Guide, merge(); Lead, Contact and Account only): the loser is deleted with
        MasterRecordId = the master, records that pointed at the loser are reparented to the
        master (each an update), and the master is updated too."""
        if sobject not in MERGEABLE:
            raise ValueError(f"{sobject} records cannot be merged; only {sorted(MERGEABLE)}")
        data = self.dataset
        with data.lock:
            master = self._live_salesforce(sobject, master_id)
            loser = self._live_salesforce(sobject, loser_id)
            if master is loser:
                raise ValueError("a record cannot be merged into itself")
            moment = data.clock.now()
            for child_type, field_name in MERGEABLE[sobject]:
                for child in data.salesforce[child_type].values():
                    if child.get(field_name) == loser["Id"] and not child["IsDeleted"]:
                        child[field_name] = master["Id"]
                        data.bump_salesforce(child_type, child, moment)
            data.bump_salesforce(sobject, master, moment)
            data.delete_salesforce(sobject, loser, moment, master_id=master["Id"])
            return dict(master)

    def _live_salesforce(self, sobject: str, record_id: str) -> dict[str, Any]:
        record = self.dataset.find_salesforce(sobject, record_id)
        if record is None or record["IsDeleted"]:
            raise KeyError(f"{sobject} {record_id} (absent or deleted)")
        return record

    def user_create_salesforce(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        data = self.dataset
        with data.lock:
            unknown = set(fields) - set(SALESFORCE_FIELDS[sobject])
            if unknown:
                raise KeyError(f"{sobject} has no fields {sorted(unknown)}")
            return dict(data.add_salesforce(sobject, fields))


def _hs_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
