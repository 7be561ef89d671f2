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
from operator import itemgetter
from typing import Any

from connector.catalog import FORWARD_ONLY_FIELDS, raw_text
from connector.mapping import FieldMap, Mapping, WriteRule
from connector.model import (
    Change,
    IcpFit,
    LifecycleStage,
    Organization,
    Person,
    Priority,
    SourceRef,
    System,
)
from connector.reconcile import Reconciled, active_positive_trigger

__all__ = ["Plan", "make_plan", "same_value"]


@dataclass(frozen=True)
class Plan:
    changes: list[Change] = field(default_factory=list)

    def by_record(self) -> dict[SourceRef, list[Change]]:
        out: dict[SourceRef, list[Change]] = {}
        for change in self.changes:
            out.setdefault(change.ref, []).append(change)
        return out


def make_plan(mapping: Mapping, reconciled: Reconciled, today: date) -> Plan:
    """The changes that bring every record to its entity's canonical values.

    Records are visited in plan order (system, object, id) and each one's rules in field
    order, so the changes come out sorted by (system, object, id, field, step).
    """
    def explain_organization(source: str, org: Organization) -> _Why:
        return _organization_why(source, org, today)

    by_object: dict[tuple[str, str], list[tuple[str, SourceRef, _Desired]]] = {}
    for person in reconciled.persons:
        desired = _Desired(person, _person_values(person), _person_why)
        for ref in person.refs:
            if person.converted_refs and ref in person.converted_refs:
                continue  # Salesforce refuses updates to converted leads
            by_object.setdefault((ref.system, ref.object_type), []).append((ref.key, ref, desired))
    for org in reconciled.organizations:
        desired = _Desired(org, _organization_values(org, today), explain_organization)
        for ref in org.refs:
            by_object.setdefault((ref.system, ref.object_type), []).append((ref.key, ref, desired))
    changes: list[Change] = []
    for obj in sorted(by_object):
        # Within one object a record's text orders as its id does.
        for _, ref, desired in sorted(by_object[obj], key=itemgetter(0)):
            _record_changes(mapping, ref, desired, changes)
    return Plan(changes)


class _Desired:
    """An entity's canonical value per write-back source, and why it has that value.

    The values are a handful of attributes, worked out up front; an explanation is built on
    first use, since only the records that actually change need it.
    """

    __slots__ = ("_explain", "_why", "entity", "values")

    def __init__(self, entity: Person | Organization, values: dict[str, Any],
                 explain: Callable[[str, Any], _Why]) -> None:
        self.entity = entity
        self.values = values  # a source missing here: nothing known to write
        self._explain = explain
        self._why: dict[str, _Why] = {}

    def why(self, source: str) -> _Why:
        found = self._why.get(source)
        if found is None:
            found = self._why[source] = self._explain(source, self.entity)
        return found


def _record_changes(mapping: Mapping, ref: SourceRef, desired: _Desired,
                    out: list[Change]) -> None:
    current = desired.entity.current.get(ref.key, {})
    values = desired.values
    for rule in mapping.write_rules(ref.system, ref.object_type):
        if rule.source not in values:
            continue  # nothing known to write (no stage yet, no organisation)
        canonical = values[rule.source]
        target = _target(rule, canonical)
        if target is None:
            continue
        after, comparable = target
        before = current.get(rule.field)
        if _comparable(before) == comparable:  # same_value(before, after)
            continue
        if rule.source == "person.stage":
            out.extend(_stage_changes(mapping, ref, rule, before, after, canonical, desired))
        else:
            out.append(_change(ref, rule, before, after, desired.why(rule.source)))


def _change(ref: SourceRef, rule: WriteRule, before: Any, after: Any, why: _Why,
            step: int = 0, note: str = "") -> Change:
    # Positional, in Change's field order: one is built per change, and keyword arguments
    # would double the cost of building it.
    return Change(ref.system, ref.object_type, ref.record_id, rule.field, before, after,
                  _rule_text(rule.rule, why.rule), why.reason + note, step)


@lru_cache(maxsize=1024)
def _rule_text(write_rule: str, why_rule: str) -> str:
    """Cached: a plan names a few dozen pairs of rules in tens of thousands of changes, and
    sharing the text saves building and holding each copy."""
    return f"{write_rule} <- {why_rule}"


def _stage_changes(mapping: Mapping, ref: SourceRef, rule: WriteRule, before: Any, after: Any,
                   canonical: LifecycleStage, desired: _Desired) -> list[Change]:
    """A stage moves only forward unless precedence allows downgrades, and a backward move
    in HubSpot's forward-only field is a clear followed by a set."""
    forward = mapping.field_map(ref.system, ref.object_type, rule.field)
    current_stage = _stage_of(forward, before)
    if current_stage == canonical:
        return []  # e.g. a localised label that already means this stage: keep the admin's value
    allow = mapping.precedence["person.stage"].allow_downgrade
    if canonical.is_downgrade_from(current_stage) and not allow:
        return []
    why = desired.why(rule.source)
    backward = _is_backward_in_crm(forward, before, after)
    if (ref.system, ref.object_type, rule.field) in FORWARD_ONLY_FIELDS and backward:
        note = "; HubSpot only moves lifecyclestage forward, so clear it first"
        return [_change(ref, rule, before, "", why, 0, note),
                _change(ref, rule, "", after, why, 1, note)]
    return [_change(ref, rule, before, after, why)]


