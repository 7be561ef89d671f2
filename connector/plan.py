"""Desired canonical state vs what each record holds -> the field-level Changes to make.

Only fields listed under `write_back` are ever written, and only where the system value
differs. Converted Salesforce leads are never targets (the API refuses them). A stage never
moves backward unless precedence allows downgrades; HubSpot's forward-only `lifecyclestage`
then needs a clear and a set in two ordered steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from functools import lru_cache
from typing import Any

from connector.mapping import Mapping, WriteRule
from connector.model import Change, LifecycleStage, Organization, Person, SourceRef, System
from connector.normalize import raw_text
from connector.reconcile import Reconciled, active_positive_trigger

__all__ = ["FORWARD_ONLY_FIELDS", "Plan", "make_plan", "same_value"]

# HubSpot answers 2xx to a backward lifecyclestage write and ignores it (design.md).
FORWARD_ONLY_FIELDS = {("hubspot", "contacts", "lifecyclestage"),
                       ("hubspot", "companies", "lifecyclestage")}
# Change's own validation, without the keyword-argument frame of Change(...): 30% faster, and
# a backfill plans a change for most records.
_new_change = Change.__pydantic_validator__.validate_python


@dataclass(frozen=True)
class Plan:
    changes: list[Change] = field(default_factory=list)

    def by_record(self) -> dict[SourceRef, list[Change]]:
        out: dict[SourceRef, list[Change]] = {}
        for change in self.changes:
            out.setdefault(change.ref, []).append(change)
        return out


def make_plan(mapping: Mapping, reconciled: Reconciled, today: date) -> Plan:
    changes: list[Change] = []
    targets = _TARGETS
    for person in reconciled.persons:
        values = _Values(person, _person_value, today)
        for ref in person.refs:
            if person.converted_refs and ref in person.converted_refs:
                continue  # Salesforce refuses updates to converted leads
            _record_changes(mapping, ref, values, targets, changes)
    for org in reconciled.organizations:
        values = _Values(org, _organization_value, today)
        for ref in org.refs:
            _record_changes(mapping, ref, values, targets, changes)
    changes.sort(key=lambda c: (c.system, c.object_type, c.record_id, c.field, c.step))
    return Plan(changes)


class _Values:
    """An entity's canonical value per write-back source, worked out once for all its records.

    A value comes with its explanation, built from every candidate on first use: only the
    records that actually change need it.
    """

    def __init__(self, entity, value_of, today: date) -> None:
        self.entity = entity
        self._value_of = value_of
        self._today = today
        self._found: dict[str, tuple[Any, _Lazy] | None] = {}

    def get(self, source: str) -> tuple[Any, _Lazy] | None:
        if source not in self._found:
            found = self._value_of(source, self.entity, self._today)
            self._found[source] = None if found is None else (found[0], _Lazy(found[1]))
        return self._found[source]


class _Targets:
    """What a write rule sends for a canonical value, and its comparable form, worked out once
    per rule and value: a plan asks the same few questions for every record.

    Shared by every plan (the engine plans group by group). Entries hold their rule, so a
    rule's id cannot be reused by another while its entry exists; the cache is emptied when
    it grows past `limit` (each mapping has a few dozen rules, each a handful of values).
    """

    def __init__(self, limit: int = 4_096) -> None:
        self._known: dict[tuple[int, type, Any], tuple[WriteRule, tuple[Any, str] | None]] = {}
        self._limit = limit

    def get(self, rule: WriteRule, system: System, canonical: Any) -> tuple[Any, str] | None:
        """(value to write, its comparable text), or None when the rule writes nothing."""
        key = (id(rule), type(canonical), canonical)
        try:
            held = self._known.get(key)
        except TypeError:  # an unhashable value: work it out every time
            return self._work_out(rule, system, canonical)
        if held is not None and held[0] is rule:
            return held[1]
        if len(self._known) >= self._limit:
            self._known.clear()
        found = self._work_out(rule, system, canonical)
        self._known[key] = (rule, found)
        return found

    @staticmethod
    def _work_out(rule: WriteRule, system: System, canonical: Any) -> tuple[Any, str] | None:
        write, target = rule.system_value(canonical)
        if not write:
            return None
        target = _wire_value(system, target)
        return target, _comparable(target)


_TARGETS = _Targets()


def _record_changes(mapping, ref: SourceRef, values: _Values, targets: _Targets,
                    out: list[Change]) -> None:
    rules = mapping.write_back.get((ref.system, ref.object_type))  # System hashes as its text
    if not rules:
        return
    current = values.entity.current.get(str(ref), {})
    for rule in rules:
        found = values.get(rule.source)
        if found is None:
            continue  # nothing known to write (no stage yet, no organisation)
        canonical, why = found
        target = targets.get(rule, ref.system, canonical)
        if target is None:
            continue
        after, comparable = target
        before = current.get(rule.field)
        if _comparable(before) == comparable:  # same_value(before, after)
            continue
        out.extend(_changes_for(mapping, ref, rule, before, after, canonical, why))


def _changes_for(mapping, ref, rule: WriteRule, before, after, canonical,
                 why: _Lazy) -> list[Change]:
    def change(b, a, step=0, note="") -> Change:
        return _new_change({"system": ref.system, "object_type": ref.object_type,
                            "record_id": ref.record_id, "field": rule.field, "before": b,
                            "after": a, "rule": f"{rule.rule} <- {why().rule}",
                            "reason": why().reason + note, "step": step})

    if rule.source != "person.stage":
        return [change(before, after)]
    forward = _forward_map(mapping, ref, rule.field)
    current_stage = _stage_of(forward, before)
    if current_stage == canonical:
        return []  # e.g. a localised label that already means this stage: keep the admin's value
    allow = mapping.precedence["person.stage"].allow_downgrade
    if canonical.is_downgrade_from(current_stage) and not allow:
        return []
    backward = _is_backward_in_crm(forward, before, after)
    if (ref.system, ref.object_type, rule.field) in FORWARD_ONLY_FIELDS and backward:
        note = "; HubSpot only moves lifecyclestage forward, so clear it first"
        return [change(before, "", 0, note), change("", after, 1, note)]
    return [change(before, after)]


def _forward_map(mapping: Mapping, ref: SourceRef, field_name: str):
    for field_map in mapping.picklists.get((ref.system.value, ref.object_type), ()):
        if field_map.field == field_name:
            return field_map
    return None


def _stage_of(forward, raw: Any) -> LifecycleStage | None:
    if forward is None:
        return None
    meaning = forward.values.get(raw_text(raw))
    return meaning.stage if meaning else None


def _is_backward_in_crm(forward, before: Any, after: Any) -> bool:
    if forward is None or raw_text(before) == "":
        return False
    old, new = forward.position(raw_text(before)), forward.position(raw_text(after))
    return old is not None and new is not None and new < old


def _wire_value(system: System, value: Any) -> Any:
    """HubSpot properties are all strings; Salesforce takes JSON types (null, booleans)."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, date):
        value = value.isoformat()
    if system is System.HUBSPOT:
        return raw_text(value) if not isinstance(value, str) else value
    return value


