"""Saved plans and rollbacks: changes not planned by this run, checked before they are sent.

A plan file is only text, and an audit log's before-values may have been overwritten since:
both are checked against the mapping and against the CRMs' current values first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping as TypingMapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from connector.catalog import CATALOG_VERSION, FORWARD_ONLY_FIELDS, record_fields, record_id
from connector.exceptions import ConfigurationError
from connector.mapping import Mapping, WriteRule
from connector.model import Change, SourceRef, System
from connector.plan import same_value
from connector.preflight import canonical_values
from connector.state import StateStore
from connector.sync.read import OBJECTS, read_again
from connector.sync.report import RejectRow
from connector.systems.base import CrmAdapter

if TYPE_CHECKING:
    from connector.sync.engine import Run

__all__ = ["PlanDocument", "SavedChanges", "mapping_fingerprint"]

MAX_ID_LENGTH = 64  # HubSpot ids are numbers, Salesforce ids 15 or 18 characters
PLAN_FORMAT = 1


@dataclass(frozen=True)
class PlanDocument:
    """A plan saved by `crmsync plan -o`, applied later by `crmsync apply`."""

    created_at: str
    mapping_sha256: str
    today: str
    changes: list[Change]

    def to_json(self) -> str:
        return json.dumps(
            {
                "crmsync_plan": PLAN_FORMAT,
                "created_at": self.created_at,
                "mapping_sha256": self.mapping_sha256,
                "today": self.today,
                "changes": [c.model_dump(mode="json") for c in self.changes],
            },
            indent=2,
            default=str,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "plan") -> PlanDocument:
        try:
            data = json.loads(text)
            if data.get("crmsync_plan") != PLAN_FORMAT:
                raise ValueError(f"not a crmsync plan (format {PLAN_FORMAT})")
            changes = [Change.model_validate(c) for c in data["changes"]]
            document = cls(data["created_at"], data["mapping_sha256"], data["today"], changes)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"{source}: cannot read plan: {exc}") from None
        problems = [f"change {index}: {problem}" for index, change in enumerate(changes)
                    if (problem := _malformed(change))]
        if problems:
            raise ConfigurationError(f"{source}: not a plan crmsync could have made: "
                                     + _listed(problems))
        return document


def mapping_fingerprint(mapping: Mapping) -> str:
    """A hash of every rule that decides what a plan writes: a saved plan made with another
    mapping is refused, and a changed mapping makes the next run plan every record again."""
    decisive = {f.name: _ordered(getattr(mapping, f.name)) for f in fields(mapping)
                if f.name not in ("files", "label_packs")}
    # how the code reads records (link and modified fields): a change there replans too
    decisive["catalog_version"] = CATALOG_VERSION
    return hashlib.sha256(repr(sorted(decisive.items())).encode()).hexdigest()


class SavedChanges:
    """Checks changes this run did not plan (a saved plan, a rollback) against the mapping
    and the CRMs' current values, read by id."""

    def __init__(self, store: StateStore, mapping: Mapping,
                 adapters: TypingMapping[str, CrmAdapter], run: Run) -> None:
        self.store, self.mapping, self.adapters, self.run = store, mapping, adapters, run

    def refuse_unless_applicable(self, document: PlanDocument, mapping_sha256: str) -> None:
        """Raise ConfigurationError (exit 2) unless `document` was made with this mapping,
        holds only changes its write-back rules could produce, and every field it changes
        still holds the value the plan expected."""
        if document.mapping_sha256 != mapping_sha256:
            raise ConfigurationError(
                "the plan was made with a different mapping; make a new plan with "
                "`crmsync plan -o plan.json`"
            )
        refused = self._not_plannable(document.changes)
        if refused:
            raise ConfigurationError(
                f"refusing the whole plan: {len(refused)} change(s) are not what this "
                "mapping's write-back rules could produce:" + _listed(refused))
        stale = self._changed_since_plan(document.changes)
        if stale:
            raise ConfigurationError(
                f"refusing the plan: {len(stale)} field(s) changed since it was made, e.g. "
                + "; ".join(stale[:5]) + ". Make a new plan."
            )

    def rollback_changes(self, run_id: int) -> tuple[list[Change], list[RejectRow]]:
        """The changes that write back run `run_id`'s before-values, and the fields left
        because they no longer hold its after-values."""
        entries = self.store.journal.entries(run_id)
        if self.store.journal.run(run_id) is None:
            raise ConfigurationError(f"no run {run_id} in {self.store.path}")
        latest = {}
        for entry in entries:  # the first before and the last after, per field
            key = (entry.ref, entry.field)
            before = latest[key][0] if key in latest else entry.before
            latest[key] = (before, entry.after)
        current = self.current_values({ref for ref, _ in latest})
        changes: list[Change] = []
        skipped: list[RejectRow] = []
        for (ref, name), (before, after) in sorted(latest.items(),
                                                   key=lambda kv: (str(kv[0][0]), kv[0][1])):
            now_value = current.get(str(ref), {}).get(name)
            if not same_value(now_value, after):
                skipped.append(RejectRow(record=str(ref), field=name, stage="rollback",
                                         reason=f"changed since run {run_id}: now "
                                                f"{now_value!r}, the run wrote {after!r}"))
                continue
            changes += _restoring(ref, name, before, now_value, run_id)
        return changes, skipped

    def current_values(self, refs: set[SourceRef]) -> dict[str, dict[str, Any]]:
        """Fresh values of the given records, read by id. They refresh the mirror, so what a
        write then patches into it is this read, not an older copy."""
        out: dict[str, dict[str, Any]] = {}
        by_object: dict[tuple[str, str], list[str]] = {}
        for ref in refs:
            by_object.setdefault((ref.system.value, ref.object_type), []).append(ref.record_id)
        for (system, obj), ids in sorted(by_object.items()):
            records, _ = read_again(self.store, self.adapters[system], self.mapping, system,
                                    obj, sorted(ids), self.run.report.run_id)
            for raw in records:
                ref = SourceRef(system=System(system), object_type=obj,
                                record_id=record_id(system, raw) or "?")
                out[str(ref)] = record_fields(system, raw) or {}
        return out

    def _changed_since_plan(self, changes: list[Change]) -> list[str]:
        first = {}
        for change in sorted(changes, key=lambda c: c.step):
            first.setdefault((change.ref, change.field), change.before)
        current = self.current_values({ref for ref, _ in first})
        stale = []
        for (ref, name), before in sorted(first.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            now_value = current.get(str(ref), {}).get(name)
            if str(ref) not in current:
                stale.append(f"{ref} no longer exists")
            elif not same_value(now_value, before):
                stale.append(f"{ref} {name} is now {now_value!r}, the plan expected {before!r}")
        return stale

    def _not_plannable(self, changes: list[Change]) -> list[str]:
        """Why each change of a saved plan is not one this mapping's write-back rules could
        have planned: a plan file is only text, and `apply` must not write whatever it says."""
        live = self.store.mirror.live_refs({str(change.ref) for change in changes})
        problems = []
        for change in changes:
            where = f"{change.ref} {change.field}"
            rule = next((r for r in self.mapping.write_rules(change.system.value,
                                                             change.object_type)
                         if r.field == change.field), None)
            if rule is None:
                problems.append(f"{where}: the field is not written back by the mapping")
            elif not _producible(self.mapping, rule, change):
                problems.append(f"{where}: the mapping cannot produce {change.after!r} "
                                f"(step {change.step})")
            if str(change.ref) not in live:
                problems.append(f"{where}: the record is not in the state DB's mirror (never "
                                "read, or deleted since)")
        return list(dict.fromkeys(problems))


def _restoring(ref: SourceRef, name: str, before: Any, now_value: Any, run_id: int
               ) -> list[Change]:
    """The change(s) that put `before` back: a forward-only field (a lifecycle stage) is
    cleared first, as a backward move needs."""
    common = {"system": ref.system, "object_type": ref.object_type,
              "record_id": ref.record_id, "field": name, "rule": f"rollback of run {run_id}",
              "reason": f"restore {before!r} written over by run {run_id}"}
    if (ref.system.value, ref.object_type, name) in FORWARD_ONLY_FIELDS \
            and before not in (None, ""):
        return [Change(**common, before=now_value, after="", step=0),
                Change(**common, before="", after=before, step=1)]
    return [Change(**common, before=now_value, after=before)]


def _malformed(change: Change) -> str | None:
    """What makes `change` impossible for crmsync to have planned, whatever the mapping."""
    system, obj = change.system.value, change.object_type
    if obj not in OBJECTS[system]:
        return f"unknown object {system}.{obj}; known: {', '.join(OBJECTS[system])}"
    rid = change.record_id
    if not rid or len(rid) > MAX_ID_LENGTH or not rid.isalnum():
        return (f"record id {rid[:40]!r}{'...' if len(rid) > 40 else ''} is not a {system} "
                f"record id (letters and digits, at most {MAX_ID_LENGTH})")
    if not change.field or len(change.field) > 255:
        return f"field {change.field[:40]!r} is not a field name"
    for name in ("before", "after"):
        if not _is_single_value(getattr(change, name)):
            return f"{change.ref} {change.field}: {name} is not a single value"
    if change.step not in (0, 1):
        return f"{change.ref} {change.field}: step {change.step} (a change has step 0 or 1)"
    return None


def _is_single_value(value: Any) -> bool:
    return value is None or (type(value) in (str, int, float, bool)
                             and len(str(value)) <= 100_000)


def _listed(problems: list[str], shown: int = 20) -> str:
    more = f"\n  ... and {len(problems) - shown} more" if len(problems) > shown else ""
    return "\n  " + "\n  ".join(problems[:shown]) + more


def _ordered(value: Any) -> Any:
    """`value` with every set and dict in a fixed order: their reprs vary between processes."""
    if isinstance(value, set | frozenset):
        return sorted((_ordered(v) for v in value), key=repr)
    if isinstance(value, dict):
        return sorted(((repr(k), _ordered(v)) for k, v in value.items()), key=lambda kv: kv[0])
    if isinstance(value, list | tuple):
        return [_ordered(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, [(f.name, _ordered(getattr(value, f.name)))
                                       for f in fields(value)])
    return value


def _producible(mapping: Mapping, rule: WriteRule, change: Change) -> bool:
    """Whether planning could write `change.after` with `rule` (see plan.py)."""
    after = change.after
    if not _is_single_value(after):
        return False
    forward_only = (rule.system, rule.object, rule.field) in FORWARD_ONLY_FIELDS
    if change.step == 1 and not forward_only:
        return False
    if forward_only and change.step == 0 and after == "":
        return True  # a backward move clears the field first
    attribute = rule.source.split(".", 1)[1]
    if attribute == "trigger_type":
        return after in (None, "") or any(same_value(after, t.type) for t in mapping.triggers)
    if attribute == "trigger_date":
        return after in (None, "") or (isinstance(after, str) and _is_iso_date(after))
    domain = canonical_values(mapping, rule.source)
    if domain is None:
        return False
    for canonical in domain:
        write, target = rule.system_value(canonical)
        if write and same_value(after, target):
            return True
    return False


def _is_iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