def _stage_of(forward: FieldMap | None, raw: Any) -> LifecycleStage | None:
    if forward is None:
        return None
    meaning = forward.values.get(raw_text(raw))
    return meaning.stage if meaning else None


def _is_backward_in_crm(forward: FieldMap | None, before: Any, after: Any) -> bool:
    if forward is None or raw_text(before) == "":
        return False
    old, new = forward.position(raw_text(before)), forward.position(raw_text(after))
    return old is not None and new is not None and new < old


def _target(rule: WriteRule, canonical: Any) -> tuple[Any, str] | None:
    """(value to write, its comparable text) for a canonical value, or None when the rule
    writes nothing for it.

    Kept per rule: a plan asks the same few questions of every record. The type is part of
    the key because True == 1; the memo is emptied if it ever grows past a few hundred values
    (trigger dates are the only open-ended ones).
    """
    memo = rule.plan_memo
    key = (type(canonical), canonical)
    try:
        return memo[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value: work it out every time
        return _work_out_target(rule, canonical)
    if len(memo) >= 512:
        memo.clear()
    found = memo[key] = _work_out_target(rule, canonical)
    return found


def _work_out_target(rule: WriteRule, canonical: Any) -> tuple[Any, str] | None:
    write, target = rule.system_value(canonical)
    if not write:
        return None
    target = _wire_value(rule.system, target)
    return target, _comparable(target)


def _wire_value(system: str, value: Any) -> Any:
    """HubSpot properties are all strings; Salesforce takes JSON types (null, booleans)."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, date):
        value = value.isoformat()
    if system == System.HUBSPOT:
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


@dataclass(frozen=True, slots=True)
class _Why:
    rule: str
    reason: str


def _person_values(person: Person) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if person.stage is not None:
        values["person.stage"] = person.stage.value
    if person.fit is not None:
        values["person.fit"] = person.fit.fit
    if person.priority is not None:
        values["person.priority"] = person.priority.value
    return values


def _person_why(source: str, person: Person) -> _Why:
    if source == "person.stage":
        prov = person.stage.provenance
        others = ", ".join(
            [f"{c.provenance.source.key} says {c.value}" for c in person.stage_candidates]
        )
        return _Why(prov.rule, f"stage {person.stage.value}: {others or prov.describe()}")
    if source == "person.fit":
        return _Why(person.fit.rule, _fit_reason(person.fit))
    return _priority_why(person.priority.value, person.priority.provenance.rule)


def _organization_values(org: Organization, today: date) -> dict[str, Any]:
    """The trigger values are always known: no active trigger clears them."""
    trigger = active_positive_trigger(org.triggers, today)
    values: dict[str, Any] = {
        "organization.trigger_active": trigger is not None,
        "organization.trigger_type": trigger.type if trigger else None,
        "organization.trigger_date": trigger.occurred_at if trigger else None,
    }
    if org.fit is not None:
        values["organization.fit"] = org.fit.fit
    if org.priority is not None:
        values["organization.priority"] = org.priority.value
    if org.relationship is not None:
        values["organization.relationship"] = org.relationship.value
    return values


def _organization_why(source: str, org: Organization, today: date) -> _Why:
    if source == "organization.fit":
        return _Why(org.fit.rule, _fit_reason(org.fit))
    if source == "organization.priority":
        return _priority_why(org.priority.value, org.priority.provenance.rule)
    if source == "organization.relationship":
        relationship = org.relationship
        return _Why(relationship.provenance.rule, f"relationship {relationship.value}")
    trigger = active_positive_trigger(org.triggers, today)
    if trigger is None:
        return _NO_TRIGGER
    return _Why(trigger.provenance.rule, f"{trigger.type} on {trigger.occurred_at} "
                f"(active until {trigger.expires_at}) from {trigger.provenance.source}")


@lru_cache(maxsize=256)
def _priority_why(priority: Priority, rule: str) -> _Why:
    """Cached: priorities are a handful of shared values (see reconcile._priority)."""
    return _Why(rule, f"priority {priority}: {rule.removeprefix('priority: ')}")


_NO_TRIGGER = _Why("triggers", "no active positive trigger (none, expired or suppressed)")


def _fit_reason(fit: IcpFit) -> str:
    if fit.asserted_by is not None:
        return f"fit {str(fit.fit).lower()}: asserted by {fit.asserted_by.describe()}"
    return _icp_reason(fit.fit, fit.matched, fit.failed)


@lru_cache(maxsize=1024)
def _icp_reason(fit: bool, matched: tuple[str, ...], failed: tuple[str, ...]) -> str:
    """Cached: a handful of rule outcomes, shared by many organisations and their people."""
    verdict = "fits" if fit else "does not fit"
    failed_text = f"; failed: {', '.join(failed)}" if failed else ""
    return f"{verdict} the ICP (matched: {', '.join(matched) or 'none'}{failed_text})"