def same_value(a: Any, b: Any) -> bool:
    """Equal as the CRM would store them: None == "", True == "true", 5.0 == "5"."""
    return _comparable(a) == _comparable(b)


def _comparable(value: Any) -> str:
    if type(value) is str:  # the common case; raw_text of a str is the str stripped
        return _comparable_text(value.strip())
    return _comparable_text(raw_text(value.isoformat() if isinstance(value, date) else value))


@lru_cache(maxsize=4096)
def _comparable_text(text: str) -> str:
    """Cached: write-back values are a few picklist values, flags and dates, compared often,
    and `float()` on text that is no number costs an exception each time."""
    if text.casefold() in ("true", "false"):
        return text.casefold()
    try:
        number = float(text)
    except ValueError:
        return text
    return raw_text(number)


# ---- canonical values by write-back source ---------------------------------------------------


@dataclass(frozen=True)
class _Why:
    rule: str
    reason: str


class _Lazy:
    """An explanation built on first use, then kept (a record may get two steps)."""

    def __init__(self, explain: Callable[[], _Why]) -> None:
        self._explain = explain
        self._why: _Why | None = None

    def __call__(self) -> _Why:
        if self._why is None:
            self._why = self._explain()
        return self._why


def _person_value(source: str, person: Person, today: date):
    """(canonical value, its explanation) for a person, or None when nothing is known."""
    if source == "person.stage":
        if person.stage is None:
            return None
        return person.stage.value, lambda: _stage_why(person)
    if source == "person.fit":
        if person.fit is None:
            return None
        fit = person.fit
        return fit.fit, lambda: _Why(fit.rule, _fit_reason(fit))
    if person.priority is None:
        return None
    return person.priority.value, lambda: _priority_why(person.priority)


def _stage_why(person: Person) -> _Why:
    prov = person.stage.provenance
    others = ", ".join(
        f"{c.provenance.source} says {c.value.value}" for c in person.stage_candidates
    )
    return _Why(prov.rule, f"stage {person.stage.value.value}: {others or prov.describe()}")


def _organization_value(source: str, org: Organization, today: date):
    """(canonical value, its explanation) for an organisation, or None when nothing is known."""
    if source == "organization.fit":
        if org.fit is None:
            return None
        return org.fit.fit, lambda: _Why(org.fit.rule, _fit_reason(org.fit))
    if source == "organization.priority":
        return org.priority.value, lambda: _priority_why(org.priority)
    if source == "organization.relationship":
        if org.relationship is None:
            return None
        relationship = org.relationship
        return relationship.value, lambda: _Why(relationship.provenance.rule,
                                                f"relationship {relationship.value.value}")
    trigger = active_positive_trigger(org.triggers, today)
    if trigger is None:
        return {"organization.trigger_active": False}.get(source), _no_trigger
    values = {
        "organization.trigger_active": True,
        "organization.trigger_type": trigger.type,
        "organization.trigger_date": trigger.occurred_at,
    }
    return values[source], lambda: _Why(
        trigger.provenance.rule, f"{trigger.type} on {trigger.occurred_at} "
        f"(active until {trigger.expires_at}) from {trigger.provenance.source}")


def _no_trigger() -> _Why:
    return _Why("triggers", "no active positive trigger (none, expired or suppressed)")


def _priority_why(priority) -> _Why:
    rule = priority.provenance.rule
    return _Why(rule, f"priority {priority.value.value}: {rule.removeprefix('priority: ')}")


def _fit_reason(fit) -> str:
    if fit.asserted_by is not None:
        return f"fit {str(fit.fit).lower()}: asserted by {fit.asserted_by.describe()}"
    verdict = "fits" if fit.fit else "does not fit"
    failed = f"; failed: {', '.join(fit.failed)}" if fit.failed else ""
    return f"{verdict} the ICP (matched: {', '.join(fit.matched) or 'none'}{failed})"
