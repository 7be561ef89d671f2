"""The report's numbers, pure: no I/O, no plotting.

Two kinds of input reach here. While a run plans, `tally_rows` turns the reconciled entities
of a chunk of groups into one `TallyRow` per record, which the state DB keeps; at the run's
end the GROUP BY counts of those rows become the run's totals (`run_totals`). A report then
shapes totals, audit entries, rejects and runs into what each chart shows (`funnel`,
`agreement`, `change_summary`, `stuck_causes`, `history`). The field names of every dict
built here are the ones `crmsync report --json` prints, documented in connector/report/data.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from connector.model import LADDER, Deal, Organization, Person, Priority, Sourced
from connector.reconcile import Reconciled
from connector.state.snapshots import TallyRow

__all__ = [
    "MOST_ADVANCED_LAST",
    "NO_STAGE",
    "PRIORITIES",
    "STAGES",
    "SYSTEMS",
    "AuditChange",
    "agreement",
    "change_summary",
    "entity_totals",
    "funnel",
    "history",
    "record_stage",
    "rule_location",
    "run_totals",
    "stuck_causes",
    "system_totals",
    "tally_rows",
]

SYSTEMS = ("hubspot", "salesforce")
NO_STAGE = "none"  # a person record whose system names no stage
# The funnel from top to bottom: the ladder, then the states off it.
STAGES: tuple[str, ...] = (*(stage.value for stage in LADDER), "other", "disqualified", NO_STAGE)
# Which of two stages a person with two records in one system counts at: the later here.
MOST_ADVANCED_LAST: tuple[str | None, ...] = (None, "disqualified", "other",
                                              *(stage.value for stage in LADDER))
PRIORITIES: tuple[str, ...] = tuple(p.value for p in sorted(Priority, key=lambda p: -p.rank))


# ---- the tally, while a run plans ----------------------------------------------------------


def tally_rows(reconciled: Reconciled, views: Iterable[Person | Organization | Deal],
               today: date) -> list[TallyRow]:
    """One row per person and organisation record of `reconciled`: the record's own stage
    (from its view, as its system holds it) and its entity's reconciled values."""
    own = {view.refs[0].key: view for view in views if not isinstance(view, Deal)}
    rows: list[TallyRow] = []
    for person in reconciled.persons:
        refs = [ref for ref in person.refs if ref.key in own]
        if not refs:
            continue
        entity_stage = _value(person.stage)
        fit = None if person.fit is None else person.fit.fit
        priority = _value(person.priority)
        for ref in refs:
            view = own[ref.key]
            assert isinstance(view, Person)
            rows.append(TallyRow(ref.key, ref.system.value, "person", refs[0].key,
                                 record_stage(view), not view.converted_refs, entity_stage,
                                 fit, priority, ""))
    for org in reconciled.organizations:
        refs = [ref for ref in org.refs if ref.key in own]
        if not refs:
            continue
        fit = None if org.fit is None else org.fit.fit
        active = " ".join(sorted({t.type for t in org.triggers if t.is_active(today)}))
        rows.extend(TallyRow(ref.key, ref.system.value, "organization", refs[0].key, None, True,
                             None, fit, _value(org.priority), active) for ref in refs)
    return rows


def record_stage(view: Person | Organization | Deal | Any) -> str | None:
    """A person record's own stage as its system holds it; None for anything else (a
    converted lead names none: its Contact is the person)."""
    return _value(view.stage) if isinstance(view, Person) else None


def _value(sourced: Sourced | None) -> str | None:
    return None if sourced is None else str(sourced.value)


# ---- a run's totals, at its end ------------------------------------------------------------


def system_totals(stage_counts: Iterable[tuple[str, str | None, int]],
                  agreement_counts: Iterable[tuple[str | None, str | None, int]]
                  ) -> dict[str, Any]:
    """What each system holds: person records per stage (`funnel`), and people linked
    across both per pair of stages (`agreement`: HubSpot's stage, Salesforce's, people)."""
    per_system: dict[str, dict[str, int]] = {system: {} for system in SYSTEMS}
    for system, stage, count in stage_counts:
        per_system.setdefault(system, {})[stage or NO_STAGE] = count
    return {"funnel": per_system,
            "agreement": [[a or NO_STAGE, b or NO_STAGE, n] for a, b, n in agreement_counts]}


