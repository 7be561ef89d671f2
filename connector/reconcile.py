"""Link views of the same person or organisation, and decide the desired canonical state.

Linking order follows design.md: stored links, then the CRMs' own cross-references
(HubSpot `salesforcecontactid`/`salesforceleadid`/`salesforceaccountid`, a converted lead's
Contact), then normalised e-mail (people) or domain (organisations). Everything is sorted by
record reference first, so the result never depends on input order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from connector.mapping import IcpNode, Mapping
from connector.mapping._compiled import PrecedenceRule
from connector.model import (
    Deal,
    IcpFit,
    LifecycleStage,
    Organization,
    Person,
    Priority,
    Provenance,
    Relationship,
    Sourced,
    SourceRef,
    Trigger,
    TriggerPolarity,
)

__all__ = ["DisjointSets", "Reconciled", "evaluate_icp", "reconcile"]

# The models' own validation, minus the keyword frame of Model(...): about 30% faster, for the
# few models built once per entity.
_new_person = Person.__pydantic_validator__.validate_python
_new_sourced = Sourced.__pydantic_validator__.validate_python
_new_provenance = Provenance.__pydantic_validator__.validate_python


@dataclass(frozen=True)
class Reconciled:
    persons: list[Person]
    organizations: list[Organization]
    deals: list[Deal] = field(default_factory=list)

    def links(self) -> list[tuple[SourceRef, SourceRef]]:
        """Pairs of records found to be the same entity, for the state store."""
        pairs = []
        for entity in (*self.persons, *self.organizations):
            first, *rest = entity.refs
            pairs.extend((first, other) for other in rest)
        return pairs


class DisjointSets:
    """Union-find over text keys, for linking records here and grouping them in the engine.

    The root of a set is its smallest key, so group order never depends on input order.
    """

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def reconcile(
    mapping: Mapping,
    views: Iterable[Person | Organization | Deal],
    today: date,
    links: Iterable[tuple[SourceRef | str, SourceRef | str]] = (),
) -> Reconciled:
    """Group views into entities and decide each entity's desired canonical values.

    `links` are stored pairs of records known to be the same entity, as refs or their text.
    """
    views = list(views)
    persons = sorted((v for v in views if isinstance(v, Person)), key=lambda v: str(v.refs[0]))
    orgs = sorted((v for v in views if isinstance(v, Organization)), key=lambda v: str(v.refs[0]))
    deals = sorted((v for v in views if isinstance(v, Deal)), key=lambda v: str(v.ref))
    # Links only ever take part as text: format each once, in the order they are applied.
    link_keys = sorted((str(a), str(b)) for a, b in links)
    deals_of_org = _DealIndex(deals, lambda d: d.organization_refs)
    merged_orgs = [
        _decide_organization(mapping, group, deals_of_org.touching(keys), today, refs, keys)
        for group, refs, keys in _group(orgs, link_keys, lambda o: o.domain)
    ]
    org_of = {str(ref): org for org in merged_orgs for ref in org.refs}
    deals_of_person = _DealIndex(deals, lambda d: d.person_refs)
    merged_persons = [
        _decide_person(mapping, group, deals_of_person.touching(keys), org_of, refs, keys)
        for group, refs, keys in _group(persons, link_keys, lambda p: p.email)
    ]
    return Reconciled(merged_persons, merged_orgs, deals)


class _DealIndex:
    """The deals that name any record of a group, in the deals' (sorted) order.

    Scanning every deal for every group made reconcile quadratic (30 s at 10k persons); the
    index gives each group the same deals, in the same order, from a dictionary lookup.
    """

    def __init__(self, deals: list[Deal], refs_of) -> None:
        self.deals = deals
        self.positions: dict[str, list[int]] = {}
        for position, deal in enumerate(deals):
            for ref in refs_of(deal):
                self.positions.setdefault(str(ref), []).append(position)

    def touching(self, keys: set[str]) -> list[Deal]:
        """`keys`: the texts of every ref of the group."""
        found = {p for key in keys for p in self.positions.get(key, ())}
        return [self.deals[p] for p in sorted(found)]


def _group(views, link_keys: list[tuple[str, str]], natural_key):
    """Groups of views, each with its distinct refs in text order and those texts."""
    groups = DisjointSets()
    firsts = [str(v.refs[0]) for v in views]
    known = set(firsts)
    for key in firsts:
        groups.find(key)
    for a, b in link_keys:
        if a in known or b in known:
            groups.union(a, b)
    by_natural: dict[str, str] = {}
    for view, key in zip(views, firsts, strict=True):
        for other in view.linked_refs:
            groups.union(key, str(other))
        natural = natural_key(view)
        if natural:
            groups.union(key, by_natural.setdefault(natural, key))
    buckets: dict[str, list] = {}
    for view, key in zip(views, firsts, strict=True):
        buckets.setdefault(groups.find(key), []).append(view)
    return [(group, *_sorted_refs(r for v in group for r in v.refs))
            for group in (buckets[root] for root in sorted(buckets))]


def _sorted_refs(refs: Iterable[SourceRef]) -> tuple[tuple[SourceRef, ...], set[str]]:
    """Distinct refs in text order, and their texts; each ref is formatted once."""
    by_key: dict[str, SourceRef] = {}
    for ref in refs:
        by_key.setdefault(str(ref), ref)
    return tuple(by_key[key] for key in sorted(by_key)), set(by_key)


@lru_cache(maxsize=64)
def _ranks(rule: PrecedenceRule) -> dict[str, int]:
    """Each system's position in the order precedence prefers them (first listed wins)."""
    order = [] if rule.winner == "most_advanced" else [rule.winner]
    ranks: dict[str, int] = {}
    for position, system in enumerate(
        order + [s for s in (*rule.tie_breaker, "hubspot", "salesforce") if s not in order]
    ):
        ranks.setdefault(system, position)
    return ranks


