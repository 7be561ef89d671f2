"""API calls a run made, per system, against the theoretical minimum.

The minimum follows the issue: ceil(records read / page size) + ceil(records written / batch
size), with each endpoint's largest allowed page or batch (design.md, "HubSpot facts" and
"Salesforce facts"), not the sizes our adapters happen to use: a smaller page in an adapter
shows up here as a worse ratio. Counts come from the sandbox's own counters, so every request
that reached the "CRM" is counted, retries included.

Two further kinds of reads are part of what a run must move, and are counted at their own
largest batch: the deals' associations (HubSpot v4 batch read, 1,000 ids) and the read-back
that confirms HubSpot lifecycle-stage writes (design.md: a backward write may answer 2xx and
change nothing). The Salesforce login (one token call per run) is part of the constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["OBJECT_COUNT", "SystemCalls", "calls_by_system", "counters_delta",
           "four_twenty_nines"]

SYSTEMS = ("hubspot", "salesforce")
OBJECT_COUNT = {"hubspot": 3, "salesforce": 4}
# Largest page / batch each endpoint allows (design.md).
PRIMARY_READS = {"hubspot.list": 100, "hubspot.search": 200, "salesforce.query": 2_000}
REQUIRED_READS = {"hubspot.batch_read": 100, "hubspot.associations": 1_000}
WRITES = {"hubspot.batch_update": 100, "salesforce.composite": 200}
TARGET_FACTOR = 1.05


@dataclass(frozen=True)
class SystemCalls:
    """One system's calls in one run, and the minimum that moves the same records."""

    system: str
    calls: int
    by_endpoint: dict[str, int]
    records_read: int
    records_written: int
    minimum: int  # the formula: primary reads + writes
    minimum_with_required: int  # plus associations and confirming read-backs

    @property
    def constant(self) -> int:
        """Rounding: one partial page per object read and per object written, plus a login."""
        return 2 * OBJECT_COUNT[self.system] + 1

    @property
    def allowed(self) -> float:
        return TARGET_FACTOR * self.minimum_with_required + self.constant

    @property
    def ratio(self) -> float:
        return self.calls / self.minimum if self.minimum else float("nan")

    @property
    def meets_target(self) -> bool:
        return self.calls <= self.allowed

    @property
    def read_calls(self) -> int:
        return sum(n for e, n in self.by_endpoint.items() if e in PRIMARY_READS)

    @property
    def write_calls(self) -> int:
        return sum(n for e, n in self.by_endpoint.items() if e in WRITES)

    def extras(self) -> str:
        """Calls outside primary reads and writes, e.g. `associations 46, batch_read 77`."""
        known = PRIMARY_READS.keys() | WRITES.keys()
        parts = [f"{e.split('.', 1)[1]} {n}" for e, n in sorted(self.by_endpoint.items())
                 if e not in known and n]
        return ", ".join(parts) or "-"


def counters_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """`after - before` for the sandbox's per-endpoint counters (requests, records, statuses)."""
    out: dict[str, Any] = {}
    for kind in ("requests", "records_returned", "records_written"):
        old, new = before.get(kind, {}), after.get(kind, {})
        out[kind] = {k: n - old.get(k, 0) for k, n in new.items() if n != old.get(k, 0)}
    statuses: dict[str, dict[str, int]] = {}
    for endpoint, counts in after.get("statuses", {}).items():
        old = before.get("statuses", {}).get(endpoint, {})
        changed = {s: n - old.get(s, 0) for s, n in counts.items() if n != old.get(s, 0)}
        if changed:
            statuses[endpoint] = changed
    out["statuses"] = statuses
    return out


def _pages(records: int, size: int) -> int:
    return math.ceil(records / size) if records > 0 else 0


def calls_by_system(delta: dict[str, Any]) -> dict[str, SystemCalls]:
    """Per system: calls made and the minimum for the records this run moved."""
    requests = delta["requests"]
    returned = delta["records_returned"]
    written = delta["records_written"]
    out = {}
    for system in SYSTEMS:
        mine = {e: n for e, n in requests.items() if e.startswith(system + ".")}
        read = sum(returned.get(e, 0) for e in PRIMARY_READS if e.startswith(system))
        wrote = sum(written.get(e, 0) for e in WRITES if e.startswith(system))
        minimum = sum(_pages(returned.get(e, 0), size) for e, size in PRIMARY_READS.items()
                      if e.startswith(system))
        minimum += sum(_pages(written.get(e, 0), size) for e, size in WRITES.items()
                       if e.startswith(system))
        required = sum(_pages(returned.get(e, 0), size) for e, size in REQUIRED_READS.items()
                       if e.startswith(system))
        out[system] = SystemCalls(system, sum(mine.values()), mine, read, wrote, minimum,
                                  minimum + required)
    return out


def four_twenty_nines(delta: dict[str, Any]) -> int:
    """429 answers in a counters delta, over all endpoints."""
    return sum(counts.get("429", 0) for counts in delta["statuses"].values())
