"""Check what structure alone cannot, and compile the spec into the run-time `Mapping`.

Every problem is collected (never the first only) so an admin fixes a file in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from connector.catalog import CATALOG, MODIFIED_TIME_FIELDS, kind_of
from connector.exceptions import MappingProblem
from connector.mapping._compiled import (
    DealEffect,
    Fact,
    FieldMap,
    IcpNode,
    Mapping,
    Meaning,
    PrecedenceRule,
    TriggerSourceRule,
    WriteRule,
    canonical_key,
)
from connector.mapping._errors import allowed_list, describe, suggest
from connector.mapping._located import Located, Path_, format_path
from connector.mapping._spec import (
    PRIORITIES,
    RELATIONSHIPS,
    STAGES,
    WRITE_SOURCES,
    IcpRule,
    LabelPackSpec,
    MappingSpec,
)
from connector.model import DealStatus, LifecycleStage, Relationship, TriggerPolarity

SYSTEMS = tuple(CATALOG)
ROLE_OF_KIND = {
    "person": "person_stage",
    "organization": "organization_type",
    "deal": "deal_status",
}
EFFECTS_OF_KIND = {
    "person": ("stage",),
    "organization": ("relationship", "fit"),
    "deal": ("deal",),
}
DEAL_STATUSES = [d.value for d in DealStatus]
OPERATORS = ("in", "not_in", "between", "at_least", "at_most")
@dataclass
class Pack:
    name: str
    doc: Located
    spec: LabelPackSpec


@dataclass
class Checker:
    doc: Located
    spec: MappingSpec
    packs: dict[str, Pack]
    available_packs: list[str]
    problems: list[MappingProblem] = field(default_factory=list)

    # ---- helpers ---------------------------------------------------------------------------

    def fail(self, path: Path_, message: str, *, key: bool = False, doc: Located | None = None):
        self.problems.append((doc or self.doc).problem(path, message, key=key))

    def rule(self, path: Path_, doc: Located | None = None) -> str:
        source = doc or self.doc
        line, _ = source.where(path, key=True)
        return f"{format_path(path)} ({Path(source.file).name}:{line})"

    def stage(self, value: Any, path: Path_, doc: Located | None = None, *, key: bool = False):
        if isinstance(value, str) and value in STAGES:
            return LifecycleStage(value)
        what = "key" if key else "stage"
        self.fail(
            path,
            f"unknown canonical {what} {value!r}; allowed stages: {allowed_list(STAGES)}."
            + suggest(value, STAGES),
            key=key,
            doc=doc,
        )
        return None

    def known_key(self, value: str, allowed: tuple[str, ...] | list[str], path: Path_, what: str):
        if value in allowed:
            return True
        self.fail(
            path,
            f"unknown {what} {value!r}; allowed: {allowed_list(allowed)}."
            + suggest(value, allowed),
            key=True,
        )
        return False

    # ---- compile ---------------------------------------------------------------------------

    def compile(self) -> Mapping:
        self.check_packs()
        picklists = self.compile_picklists()
        facts = self.compile_facts()
        icp = self.compile_icp(self.spec.icp, ("icp",), facts) if self.spec.icp else None
        mapping = Mapping(
            files=(self.doc.file, *(p.doc.file for p in self.packs.values())),
            label_packs=tuple(self.packs),
            picklists=picklists,
            facts=facts,
            icp=icp,
            triggers=self.compile_triggers(),
            precedence=self.compile_precedence(),
            deal_effects=self.compile_deal_effects(),
            write_back={},
        )
        return replace(mapping, write_back=self.compile_write_back(mapping))

    def check_packs(self) -> None:
        for index, name in enumerate(self.spec.label_packs):
            if name not in self.available_packs:
                self.fail(
                    ("label_packs", index),
                    f"unknown label pack {name!r}; available: "
                    f"{allowed_list(self.available_packs)}." + suggest(name, self.available_packs),
                )
        for pack in self.packs.values():
            for role in ("person_stage", "deal_status"):
                for label, value in getattr(pack.spec, role).items():
                    if role == "person_stage":
                        self.stage(value, (role, label), pack.doc)
                    elif value not in DEAL_STATUSES:
                        self.fail((role, label), f"unknown deal status {value!r}", doc=pack.doc)
            for label, value in pack.spec.organization_type.items():
                self.meaning(value, (("organization_type", label)), "organization", pack.doc)

    def compile_picklists(self) -> dict[tuple[str, str], tuple[FieldMap, ...]]:
        out: dict[tuple[str, str], tuple[FieldMap, ...]] = {}
        for system, objects in self.spec.picklists.items():
            if not self.known_key(system, SYSTEMS, ("picklists", system), "system"):
                continue
            for obj, fields in objects.items():
                base = ("picklists", system, obj)
                if not self.known_key(obj, tuple(CATALOG[system].objects), base,
                                      f"{system} object"):
                    continue
                kind = kind_of(system, obj)
                maps = [
                    self.compile_field_map(system, obj, kind, name, spec_field)
                    for name, spec_field in fields.items()
                ]
                out[(system, obj)] = tuple(maps)
        return out

    def not_modified_time(self, system: str, name: str | None, path: Path_, *,
                          key: bool = False) -> None:
        if name in MODIFIED_TIME_FIELDS.get(system, ()):
            self.fail(path, f"{name!r} is the record's modification time, which every write "
                      "changes (crmsync's own too); a rule cannot read it. Use a field that "
                      "holds the event itself", key=key)

    def compile_field_map(self, system, obj, kind, name, spec_field) -> FieldMap:
        path = ("picklists", system, obj, name)
        self.not_modified_time(system, name, path, key=True)
        values: dict[str, Meaning] = {}
        for raw, meaning in spec_field.values.items():
            compiled = self.meaning(meaning, (*path, "values", raw), kind)
            if compiled is not None:
                values[raw] = compiled
        if spec_field.labels:
            expected = ROLE_OF_KIND[kind]
            if spec_field.labels != expected:
                self.fail(
                    (*path, "labels"),
                    f"label role {spec_field.labels!r} does not fit a {kind} object; "
                    f"use {expected!r}",
                )
            else:
                for pack in self.packs.values():
                    for label, meaning in getattr(pack.spec, expected).items():
                        if label in values:
                            continue  # the main file wins over a pack
                        compiled = self.meaning(
                            meaning, (expected, label), kind, pack.doc, pack_role=expected
                        )
                        if compiled is not None:
                            values[label] = compiled
        return FieldMap(name, values, spec_field.unknown, self.rule(path))

    def meaning(
        self,
        value: Any,
        path: Path_,
        kind: str,
        doc: Located | None = None,
        pack_role: str | None = None,
    ) -> Meaning | None:
        rule = self.rule(path, doc)
        if value is None:
            return Meaning(rule=rule)
        is_deal_label = pack_role == "deal_status" or kind == "deal"
        if is_deal_label and isinstance(value, str) and value in DEAL_STATUSES:
            return Meaning(rule=rule, deal=DealStatus(value))
        if isinstance(value, str):
            if kind != "person":
                self.fail(
                    path,
                    f"an {kind} value needs a mapping such as "
                    + ("{relationship: customer}" if kind == "organization" else "{deal: won}")
                    + f", not the stage shorthand {value!r}",
                    doc=doc,
                )
                return None
            stage = self.stage(value, path, doc)
            return Meaning(rule=rule, stage=stage) if stage else None
        if not isinstance(value, dict):
            self.fail(
                path, f"expected a stage name, a mapping or ~, got {describe(value)}", doc=doc
            )
            return None
        return self.effects(value, path, kind, doc, rule)

    def effects(self, value: dict, path: Path_, kind: str, doc, rule: str) -> Meaning | None:
        allowed = EFFECTS_OF_KIND[kind]
        ok = True
        parsed: dict[str, Any] = {}
        for effect, target in value.items():
            if effect not in allowed:
                self.fail(
                    (*path, effect),
                    f"{effect!r} cannot be set from a {kind} field; allowed here: "
                    f"{allowed_list(allowed)}." + suggest(effect, allowed),
                    key=True,
                    doc=doc,
                )
                ok = False
            elif effect == "stage":
                parsed["stage"] = self.stage(target, (*path, effect), doc)
                ok = ok and parsed["stage"] is not None
            elif effect == "fit":
                if not isinstance(target, bool):
                    self.fail((*path, effect), f"fit must be true or false, got {describe(target)}",
                              doc=doc)
                    ok = False
                parsed["fit"] = target
            else:
                choices = RELATIONSHIPS if effect == "relationship" else DEAL_STATUSES
                if target not in choices:
                    self.fail(
                        (*path, effect),
                        f"unknown {effect} {target!r}; allowed: {allowed_list(choices)}."
                        + suggest(target, choices),
                        doc=doc,
                    )
                    ok = False
                else:
                    enum = Relationship if effect == "relationship" else DealStatus
                    parsed[effect] = enum(target)
        return Meaning(rule=rule, **parsed) if ok else None

    def compile_facts(self) -> dict[str, Fact]:
        facts: dict[str, Fact] = {}
        for name, spec_fact in self.spec.organization_facts.items():
            path = ("organization_facts", name)
            fields = {s: getattr(spec_fact, s) for s in SYSTEMS if getattr(spec_fact, s)}
            for system, name_in_system in fields.items():
                self.not_modified_time(system, name_in_system, (*path, system))
            if not fields:
                self.fail(path, f"fact {name!r} names no field: give `hubspot:` and/or "
                          "`salesforce:`")
            if spec_fact.values and spec_fact.type != "text":
                self.fail((*path, "values"), f"`values` only applies to text facts, and "
                          f"{name!r} is {spec_fact.type}")
            values = {str(k): v for k, v in spec_fact.values.items()}
            values.update({str(k).casefold(): v for k, v in spec_fact.values.items()})
            facts[name] = Fact(name, fields, spec_fact.type, values, self.rule(path))
        return facts

    def compile_icp(self, node: IcpRule, path: Path_, facts: dict[str, Fact]) -> IcpNode:
        rule = self.rule(path)
        groups = [g for g in ("all", "any") if getattr(node, g) is not None]
        operators = [op for op in OPERATORS if getattr(node, op + ("_" if op == "in" else ""))
                     is not None]
        name = node.name or format_path(path)
        if groups:
            if len(groups) > 1 or operators or node.fact:
                self.fail(path, "a rule group has exactly one of `all` or `any`, and no "
                          "`fact` or operator beside it")
            combinator = groups[0]
            children = tuple(
                self.compile_icp(child, (*path, combinator, i), facts)
                for i, child in enumerate(getattr(node, combinator))
            )
            if not children:
                self.fail((*path, combinator), f"`{combinator}` needs at least one rule")
            return IcpNode(name, rule, combinator=combinator, children=children)
        if node.fact is None:
            self.fail(path, "a rule needs `fact` and one operator "
                      f"({allowed_list(OPERATORS)}), or a group `all:`/`any:`")
            return IcpNode(name, rule)
        if node.fact not in facts:
            self.fail((*path, "fact"), f"unknown fact {node.fact!r}; defined in "
                      f"organization_facts: {allowed_list(facts)}." + suggest(node.fact, facts))
        if len(operators) != 1:
            self.fail(path, f"a rule needs exactly one operator of {allowed_list(OPERATORS)}, "
                      f"found {len(operators)}")
            return IcpNode(name, rule, fact=node.fact)
        op = operators[0]
        operand = getattr(node, op + ("_" if op == "in" else ""))
        self.check_operand(path, op, operand, facts.get(node.fact))
        if op in ("in", "not_in"):
            operand = frozenset(str(v).casefold() for v in operand)
        return IcpNode(name, rule, fact=node.fact, op=op, operand=operand)

    def check_operand(self, path: Path_, op: str, operand: Any, fact: Fact | None) -> None:
        if op == "between" and (len(operand) != 2 or operand[0] > operand[1]):
            shown = ", ".join(f"{v:g}" for v in operand)
            self.fail((*path, op), f"`between` takes [min, max] with min <= max, got [{shown}]")
        if fact is None:
            return
        numeric = op in ("between", "at_least", "at_most")
        if numeric and fact.type != "number":
            self.fail((*path, op), f"`{op}` compares numbers, but fact {fact.name!r} is "
                      f"{fact.type}; use `in` or `not_in`")
        if not numeric and fact.type == "number":
            self.fail((*path, op), f"`{op}` compares text, but fact {fact.name!r} is a number; "
                      "use `between`, `at_least` or `at_most`")

    def compile_triggers(self) -> tuple[TriggerSourceRule, ...]:
        out: list[TriggerSourceRule] = []
        for name, trig in self.spec.triggers.items():
            for index, source in enumerate(trig.sources):
                path = ("triggers", name, "sources", index)
                org_objects = CATALOG[source.system].objects_of("organization")
                if source.object not in org_objects:
                    self.fail((*path, "object"), f"triggers are organisation events: object must "
                              f"be {allowed_list(org_objects)} for {source.system}, got "
                              f"{source.object!r}." + suggest(source.object, org_objects))
                self.not_modified_time(source.system, source.field, (*path, "field"))
                self.not_modified_time(source.system, source.date_field, (*path, "date_field"))
                picklist = source.values is not None or source.labels is not None
                if picklist and not source.date_field:
                    self.fail(path, "a picklist trigger (`values`/`labels`) needs `date_field`, "
                              "the field that holds the event date")
                if source.date_field and not picklist:
                    self.fail((*path, "date_field"), "`date_field` goes with `values` or "
                              "`labels`; for a plain date field, name it in `field`")
                values = set(source.values or ())
                if source.labels:
                    for pack in self.packs.values():
                        values.update(k for k, v in pack.spec.trigger_type.items() if v == name)
                out.append(
                    TriggerSourceRule(
                        type=name,
                        polarity=TriggerPolarity(trig.polarity),
                        active_days=trig.active_days,
                        system=source.system,
                        object=source.object,
                        field=source.field,
                        rule=self.rule(path),
                        date_field=source.date_field,
                        values=frozenset(values),
                    )
                )
        return tuple(out)

    def compile_precedence(self) -> dict[str, PrecedenceRule]:
        out = {}
        for name, info in type(self.spec.precedence).model_fields.items():
            rule = getattr(self.spec.precedence, name)
            key = info.alias or name
            if key != "person.stage" and rule.winner == "most_advanced":
                self.fail(("precedence", key, "winner"), f"`most_advanced` only applies to "
                          f"person.stage; choose 'hubspot' or 'salesforce' for {key}")
            out[key] = PrecedenceRule(
                rule.winner, rule.allow_downgrade, tuple(rule.tie_breaker),
                self.rule(("precedence", key)),
            )
        return out

    def compile_deal_effects(self) -> dict[DealStatus, DealEffect]:
        out = {}
        for status, effect in self.spec.deal_effects.items():
            path = ("deal_effects", status)
            stage = self.stage(effect.stage, (*path, "stage")) if effect.stage else None
            relationship = Relationship(effect.relationship) if effect.relationship else None
            out[DealStatus(status)] = DealEffect(stage, relationship, self.rule(path))
        return out

    # ---- write-back ------------------------------------------------------------------------

    def compile_write_back(self, mapping: Mapping) -> dict[tuple[str, str], tuple[WriteRule, ...]]:
        out: dict[tuple[str, str], tuple[WriteRule, ...]] = {}
        reachable = self.reachable_with_origin(mapping)
        for system, objects in self.spec.write_back.items():
            if not self.known_key(system, SYSTEMS, ("write_back", system), "system"):
                continue
            for obj, fields in objects.items():
                base = ("write_back", system, obj)
                catalog = CATALOG[system]
                writable = (*catalog.objects_of("person"), *catalog.objects_of("organization"))
                if not self.known_key(obj, writable, base, f"writable {system} object"):
                    continue
                rules = []
                for name, target in fields.items():
                    path = (*base, name)
                    self.check_target(system, obj, name, target, path, mapping, reachable)
                    values = None
                    if target.values is not None:
                        values = {str(k): v for k, v in target.values.items()}
                    rules.append(WriteRule(system, obj, name, target.from_, values, target.confirm,
                                           self.rule(path)))
                out[(system, obj)] = tuple(rules)
        return out

    def reachable_with_origin(self, mapping: Mapping) -> dict[str, str]:
        """Each reachable stage and one rule that can produce it, for error messages."""
        origin: dict[str, str] = {}
        for maps in mapping.picklists.values():
            for field_map in maps:
                for meaning in field_map.values.values():
                    if meaning.stage is not None:
                        origin.setdefault(meaning.stage.value, meaning.rule)
        for effect in mapping.deal_effects.values():
            if effect.stage is not None:
                origin.setdefault(effect.stage.value, effect.rule)
        return origin

    def check_target(self, system, obj, name, target, path, mapping, reachable) -> None:
        source_kind = WRITE_SOURCES[target.from_]
        if source_kind != kind_of(system, obj):
            self.fail((*path, "from"), f"{target.from_!r} is a {source_kind} value and cannot be "
                      f"written to {system} {obj}, which holds {kind_of(system, obj)}s")
            return
        domain = self.value_domain(target.from_)
        if target.values is None:
            if target.from_ == "person.stage":
                self.fail(path, "writing person.stage needs `values`: the reverse map from "
                          "canonical stage to this field's values")
            return
        for key in target.values:
            if domain is not None and key not in domain:
                self.fail((*path, "values", key), f"unknown canonical value {key!r} for "
                          f"{target.from_}; allowed: {allowed_list(domain)}."
                          + suggest(key, domain), key=True)
        needed = list(reachable) if target.from_ == "person.stage" else (domain or [])
        for value in needed:
            if value not in target.values:
                why = f", which {reachable[value]} can produce" if value in reachable else ""
                self.fail((*path, "values"), f"reverse map has no entry for {value!r}{why}; add "
                          f"`{value}: <{system} value>`, or `{value}: ~` to leave the field "
                          "alone for it")
        if target.from_ == "person.stage":
            self.check_round_trip(system, obj, name, target.values, path, mapping)

    def value_domain(self, source: str) -> list[str] | None:
        if source == "person.stage":
            return STAGES
        if source.endswith((".fit", ".trigger_active")):
            return ["true", "false"]
        if source.endswith(".priority"):
            return PRIORITIES
        if source.endswith(".relationship"):
            return RELATIONSHIPS
        return None

    def check_round_trip(self, system, obj, name, values, path, mapping: Mapping) -> None:
        """A written value must read back as the stage we wrote, or the systems never agree."""
        forward = {m.field: m for m in mapping.picklists.get((system, obj), ())}.get(name)
        if forward is None:
            return
        for stage, value in values.items():
            if value is None or stage not in STAGES:
                continue
            meaning = forward.values.get(canonical_key(value))
            if meaning is None:
                self.fail((*path, "values", stage), f"{stage} is written as {value!r}, which "
                          f"{forward.rule} does not list, so it would be rejected when read back",
                          key=True)
            elif meaning.stage is not None and meaning.stage.value != stage:
                self.fail((*path, "values", stage), f"{stage} is written as {value!r}, which "
                          f"reads back as {meaning.stage.value!r} ({meaning.rule}); the two "
                          f"systems would never agree. Write a value that reads back as {stage}, "
                          f"or `{stage}: ~` to leave the field alone", key=True)