def _by_precedence(candidates: list[Sourced], rule: PrecedenceRule) -> Sourced | None:
    if len(candidates) < 2:  # nothing to rank (the ranking itself cannot fail)
        return candidates[0] if candidates else None
    ranks = _ranks(rule)
    ranked = sorted(
        candidates,
        key=lambda c: (ranks[c.provenance.source.system], str(c.provenance.source)),
    )
    return ranked[0]


# ---- organisations --------------------------------------------------------------------------


def _decide_organization(mapping, group: list[Organization], deals, today,
                         refs: tuple[SourceRef, ...], keys: set[str]) -> Organization:
    facts_rule = mapping.precedence["organization.facts"]
    facts = {}
    for name in sorted({n for v in group for n in v.facts}):
        facts[name] = _by_precedence([v.facts[name] for v in group if name in v.facts], facts_rule)
    rel_rule = mapping.precedence["organization.relationship"]
    candidates = [c for v in group for c in v.relationship_candidates]
    candidates += _deal_relationships(mapping, deals, keys)
    relationship = _pick_relationship(candidates, rel_rule)
    asserted = _by_precedence([v.asserted_fit for v in group if v.asserted_fit], rel_rule)
    fit = evaluate_icp(mapping.icp, facts, asserted)
    triggers = _merge_triggers(t for v in group for t in v.triggers)
    priority = _organization_priority(fit, triggers, today)
    current: dict = {}
    for view in group:
        current.update(view.current)
    names = [v.name for v in group if v.name]
    domains = sorted({v.domain for v in group if v.domain})
    return Organization(
        refs=refs,
        name=names[0] if names else None,
        domain=domains[0] if domains else None,
        facts=facts,
        relationship=relationship,
        relationship_candidates=tuple(candidates),
        asserted_fit=asserted,
        linked_refs=_refs_of(group, "linked_refs"),
        fit=fit,
        triggers=triggers,
        priority=priority,
        current=current,
    )


