"""Desired canonical state vs what each record holds -> the field-level Changes to make.

Only fields listed under `write_back` are ever written, and only where the system value
differs. Converted Salesforce leads are never targets (the API refuses them). A stage never
moves backward unless precedence allows downgrades; HubSpot's forward-only `lifecyclestage`
then needs a clear and a set in two ordered steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any

from connector.mapping import Mapping, WriteRule
from connector.model import Change, LifecycleStage, Organization, Person, SourceRef, System
from connector.normalize import raw_text
from connector.reconcile import Reconciled, active_positive_trigger

__all__ = ["FORWARD_ONLY_FIELDS", "Plan", "make_plan", "same_value"]

# HubSpot answers 2xx to a backward lifecyclestage write and ignores it (design.md).
FORWARD_ONLY_FIELDS = {("hubspot", "contacts", "lifecyclestage"),
                       ("hubspot", "companies", "lifecyclestage")}


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
    for person in reconciled.persons:
        for ref in person.refs:
            if ref in person.converted_refs:
                continue  # Salesforce refuses updates to converted leads
            changes.extend(_record_changes(mapping, ref, person, _person_value, today))
    for org in reconciled.organizations:
        for ref in org.refs:
            changes.extend(_record_changes(mapping, ref, org, _organization_value, today))
    changes.sort(key=lambda c: (c.system, c.object_type, c.record_id, c.field, c.step))
    return Plan(changes)


def _record_changes(mapping, ref: SourceRef, entity, value_of, today) -> list[Change]:
    rules = mapping.write_back.get((ref.system.value, ref.object_type), ())
    current = entity.current.get(str(ref), {})
    out: list[Change] = []
    for rule in rules:
        found = value_of(rule.source, entity, today)
        if found is None:
            continue  # nothing known to write (no stage yet, no organisation)
        canonical, why = found
        write, target = rule.system_value(canonical)
        if not write:
            continue
        target = _wire_value(ref.system, target)
        before = current.get(rule.field)
        if same_value(before, target):
            continue
        out.extend(_changes_for(mapping, ref, rule, before, target, canonical, why))
    return out


def _changes_for(mapping, ref, rule: WriteRule, before, after, canonical, why) -> list[Change]:
    def change(b, a, step=0, note="") -> Change:
        return Change(system=ref.system, object_type=ref.object_type, record_id=ref.record_id,
                      field=rule.field, before=b, after=a, rule=f"{rule.rule} <- {why.rule}",
                      reason=why.reason + note, step=step)

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
    if (ref.system.value, ref.object_type, rule.field) in FORWARD_ONLY_FIELDS and backward:
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
    text = raw_text(value.isoformat() if isinstance(value, date) else value)
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


def _person_value(source: str, person: Person, today: date):
    if source == "person.stage":
        if person.stage is None:
            return None
        prov = person.stage.provenance
        others = ", ".join(
            f"{c.provenance.source} says {c.value.value}" for c in person.stage_candidates
        )
        return person.stage.value, _Why(prov.rule, f"stage {person.stage.value.value}: "
                                        f"{others or prov.describe()}")
    if source == "person.fit":
        if person.fit is None:
            return None
        return person.fit.fit, _Why(person.fit.rule, _fit_reason(person.fit))
    if person.priority is None:
        return None
    return person.priority.value, _priority_why(person.priority)


def _organization_value(source: str, org: Organization, today: date):
    if source == "organization.fit":
        if org.fit is None:
            return None
        return org.fit.fit, _Why(org.fit.rule, _fit_reason(org.fit))
    if source == "organization.priority":
        return org.priority.value, _priority_why(org.priority)
    if source == "organization.relationship":
        if org.relationship is None:
            return None
        return org.relationship.value, _Why(org.relationship.provenance.rule,
                                            f"relationship {org.relationship.value.value}")
    trigger = active_positive_trigger(org.triggers, today)
    if trigger is None:
        why = _Why("triggers", "no active positive trigger (none, expired or suppressed)")
        return {"organization.trigger_active": False}.get(source), why
    why = _Why(trigger.provenance.rule, f"{trigger.type} on {trigger.occurred_at} "
               f"(active until {trigger.expires_at}) from {trigger.provenance.source}")
    values = {
        "organization.trigger_active": True,
        "organization.trigger_type": trigger.type,
        "organization.trigger_date": trigger.occurred_at,
    }
    return values[source], why


def _priority_why(priority) -> _Why:
    rule = priority.provenance.rule
    return _Why(rule, f"priority {priority.value.value}: {rule.removeprefix('priority: ')}")


def _fit_reason(fit) -> str:
    if fit.asserted_by is not None:
        return f"fit {str(fit.fit).lower()}: asserted by {fit.asserted_by.describe()}"
    verdict = "fits" if fit.fit else "does not fit"
    failed = f"; failed: {', '.join(fit.failed)}" if fit.failed else ""
    return f"{verdict} the ICP (matched: {', '.join(fit.matched) or 'none'}{failed})"