def entity_totals(people: Iterable[tuple[str | None, bool | None, str | None, str, int]],
                  organizations: Iterable[tuple[str | None, bool | None, str | None, str, int]]
                  ) -> dict[str, Any]:
    """What reconciling gives: people per reconciled stage and priority; organisations by
    ICP fit, active trigger type and priority. Input: `Snapshots.entity_counts` rows."""
    stages: dict[str, int] = {}
    person_priority: dict[str, int] = {}
    total_people = 0
    for stage, _, priority, _, count in people:
        total_people += count
        _add(stages, stage or NO_STAGE, count)
        _add(person_priority, priority or "other", count)
    orgs = {"total": 0, "fit": 0, "not_fit": 0, "unknown_fit": 0}
    triggers: dict[str, int] = {}
    org_priority: dict[str, int] = {}
    for _, fit, priority, active, count in organizations:
        orgs["total"] += count
        orgs["unknown_fit" if fit is None else "fit" if fit else "not_fit"] += count
        for kind in active.split():
            _add(triggers, kind, count)
        _add(org_priority, priority or "other", count)
    return {"people": {"total": total_people, "reconciled": stages, "priority": person_priority},
            "organizations": {**orgs, "triggers": triggers, "priority": org_priority}}


def run_totals(found: dict[str, Any], left: dict[str, Any], entities: dict[str, Any]
               ) -> dict[str, Any]:
    """A run's snapshot: the systems as it `found` them (before its writes) and as it `left`
    them (`system_totals` both), and the reconciled entities (`entity_totals`)."""
    return {"found": found, "left": left, **entities}


def _add(counts: dict[str, int], key: str, count: int) -> None:
    counts[key] = counts.get(key, 0) + count


# ---- what a report shows ---------------------------------------------------------------------


def funnel(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
           reconciled_before: Mapping[str, int] | None,
           reconciled_after: Mapping[str, int] | None) -> dict[str, Any]:
    """People per stage in each system and reconciled, before and after: `stages` in funnel
    order, then per side `{hubspot: {stage: n}, salesforce: ..., reconciled: ...}`, every
    stage listed (0 where none). A side is None where no totals were kept."""

    def side(systems: Mapping[str, Any] | None, reconciled: Mapping[str, int] | None):
        if systems is None and reconciled is None:
            return None
        out = {system: None if systems is None else _every_stage(
            systems.get("funnel", {}).get(system, {})) for system in SYSTEMS}
        out["reconciled"] = _every_stage(reconciled)
        return out

    return {"stages": list(STAGES), "before": side(before, reconciled_before),
            "after": side(after, reconciled_after)}


def _every_stage(counts: Mapping[str, int] | None) -> dict[str, int] | None:
    if counts is None:
        return None
    extra = [stage for stage in counts if stage not in STAGES]  # a stage from a newer crmsync
    return {stage: int(counts.get(stage, 0)) for stage in (*STAGES, *extra)}


def agreement(cells: Iterable[Sequence[Any]] | None) -> dict[str, Any] | None:
    """The HubSpot x Salesforce stage matrix of linked people: `linked_people`, `agreeing`
    (same stage in both), and `matrix[i][j]`, people at `stages[i]` in HubSpot and
    `stages[j]` in Salesforce."""
    if cells is None:
        return None
    index = {stage: position for position, stage in enumerate(STAGES)}
    matrix = [[0] * len(STAGES) for _ in STAGES]
    linked = agreeing = 0
    for first, second, count in cells:
        matrix[index.get(first, index[NO_STAGE])][index.get(second, index[NO_STAGE])] += count
        linked += count
        agreeing += count if first == second else 0
    return {"stages": list(STAGES), "linked_people": linked, "agreeing": agreeing,
            "matrix": matrix}


@dataclass(frozen=True)
class AuditChange:
    """One applied change as the audit log keeps it."""

    system: str
    object_type: str
    record_id: str
    field: str
    before: Any
    after: Any
    step: int = 0


# The order of a field's values, where they have one: (system, object, field, value) -> the
# value's rank (stages: the ladder, off it -1; priorities: their ranking), None otherwise.
Ranker = Callable[[str, str, str, Any], int | None]


