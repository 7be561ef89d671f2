"""API calls HubSpot writes cost when the portal or the data is wrong (api-fidelity-2 F8).

HubSpot refuses a whole batch update with a 400 when one input fails validation, naming the
property and value but not the input. The adapter used to split such a batch in halves until
the bad inputs stood alone; now a configuration error (an option or property the portal
lacks) stops the run, and a bad value only some records carry costs one resend of its batch.

Scenarios, 10,000 contacts written in batches of 100 against a strict sandbox:
- `no errors`: the baseline, every value valid;
- `option missing`: one option of `crmsync_priority` deleted from the portal; a tenth of the
  records carry it, so every write of that value fails;
- `1% invalid`: 1% of the records (random, seeded) carry a value that is not a number for a
  number property; the rest are fine.
Each runs twice: with the bisection the adapter had before (`send_or_split`, replayed by
`_BisectingHubSpot` exactly as `HubSpotAdapter._send_batch` was at commit 96a12db) and now.

The target: at most 1.1x the no-error run's calls, plus one resend per failing record. The
counts are the sandbox's own (every request that reached it). Numbers, not timings.
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.exceptions import ConfigurationError
from connector.sandbox import Sandbox
from connector.systems._writes import send_or_split
from connector.systems.base import RecordUpdate, WriteResult
from connector.systems.hubspot import (
    BATCH_SIZE,
    BISECTABLE_STATUSES,
    HubSpotAdapter,
    HubSpotLimits,
)

__all__ = ["MisconfiguredRow", "measure_misconfigured", "render_misconfigured"]

CONTACTS = 10_000
FIRST_ID = 100_001
PRIORITIES = ("trigger_fit", "fit", "nonfit_lead", "other")
MISSING_OPTION = "trigger_fit"
MISSING_SHARE = 10  # every 10th record carries the deleted option
INVALID_SHARE = 0.01
TARGET_FACTOR = 1.1
UNLIMITED = 10**9


@dataclass(frozen=True)
class MisconfiguredRow:
    """One scenario under one algorithm: the calls it cost and what it achieved."""

    scenario: str
    algorithm: str
    records: int
    failing: int  # records whose write cannot succeed
    batches_sent: int  # distinct batches of the run that reached HubSpot
    update_calls: int
    other_calls: int  # e.g. the property look-up that tells a portal problem from a bad value
    applied: int
    rejected: int
    outcome: str
    baseline_calls: int  # the no-error run's update calls

    @property
    def calls(self) -> int:
        return self.update_calls + self.other_calls

    @property
    def calls_per_batch(self) -> float:
        return self.update_calls / self.batches_sent if self.batches_sent else float("nan")

    @property
    def allowed(self) -> float:
        return TARGET_FACTOR * self.baseline_calls + self.failing

    @property
    def meets_target(self) -> bool:
        return self.calls <= self.allowed


class _BisectingHubSpot(HubSpotAdapter):
    """The adapter with the write path it had before: every whole-batch refusal is split in
    halves until the bad inputs stand alone (the old `HubSpotAdapter._send_batch`)."""

    def _send_batch(self, object_type: str, batch: list[RecordUpdate]) -> list[WriteResult]:
        return send_or_split(
            batch,
            lambda part: self._send_once(object_type, part),
            lambda error: error.status in BISECTABLE_STATUSES,
        )


def measure_misconfigured(workdir: Path, contacts: int = CONTACTS) -> list[MisconfiguredRow]:
    """Run every scenario with both algorithms; writes the table to `workdir` too."""
    baseline: int | None = None
    rows: list[MisconfiguredRow] = []
    for scenario, updates, failing in _scenarios(contacts):
        for algorithm, adapter_class in (("bisection (before)", _BisectingHubSpot),
                                         ("now", HubSpotAdapter)):
            row = _run(scenario, algorithm, adapter_class, updates, failing, baseline, contacts)
            if baseline is None:
                baseline = row.update_calls
                row = _with_baseline(row, baseline)
            rows.append(row)
    rows = [_with_baseline(r, baseline or 0) for r in rows]
    Path(workdir).mkdir(parents=True, exist_ok=True)
    (Path(workdir) / "misconfigured.md").write_text(render_misconfigured(rows), "utf-8")
    return rows


def render_misconfigured(rows: list[MisconfiguredRow]) -> str:
    """The rows as a markdown table, with the target per row."""
    lines = [
        "| scenario | algorithm | failing records | batches sent | update calls | calls/batch "
        "| other calls | applied | rejected | outcome | target (1.1x baseline + failing) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "meets" if r.meets_target else "misses"
        lines.append(
            f"| {r.scenario} | {r.algorithm} | {r.failing} | {r.batches_sent} | "
            f"{r.update_calls} | {r.calls_per_batch:.2f} | {r.other_calls} | {r.applied} | "
            f"{r.rejected} | {r.outcome} | {verdict}: {r.calls} <= {r.allowed:.0f}? |"
        )
    return "\n".join(lines) + "\n"


# ---- scenarios ------------------------------------------------------------------------------


def _ids(contacts: int) -> list[str]:
    return [str(FIRST_ID + n) for n in range(contacts)]


def _scenarios(contacts: int) -> list[tuple[str, list[RecordUpdate], int]]:
    ids = _ids(contacts)
    valid = [RecordUpdate(i, {"crmsync_priority": PRIORITIES[1 + n % 3],
                              "associatedcompanyid": str(n)}) for n, i in enumerate(ids)]
    missing = [
        RecordUpdate(i, {"crmsync_priority": MISSING_OPTION if n % MISSING_SHARE == 0
                         else PRIORITIES[1 + n % 3]})
        for n, i in enumerate(ids)
    ]
    chosen = set(random.Random(8).sample(range(contacts), int(INVALID_SHARE * contacts)))
    invalid = [
        RecordUpdate(i, {"crmsync_priority": PRIORITIES[1 + n % 3],
                         "associatedcompanyid": f"not-a-number-{n}" if n in chosen else str(n)})
        for n, i in enumerate(ids)
    ]
    return [
        ("no errors", valid, 0),
        ("option missing", missing, math.ceil(contacts / MISSING_SHARE)),
        ("1% invalid", invalid, len(chosen)),
    ]


def _fixture(contacts: int) -> dict[str, Any]:
    records = [{"id": i, "properties": {"email": f"person{n}@example.com"}}
               for n, i in enumerate(_ids(contacts))]
    return {"hubspot": {"contacts": records}}


def _run(
    scenario: str,
    algorithm: str,
    adapter_class: type[HubSpotAdapter],
    updates: list[RecordUpdate],
    failing: int,
    baseline: int | None,
    contacts: int,
) -> MisconfiguredRow:
    with Sandbox(fixture=_fixture(contacts), hubspot_requests_per_window=UNLIMITED,
                 search_requests_per_second=UNLIMITED, hubspot_daily_limit=UNLIMITED) as sb:
        if scenario == "option missing":
            sb.remove_hubspot_option("contacts", "crmsync_priority", MISSING_OPTION)
        adapter = adapter_class(
            sb.hubspot_access_token, sb.hubspot_base_url, ca_bundle=sb.ca_path,
            limits=HubSpotLimits(requests_per_window=UNLIMITED, search_per_second=UNLIMITED),
        )
        results: list[WriteResult] = []
        outcome = "completed"
        try:
            for start in range(0, len(updates), BATCH_SIZE):
                results.extend(adapter.write("contacts", updates[start:start + BATCH_SIZE]))
        except ConfigurationError:
            outcome = "stopped: ConfigurationError (exit 2)"
        requests = sb.counters()["requests"]
    update_calls = requests.get("hubspot.batch_update", 0)
    return MisconfiguredRow(
        scenario=scenario,
        algorithm=algorithm,
        records=len(updates),
        failing=failing,
        batches_sent=math.ceil(len(results) / BATCH_SIZE) + (outcome != "completed"),
        update_calls=update_calls,
        other_calls=sum(n for e, n in requests.items() if e != "hubspot.batch_update"),
        applied=sum(r.status == "applied" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
        outcome=outcome,
        baseline_calls=baseline or update_calls,
    )


def _with_baseline(row: MisconfiguredRow, baseline: int) -> MisconfiguredRow:
    return MisconfiguredRow(**{**row.__dict__, "baseline_calls": baseline})


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-") as workdir:
        rows = measure_misconfigured(Path(workdir))
    sys.stdout.write(render_misconfigured(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
