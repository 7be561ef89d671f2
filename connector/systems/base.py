"""The interface every CRM adapter implements, and the plain values that cross it.

The sync engine sees only this: pages of plain dicts (each system's own record shape), writes
as `RecordUpdate`s answered one-for-one by `WriteResult`s, and field descriptions for `check`.
Keeping the SDKs' types out of it keeps the core free of I/O and the adapters swappable.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

__all__ = [
    "ApiUsage",
    "CrmAdapter",
    "FieldInfo",
    "Page",
    "RecordUpdate",
    "Tombstone",
    "WriteResult",
    "WriteStatus",
    "chunked",
    "ordered_steps",
]

WriteStatus = Literal["applied", "rejected", "retry_later"]

T = TypeVar("T")


@dataclass(frozen=True)
class Tombstone:
    """A record that is gone from its CRM: deleted (archived), or merged into `merged_into`.

    The engine marks it deleted in the mirror: it takes no further part in linking or
    reconciliation and is never a write target; a merge moves its links to the survivor.
    """

    record_id: str
    deleted_at: datetime | None = None
    merged_into: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of records as the API returned them, with the newest modified time among them.

    `max_modified` lets the engine checkpoint a watermark after each fully processed page.
    `tombstones` are records of the same object found gone (a HubSpot survivor names the ids
    merged into it in `hs_merged_object_ids`; deletion reads carry only tombstones).
    """

    records: list[dict[str, Any]]
    max_modified: datetime | None
    tombstones: list[Tombstone] = field(default_factory=list)


@dataclass(frozen=True)
class RecordUpdate:
    """Fields to set on one record. Updates with a higher `step` go in later requests, and only
    for records whose earlier steps were applied (HubSpot lifecycle: clear, then set)."""

    record_id: str
    fields: dict[str, Any]
    step: int = 0


@dataclass(frozen=True)
class WriteResult:
    """What happened to one RecordUpdate: applied, rejected for good, or to be retried later.

    `code` and `message` are the system's own (e.g. CANNOT_UPDATE_CONVERTED_LEAD); `fields` are
    the values the system reports after an applied write, when it reports them.
    """

    record_id: str
    status: WriteStatus
    code: str | None = None
    message: str | None = None
    fields: dict[str, Any] | None = None
    step: int = 0


@dataclass(frozen=True)
class FieldInfo:
    """A field (HubSpot property, Salesforce field) as the system describes it."""

    name: str
    label: str
    type: str
    writable: bool = True
    options: tuple[str, ...] = ()


@dataclass
class ApiUsage:
    """API calls made by one adapter, for run reports and budget tests."""

    system: str
    calls: int = 0
    retries: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    daily_used: int | None = None
    daily_allocation: int | None = None
    rate_wait_seconds: float = 0.0

    def count(self, operation: str) -> None:
        self.calls += 1
        self.by_operation[operation] = self.by_operation.get(operation, 0) + 1

    def snapshot(self) -> ApiUsage:
        return ApiUsage(
            self.system,
            self.calls,
            self.retries,
            dict(self.by_operation),
            self.daily_used,
            self.daily_allocation,
            self.rate_wait_seconds,
        )


@runtime_checkable
class CrmAdapter(Protocol):
    """One CRM behind the same interface; implemented by HubSpotAdapter and SalesforceAdapter."""

    system: str

    def read_changed(
        self, object_type: str, since: datetime | None, fields: Iterable[str]
    ) -> Iterator[Page]:
        """Records modified at or after `since` (all when None), oldest first, page by page."""
        ...

    def read_all(
        self,
        object_type: str,
        fields: Iterable[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Page]:
        """Every record (a backfill), optionally only those modified in [since, until)."""
        ...

    def count(
        self, object_type: str, since: datetime | None = None, until: datetime | None = None
    ) -> int | None:
        """How many records `read_all(object_type, fields, since, until)` would return, or None
        when the system cannot tell cheaply.

        For progress and ETAs (`crmsync backfill`), so it costs exactly one API call under the
        same retry policy and rate budget as any other. It is an estimate by nature: records
        change between the count and the read, and HubSpot search is eventually consistent.
        """
        ...

    def read_deleted(self, object_type: str, since: datetime | None) -> Iterator[Page]:
        """Records deleted or merged away at or after `since` (all the API still knows when
        None), as pages of `tombstones` with no records; `max_modified` is the newest deletion
        time among them. One call per object when nothing was deleted."""
        ...

    def read_by_ids(
        self, object_type: str, ids: Iterable[str], fields: Iterable[str]
    ) -> list[dict[str, Any]]:
        """The records with these ids that exist; unknown ids are simply absent."""
        ...

    def read_by_emails(
        self, object_type: str, emails: Iterable[str], fields: Iterable[str]
    ) -> list[dict[str, Any]]:
        """The person records with these e-mail addresses (case-insensitive)."""
        ...

    def write(
        self,
        object_type: str,
        updates: Sequence[RecordUpdate],
        *,
        confirm_fields: Collection[str] = (),
    ) -> list[WriteResult]:
        """Apply updates in batches; one result per update, in input order. Never raises for a
        single record; raises only when the run must stop (auth, budget)."""
        ...

    def describe_fields(self, object_type: str) -> dict[str, FieldInfo]:
        """Every field of an object type, by API name."""
        ...

    @property
    def api_calls(self) -> int: ...

    def usage(self) -> ApiUsage: ...


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def ordered_steps(updates: Sequence[RecordUpdate]) -> list[tuple[int, list[int]]]:
    """(step, indexes into `updates`) in ascending step order, input order within a step."""
    steps: dict[int, list[int]] = {}
    for index, update in enumerate(updates):
        steps.setdefault(update.step, []).append(index)
    return sorted(steps.items())


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC: both CRMs store UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_timestamp(value: Any) -> datetime | None:
    """A CRM timestamp (ISO 8601 text or epoch milliseconds) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]  # Salesforce: +0000
    return as_utc(datetime.fromisoformat(text))