def _deal_relationships(mapping, deals, org_keys) -> list[Sourced]:
    out = []
    for deal in deals:
        effect = mapping.deal_effects.get(deal.status.value)
        if effect and effect.relationship and org_keys & {str(r) for r in deal.organization_refs}:
            out.append(_from_deal(deal, effect.relationship, effect.rule))
    return out


def _from_deal(deal: Deal, value, rule: str) -> Sourced:
    prov = deal.status.provenance
    return Sourced(
        value=value,
        provenance=Provenance(source=deal.ref, field=prov.field, raw=prov.raw,
                              rule=f"{rule} <- {prov.rule}"),
    )


def _pick_relationship(candidates: list[Sourced], rule: PrecedenceRule) -> Sourced | None:
    """Precedence picks the system; within it, a won deal's `customer` beats a picklist."""
    if len(candidates) < 2:
        return candidates[0] if candidates else None
    ranks = _ranks(rule)
    ranked = sorted(
        candidates,
        key=lambda c: (
            ranks[c.provenance.source.system],
            c.value is not Relationship.CUSTOMER,
            str(c.provenance.source),
        ),
    )
    return ranked[0]


def evaluate_icp(node: IcpNode | None, facts: dict[str, Sourced], asserted: Sourced | None):
    """ICP fit from the rules; a picklist that asserts fit (Type = Prospect) overrides them."""
    if node is None and asserted is None:
        return None
    matched: list[str] = []
    failed: list[str] = []
    fit = _evaluate(node, facts, matched, failed) if node is not None else False
    rule = node.rule if node is not None else "icp"
    if asserted is not None:
        return IcpFit(fit=bool(asserted.value), matched=tuple(matched), failed=tuple(failed),
                      rule=asserted.provenance.rule, asserted_by=asserted.provenance)
    return IcpFit(fit=fit, matched=tuple(matched), failed=tuple(failed), rule=rule)


def _evaluate(node: IcpNode, facts, matched: list[str], failed: list[str]) -> bool:
    if node.combinator:
        results = [_evaluate(child, facts, matched, failed) for child in node.children]
        return all(results) if node.combinator == "all" else any(results)
    fact = facts.get(node.fact)
    ok = fact is not None and _condition(node.op, node.operand, fact.value)
    (matched if ok else failed).append(node.name)
    return ok


def _condition(op: str, operand, value) -> bool:
    if op == "in":
        return str(value).casefold() in operand
    if op == "not_in":
        return str(value).casefold() not in operand
    if not isinstance(value, (int, float)):
        return False
    if op == "between":
        return operand[0] <= value <= operand[1]
    if op == "at_least":
        return value >= operand
    return value <= operand


def _merge_triggers(triggers: Iterable[Trigger]) -> tuple[Trigger, ...]:
    unique = {}
    for trig in triggers:
        unique.setdefault((trig.type, trig.occurred_at, str(trig.provenance.source)), trig)
    return tuple(sorted(unique.values(), key=lambda t: (t.occurred_at, t.type,
                                                         str(t.provenance.source))))


def active_positive_trigger(triggers: tuple[Trigger, ...], today: date) -> Trigger | None:
    """The latest active positive trigger, unless an active suppressing one cancels it."""
    active = [t for t in triggers if t.is_active(today)]
    if any(t.polarity is TriggerPolarity.SUPPRESSING for t in active):
        return None
    positive = [t for t in active if t.polarity is TriggerPolarity.POSITIVE]
    return positive[-1] if positive else None


def _organization_priority(fit: IcpFit | None, triggers, today) -> Sourced:
    trigger = active_positive_trigger(triggers, today)
    if fit is not None and fit.fit and trigger is not None:
        return _priority(Priority.TRIGGER_FIT, f"active {trigger.type} trigger on an ICP-fit "
                         f"organisation ({trigger.provenance.rule})")
    if fit is not None and fit.fit:
        return _priority(Priority.FIT, f"ICP fit ({fit.rule})")
    return _priority(Priority.OTHER, "organisation does not fit the ICP")