def change_summary(changes: Iterable[AuditChange], rank: Ranker) -> dict[str, Any]:
    """What a run wrote, counted by system, object and field (`by_field`) and by transition
    (`transitions`: before -> after). A field moved in two steps (HubSpot's clear, then set)
    counts once, from its first before to its last after. A downgrade moves a value down its
    order (a stage down the ladder or off it, a priority down); a clear leaves it empty."""
    moves: dict[tuple[str, str, str, str], list[Any]] = {}
    for change in changes:
        key = (change.system, change.object_type, change.record_id, change.field)
        if key in moves:
            moves[key][1] = change.after
        else:
            moves[key] = [change.before, change.after]
    by_field: dict[tuple[str, str, str], dict[str, int]] = {}
    transitions: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
    for (system, obj, _, field), (before, after) in moves.items():
        cleared = _empty(after) and not _empty(before)
        down = _is_downgrade(rank(system, obj, field, before), rank(system, obj, field, after))
        counts = by_field.setdefault((system, obj, field),
                                     {"changes": 0, "downgrades": 0, "clears": 0})
        counts["changes"] += 1
        counts["downgrades"] += down
        counts["clears"] += cleared
        shown = (system, obj, field, _shown(before), _shown(after))
        row = transitions.setdefault(shown, {"changes": 0, "downgrade": down, "clear": cleared})
        row["changes"] += 1
    return {
        "changes": len(moves),
        "downgrades": sum(c["downgrades"] for c in by_field.values()),
        "clears": sum(c["clears"] for c in by_field.values()),
        "by_field": [{"system": s, "object": o, "field": f, **c}
                     for (s, o, f), c in sorted(by_field.items(),
                                                key=lambda item: (-item[1]["changes"], item[0]))],
        "transitions": [{"system": s, "object": o, "field": f, "before": b, "after": a, **row}
                        for (s, o, f, b, a), row in sorted(
                            transitions.items(), key=lambda item: (-item[1]["changes"], item[0]))],
    }


def _empty(value: Any) -> bool:
    return value is None or value == ""


def _shown(value: Any) -> str:
    """A value as a transition shows it: empty as "(empty)", flags as true/false."""
    if _empty(value):
        return "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_downgrade(before: int | None, after: int | None) -> bool:
    return before is not None and after is not None and after < before


_RULE_AT = re.compile(r"([A-Za-z_][\w.\-\[\]']*) \(([^()\s]+\.ya?ml):(\d+)\)")


def rule_location(text: str) -> dict[str, str] | None:
    """The first mapping rule a text names with its place, as crmsync writes them
    (`picklists.salesforce.Lead.Status (default.yaml:78)`): {rule, file, line}."""
    found = _RULE_AT.search(text or "")
    if found is None:
        return None
    return {"rule": found.group(1), "file": found.group(2), "line": found.group(3)}


# (record ref, stage, field, reason) -> the mapping rule to fix, {rule, file, line}, or None
FixFinder = Callable[[str, str, str | None, str], dict[str, str] | None]


def stuck_causes(rejects: Iterable[Any], fix_for: FixFinder, examples: int = 3
                 ) -> list[dict[str, Any]]:
    """Open rejects grouped by cause (stage, field and reason), largest first: how many
    records, a few of them, and the mapping rule to fix where one is to blame. `rejects`:
    `RejectEntry`-like (ref, stage, field, reason, code)."""
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for entry in rejects:
        groups.setdefault((entry.stage, entry.field or "", entry.reason), []).append(entry)
    causes = []
    for (stage, field, reason), entries in groups.items():
        refs = sorted(entry.ref for entry in entries)
        causes.append({
            "stage": stage, "field": field or None, "reason": reason,
            "code": entries[0].code, "records": len(refs), "examples": refs[:examples],
            "systems": sorted({ref.split(":", 1)[0] for ref in refs}),
            "fix": fix_for(refs[0], stage, field or None, reason),
        })
    causes.sort(key=lambda cause: (-cause["records"], cause["stage"], cause["reason"]))
    return causes


def history(runs: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per run, oldest first: duration, records read, changes written, API calls and
    the share of each system's daily allocation used at its end. `runs`: `RunRecord`s."""
    rows = []
    for run in sorted(runs, key=lambda r: r.id):
        ended = run.ended_at
        calls = {system: usage.get("calls", 0) for system, usage in run.api_calls.items()}
        shares = {system: _share(usage) for system, usage in run.api_calls.items()}
        rows.append({
            "run_id": run.id, "kind": run.kind, "status": run.status, "dry_run": run.dry_run,
            "started_at": run.started_at.isoformat(),
            "duration_seconds": (round((ended - run.started_at).total_seconds(), 3)
                                 if ended else None),
            "records_read": sum(run.counts.get("read", {}).values()),
            "changes_written": run.counts.get("applied", 0),
            "api_calls": calls,
            "budget_share": shares,
        })
    return rows


def _share(usage: Mapping[str, Any]) -> float | None:
    used, allocation = usage.get("daily_used"), usage.get("daily_allocation")
    if not used or not allocation:
        return None if used is None or not allocation else 0.0
    return round(used / allocation, 6)
