"""Keeping the report's tally as runs go, and the totals each run ends with.

The planner hands `numbers.tally_rows` of every chunk it plans to the state DB (it has the
reconciled entities at hand); at a run's end `run_end_totals` restages the records the run
wrote and counts. The state DB keeps the rows and the totals (connector/state/snapshots.py).
"""

from __future__ import annotations

from typing import Any

from connector.mapping import Mapping
from connector.normalize import normalise
from connector.report.numbers import (
    MOST_ADVANCED_LAST,
    SYSTEMS,
    entity_totals,
    record_stage,
    run_totals,
    system_totals,
)
from connector.state import StateStore

__all__ = ["run_end_totals"]


def run_end_totals(store: StateStore, mapping: Mapping, run_id: int) -> dict[str, Any]:
    """The totals run `run_id` ends with: the systems as it found them, as it left them
    (once the records it wrote are restaged from the mirror, which holds what it wrote as the
    CRMs read it back) and the reconciled entities. A dry run leaves what it found."""
    found = _system_totals(store)
    written = store.snapshots.written_since_tallied(run_id)
    left = found
    if written:
        with store.transaction():
            store.snapshots.restage([(ref, _own_stage(mapping, ref, raw)) for ref, raw in written])
        left = _system_totals(store)
    entities = entity_totals(store.snapshots.entity_counts("person"),
                             store.snapshots.entity_counts("organization"))
    return run_totals(found, left, entities)


def _system_totals(store: StateStore) -> dict[str, Any]:
    return system_totals(store.snapshots.stage_counts(),
                         store.snapshots.agreement_counts(*SYSTEMS, MOST_ADVANCED_LAST))


def _own_stage(mapping: Mapping, ref: str, raw: dict[str, Any]) -> str | None:
    """The stage the record now names, normalised as planning does (None if unreadable)."""
    system, object_type, _ = ref.split(":", 2)
    return record_stage(normalise(mapping, system, object_type, raw))