@lru_cache(maxsize=1024)
def _priority(value: Priority, why: str) -> Sourced:
    """Shared between entities: a handful of distinct values, and Sourced is immutable."""
    return Sourced(value=value, provenance=Provenance(rule=f"priority: {why}"))


# ---- persons --------------------------------------------------------------------------------


def _decide_person(mapping, group: list[Person], deals, org_of,
                   refs: tuple[SourceRef, ...], keys: set[str]) -> Person:
    candidates = [c for v in group for c in v.stage_candidates]
    for deal in deals:
        effect = mapping.deal_effects.get(deal.status.value)
        if effect and effect.stage and keys & {str(r) for r in deal.person_refs}:
            candidates.append(_from_deal(deal, effect.stage, effect.rule))
    rule = mapping.precedence["person.stage"]
    stage = _decide_stage(candidates, rule)
    org_refs, org_keys = _sorted_refs(r for v in group for r in v.organization_refs)
    orgs = {id(org_of[key]): org_of[key] for key in org_keys if key in org_of}
    org = min(orgs.values(), key=lambda o: str(o.refs[0])) if orgs else None
    current: dict = {}
    for view in group:
        current.update(view.current)
    emails = {v.email for v in group if v.email}
    if len(candidates) > 1:
        candidates.sort(key=lambda c: str(c.provenance.source))
    return _new_person({
        "refs": refs,
        "email": min(emails) if emails else None,
        "stage": stage,
        "stage_candidates": tuple(candidates),
        "organization_refs": org_refs,
        "linked_refs": _refs_of(group, "linked_refs"),
        "converted_refs": _refs_of(group, "converted_refs"),
        "fit": org.fit if org else None,
        "priority": _person_priority(stage, org),
        "current": current,
    })


def _refs_of(group, attribute: str) -> tuple[SourceRef, ...]:
    """Every view's refs in `attribute`, distinct and in text order (usually there are none)."""
    found = [r for v in group for r in getattr(v, attribute)]
    return _sorted_refs(found)[0] if found else ()


def _decide_stage(candidates: list[Sourced], rule: PrecedenceRule) -> Sourced | None:
    if not candidates:
        return None
    if len(candidates) == 1:  # what either branch below picks from one candidate
        chosen = candidates[0]
        why = f"{rule.winner} wins" if rule.winner != "most_advanced" else "most advanced"
    elif rule.winner != "most_advanced":
        chosen = _by_precedence(candidates, rule)
        why = f"{rule.winner} wins"
    else:
        on_ladder = [c for c in candidates if c.value.on_ladder]
        pool = on_ladder or candidates
        top = max(pool, key=lambda c: c.value.rank or 0).value if on_ladder else None
        chosen = _by_precedence([c for c in pool if top is None or c.value == top], rule)
        why = "most advanced"
    assert chosen is not None
    prov = chosen.provenance
    return _new_sourced({
        "value": chosen.value,
        "provenance": _new_provenance({"source": prov.source, "field": prov.field,
                                       "raw": prov.raw,
                                       "rule": f"{rule.rule} {why} <- {prov.rule}"}),
    })


def _person_priority(stage: Sourced | None, org: Organization | None) -> Sourced:
    if stage is not None and stage.value is LifecycleStage.DISQUALIFIED:
        return _priority(Priority.OTHER, "disqualified")
    if org is not None and org.priority is not None and org.priority.value is not Priority.OTHER:
        return org.priority
    is_lead = stage is not None and stage.value.on_ladder and not (
        LifecycleStage.LEAD.is_more_advanced_than(stage.value)
    )
    if is_lead:
        return _priority(Priority.NONFIT_LEAD, f"a {stage.value.value} at an organisation that "
                         "does not fit the ICP (or is unknown)")
    return _priority(Priority.OTHER, "no fit organisation and not a lead yet")
