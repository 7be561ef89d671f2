"""The loaded, checked mapping in the shape the core uses at run time.

Every rule keeps `rule`: its YAML path and `file:line`, which ends up in provenance and in every
planned Change, so "why did this value change" always points at a line an admin can edit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from connector.catalog import CATALOG
from connector.identity import normalise_domain
from connector.model import DealStatus, LifecycleStage, Relationship, TriggerPolarity


@dataclass(frozen=True)
class Meaning:
    """What one system value means canonically."""

    rule: str
    stage: LifecycleStage | None = None
    relationship: Relationship | None = None
    fit: bool | None = None
    deal: DealStatus | None = None
    trigger_type: str | None = None

    @property
    def is_empty(self) -> bool:
        return self.stage is self.relationship is self.fit is self.deal is None


@dataclass(frozen=True)
class FieldMap:
    """One picklist field: its values in the CRM's order, and what each means."""

    field: str
    values: dict[str, Meaning]
    unknown: str
    rule: str

    def position(self, raw: str) -> int | None:
        """Index of `raw` in the admin-listed order (HubSpot's option order)."""
        for index, value in enumerate(self.values):
            if value == raw:
                return index
        return None


@dataclass(frozen=True)
class Fact:
    name: str
    fields: dict[str, str]  # system -> field
    type: str
    values: dict[str, str]
    rule: str

    def normalise(self, raw: Any) -> Any:
        """Canonical form of a raw fact value, or None when it is empty or not usable."""
        if raw is None or raw == "":
            return None
        if self.type == "number":
            number = float(raw)
            if not math.isfinite(number):  # "1e400", nan: no employee count or revenue
                raise ValueError(f"{raw!r} is not a finite number")
            return number
        text = str(raw).strip()
        if self.type == "domain":
            return normalise_domain(text)
        return self.values.get(text, self.values.get(text.casefold(), text))


@dataclass(frozen=True)
class IcpNode:
    """A condition on a fact, or an all/any group of nodes."""

    name: str
    rule: str
    fact: str | None = None
    op: str | None = None
    operand: Any = None
    combinator: str | None = None
    children: tuple[IcpNode, ...] = ()


@dataclass(frozen=True)
class TriggerSourceRule:
    type: str
    polarity: TriggerPolarity
    active_days: int
    system: str
    object: str
    field: str
    rule: str
    date_field: str | None = None
    values: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PrecedenceRule:
    winner: str
    allow_downgrade: bool
    tie_breaker: tuple[str, ...]
    rule: str

    @cached_property
    def ranks(self) -> dict[str, int]:
        """Each system's position in the order this rule prefers them (first listed wins)."""
        order = [] if self.winner == "most_advanced" else [self.winner]
        ranks: dict[str, int] = {}
        for position, system in enumerate(
            order + [s for s in (*self.tie_breaker, "hubspot", "salesforce") if s not in order]
        ):
            ranks.setdefault(system, position)
        return ranks


@dataclass(frozen=True)
class DealEffect:
    stage: LifecycleStage | None
    relationship: Relationship | None
    rule: str


@dataclass(frozen=True)
class WriteRule:
    """A field that receives a canonical value; `values` maps canonical -> system value."""

    system: str
    object: str
    field: str
    source: str
    values: dict[str, Any] | None
    confirm: bool
    rule: str

    @cached_property
    def plan_memo(self) -> dict[Any, Any]:
        """Planning's memo of what this rule writes for each canonical value (plan.py).

        Not a field: equality, `replace()` and the mapping's fingerprint see only the rule.
        """
        return {}

    def system_value(self, canonical: Any) -> tuple[bool, Any]:
        """(write?, value). A reverse map entry of ~ means: never write this value."""
        key = canonical_key(canonical)
        if self.values is None:
            return True, canonical
        if key not in self.values:
            return False, None
        value = self.values[key]
        return value is not None, value


def canonical_key(value: Any) -> str:
    """Reverse maps are keyed by text: True -> "true", a stage -> its name, None -> ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Mapping:
    """A complete, validated mapping. Built only by `load_mapping`; never partially."""

    files: tuple[str, ...]
    label_packs: tuple[str, ...]
    picklists: dict[tuple[str, str], tuple[FieldMap, ...]]
    facts: dict[str, Fact]
    icp: IcpNode | None
    triggers: tuple[TriggerSourceRule, ...]
    precedence: dict[str, PrecedenceRule]
    deal_effects: dict[DealStatus, DealEffect]
    write_back: dict[tuple[str, str], tuple[WriteRule, ...]]

    def write_rules(self, system: str, obj: str) -> tuple[WriteRule, ...]:
        """The write-back rules of one object in field order, the order a plan lists them."""
        return self._write_rules.get((system, obj), ())

    @cached_property
    def _write_rules(self) -> dict[tuple[str, str], tuple[WriteRule, ...]]:
        return {key: tuple(sorted(rules, key=lambda r: r.field))
                for key, rules in self.write_back.items()}

    def field_map(self, system: str, obj: str, name: str) -> FieldMap | None:
        """The picklist of one field, if it has one."""
        return self._field_maps.get((system, obj, name))

    @cached_property
    def _field_maps(self) -> dict[tuple[str, str, str], FieldMap]:
        found: dict[tuple[str, str, str], FieldMap] = {}
        for (system, obj), maps in self.picklists.items():
            for field_map in maps:
                found.setdefault((system, obj, field_map.field), field_map)
        return found

    def fields_read(self, system: str) -> dict[str, set[str]]:
        """Every field a run reads, per object, for requests and `crmsync check`: the
        mapping's own, and those the catalog always reads (links, modification times)."""
        catalog = CATALOG[system]
        out: dict[str, set[str]] = {}
        for (sys, obj), maps in self.picklists.items():
            if sys == system:
                out.setdefault(obj, set()).update(m.field for m in maps)
        org_object = catalog.objects_of("organization")[0]
        for fact in self.facts.values():
            if system in fact.fields:
                out.setdefault(org_object, set()).add(fact.fields[system])
        for trig in self.triggers:
            if trig.system == system:
                fields = out.setdefault(trig.object, set())
                fields.add(trig.field)
                if trig.date_field:
                    fields.add(trig.date_field)
        for obj, spec in catalog.objects.items():
            out.setdefault(obj, set()).update(spec.link_fields, spec.modified_fields)
        for (sys, obj), rules in self.write_back.items():
            if sys == system:  # current values are needed to plan only real differences
                out.setdefault(obj, set()).update(r.field for r in rules)
        return out

    def fields_written(self, system: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for (sys, obj), rules in self.write_back.items():
            if sys == system:
                out.setdefault(obj, set()).update(r.field for r in rules)
        return out

    def reachable_stages(self) -> set[LifecycleStage]:
        stages = {
            meaning.stage
            for maps in self.picklists.values()
            for m in maps
            for meaning in m.values.values()
            if meaning.stage is not None
        }
        stages.update(e.stage for e in self.deal_effects.values() if e.stage is not None)
        return stages
