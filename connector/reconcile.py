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

from connector.identity import email_key
from connector.mapping import IcpNode, Mapping, PrecedenceRule
from connector.model import (
    LADDER,
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

__all__ = ["DisjointSets", "Duplicate", "Reconciled", "duplicates", "evaluate_icp",
           "reconcile"]


@dataclass(frozen=True)
class Reconciled:
    persons: list[Person]
    organizations: list[Organization]
    deals: list[Deal] = field(default_factory=list)


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
    persons: list[Person] = []
    orgs: list[Organization] = []
    deals: list[Deal] = []
    for view in views:
        if isinstance(view, Person):
            persons.append(view)
        elif isinstance(view, Organization):
            orgs.append(view)
        elif isinstance(view, Deal):
            deals.append(view)
    persons.sort(key=_first_key)
    orgs.sort(key=_first_key)
    deals.sort(key=lambda d: d.ref.key)
    # Links only ever take part as text: format each once, in the order they are applied.
    link_keys = sorted((str(a), str(b)) for a, b in links)
    deals_of_org = _DealIndex(deals, lambda d: d.organization_refs)
    merged_orgs = [
        _decide_organization(mapping, group, deals_of_org.touching(keys), today, refs)
        for group, refs, keys in _group(orgs, link_keys, lambda o: o.domain)
    ]
    org_of = {ref.key: org for org in merged_orgs for ref in org.refs}
    deals_of_person = _DealIndex(deals, lambda d: d.person_refs)
    merged_persons = [
        _decide_person(mapping, group, deals_of_person.touching(keys), org_of, refs)
        for group, refs, keys in _group(persons, link_keys, _person_key)
    ]
    return Reconciled(merged_persons, merged_orgs, deals)


def _person_key(person: Person) -> str | None:
    """A person's natural key: their address, unless it is a placeholder or a role inbox
    (`email_key`). An organisation's is its domain, which normalising already restricts."""
    return email_key(person.email)


def _first_key(view: Person | Organization) -> str:
    return view.refs[0].key


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
                self.positions.setdefault(ref.key, []).append(position)

    def touching(self, keys: Iterable[str]) -> list[Deal]:
        """`keys`: the texts of every ref of the group."""
        found = [p for key in keys for p in self.positions.get(key, ())]
        if len(found) > 1:
            found = sorted(set(found))
        return [self.deals[p] for p in found]


def _group(views, link_keys: list[tuple[str, str]], natural_key):
    """Groups of views, each with its distinct refs in text order and those texts."""
    groups = DisjointSets()
    firsts = [v.refs[0].key for v in views]
    known = set(firsts)
    for a, b in link_keys:
        if a in known or b in known:
            groups.union(a, b)
    by_natural: dict[str, str] = {}
    for view, key in zip(views, firsts, strict=True):
        for other in view.linked_refs:
            groups.union(key, other.key)
        natural = natural_key(view)
        if natural:
            first = by_natural.setdefault(natural, key)
            if first != key:
                groups.union(key, first)
    buckets: dict[str, list] = {}
    for view, key in zip(views, firsts, strict=True):
        buckets.setdefault(groups.find(key), []).append(view)
    out = []
    for root in sorted(buckets):
        group = buckets[root]
        if len(group) == 1 and len(group[0].refs) == 1:
            refs = group[0].refs
            out.append((group, refs, (refs[0].key,)))
        else:
            refs = _sorted_refs([r for v in group for r in v.refs])
            out.append((group, refs, [r.key for r in refs]))
    return out


def _sorted_refs(refs: list[SourceRef]) -> tuple[SourceRef, ...]:
    """Distinct refs in text order (usually there are one or none)."""
    if len(refs) < 2:
        return tuple(refs)
    by_key = {ref.key: ref for ref in reversed(refs)}  # the first of equal refs wins
    return tuple([by_key[key] for key in sorted(by_key)])


def _by_precedence(candidates: list[Sourced], rule: PrecedenceRule) -> Sourced | None:
    if len(candidates) < 2:  # nothing to rank (the ranking itself cannot fail)
        return candidates[0] if candidates else None
    ranks = rule.ranks
    return min(candidates, key=lambda c: (ranks[c.provenance.source.system],
                                          c.provenance.source.key))


# ---- duplicates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Duplicate:
    """Two or more records of one system linked into one person or organisation: the CRM
    holds the entity twice. crmsync writes each the entity's values, but people should merge
    them. `linked_by`: the kinds of link that tie the entity's records together ("e-mail",
    "domain", "CRM id", "stored link"), never the values (an address is personal data)."""

    entity: str  # "person" or "organization"
    system: str
    records: tuple[str, ...]  # ref texts, sorted
    linked_by: tuple[str, ...]


def duplicates(reconciled: Reconciled, views: Iterable[Person | Organization | Deal],
               links: Iterable[tuple[SourceRef | str, SourceRef | str]] = ()) -> list[Duplicate]:
    """The duplicates among `reconciled`'s entities, made from `views` (and `links`).

    Converted Salesforce leads are history, not duplicates of their Contact, and take no
    part. Cheap for the usual entity of one record per system: only entities with two refs of
    one system are looked at closer. Sorted, so the result never depends on input order.
    """
    view_of = {view.refs[0].key: view for view in views if not isinstance(view, Deal)}
    link_keys = [(str(a), str(b)) for a, b in links]
    found = []
    for kind, entities, natural in (("person", reconciled.persons, _person_key),
                                    ("organization", reconciled.organizations,
                                     lambda o: o.domain)):
        for entity in entities:
            if len(entity.refs) < 2:
                continue
            converted = {ref.key for ref in getattr(entity, "converted_refs", ())}
            by_system: dict[str, list[str]] = {}
            for ref in entity.refs:
                if ref.key not in converted:
                    by_system.setdefault(ref.system.value, []).append(ref.key)
            shared = {system: keys for system, keys in by_system.items() if len(keys) > 1}
            if not shared:
                continue
            members = [view_of[ref.key] for ref in entity.refs if ref.key in view_of]
            linked_by = _link_kinds(kind, members, link_keys, natural)
            found += [Duplicate(kind, system, tuple(sorted(keys)), linked_by)
                      for system, keys in sorted(shared.items())]
    return sorted(found, key=lambda d: (d.entity, d.system, d.records))


def _link_kinds(kind: str, members: list, link_keys: list[tuple[str, str]],
                natural_key) -> tuple[str, ...]:
    """How the records of one entity are tied: by a shared natural key, by a record naming
    another (or two naming the same one), by a stored link."""
    kinds = set()
    naturals = [key for key in map(natural_key, members) if key]
    if len(naturals) > len(set(naturals)):
        kinds.add("e-mail" if kind == "person" else "domain")
    own = {view.refs[0].key for view in members}
    named = [ref.key for view in members for ref in view.linked_refs]
    if len(named) > len(set(named)) or own.intersection(named):
        kinds.add("CRM id")
    if any(a in own and b in own for a, b in link_keys):
        kinds.add("stored link")
    return tuple(sorted(kinds))


# ---- organisations --------------------------------------------------------------------------


def _decide_organization(mapping: Mapping, group: list[Organization], deals: list[Deal],
                         today: date, refs: tuple[SourceRef, ...]) -> Organization:
    facts_of: dict[str, list[Sourced]] = {}
    candidates: list[Sourced] = []
    asserted_by: list[Sourced] = []
    triggers: list[Trigger] = []
    linked: list[SourceRef] = []
    current: dict = {}
    for view in group:
        for name, fact in view.facts.items():
            facts_of.setdefault(name, []).append(fact)
        candidates += view.relationship_candidates
        if view.asserted_fit:
            asserted_by.append(view.asserted_fit)
        triggers += view.triggers
        linked += view.linked_refs
        current.update(view.current)
    for deal in deals:  # each names one of the group's records
        effect = mapping.deal_effects.get(deal.status.value)
        if effect and effect.relationship:
            candidates.append(_from_deal(deal, effect.relationship, effect.rule))
    facts_rule = mapping.precedence["organization.facts"]
    facts = {name: _by_precedence(facts_of[name], facts_rule) for name in sorted(facts_of)}
    rel_rule = mapping.precedence["organization.relationship"]
    asserted = _by_precedence(asserted_by, rel_rule)
    fit = evaluate_icp(mapping.icp, facts, asserted)
    merged_triggers = _merge_triggers(triggers)
    names = [v.name for v in group if v.name]
    domains = sorted({v.domain for v in group if v.domain})
    return Organization(
        refs=refs,
        name=names[0] if names else None,
        domain=domains[0] if domains else None,
        facts=facts,
        relationship=_pick_relationship(candidates, rel_rule),
        relationship_candidates=tuple(candidates),
        asserted_fit=asserted,
        linked_refs=_sorted_refs(linked),
        fit=fit,
        triggers=merged_triggers,
        priority=_organization_priority(fit, merged_triggers, today),
        current=current,
    )


def _from_deal(deal: Deal, value, rule: str) -> Sourced:
    prov = deal.status.provenance
    return Sourced(value, Provenance(_derived_rule(rule, prov.rule), deal.ref, prov.field,
                                     prov.raw))


@lru_cache(maxsize=1024)
def _derived_rule(rule: str, source_rule: str, how: str = "") -> str:
    """`rule [how] <- source_rule`, cached: a few dozen distinct texts, each in thousands of
    values, which then share one copy."""
    return f"{rule} {how} <- {source_rule}" if how else f"{rule} <- {source_rule}"


def _pick_relationship(candidates: list[Sourced], rule: PrecedenceRule) -> Sourced | None:
    """Precedence picks the system; within it, a won deal's `customer` beats a picklist."""
    if len(candidates) < 2:
        return candidates[0] if candidates else None
    ranks = rule.ranks
    return min(
        candidates,
        key=lambda c: (
            ranks[c.provenance.source.system],
            c.value is not Relationship.CUSTOMER,
            c.provenance.source.key,
        ),
    )


def evaluate_icp(node: IcpNode | None, facts: dict[str, Sourced], asserted: Sourced | None):
    """ICP fit from the rules; a picklist that asserts fit (Type = Prospect) overrides them."""
    if node is None and asserted is None:
        return None
    matched: list[str] = []
    failed: list[str] = []
    fit = _evaluate(node, facts, matched, failed) if node is not None else False
    if asserted is not None:
        return IcpFit(bool(asserted.value), tuple(matched), tuple(failed),
                      asserted.provenance.rule, asserted.provenance)
    return IcpFit(fit, tuple(matched), tuple(failed), node.rule)


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


def _merge_triggers(triggers: list[Trigger]) -> tuple[Trigger, ...]:
    if len(triggers) < 2:
        return tuple(triggers)
    unique = {}
    for trig in triggers:
        unique.setdefault((trig.type, trig.occurred_at, trig.provenance.source.key), trig)
    return tuple(sorted(unique.values(), key=lambda t: (t.occurred_at, t.type,
                                                         t.provenance.source.key)))


def active_positive_trigger(triggers: tuple[Trigger, ...], today: date) -> Trigger | None:
    """The latest active positive trigger, unless an active suppressing one cancels it."""
    active = [t for t in triggers if t.is_active(today)]
    if any(t.polarity is TriggerPolarity.SUPPRESSING for t in active):
        return None
    positive = [t for t in active if t.polarity is TriggerPolarity.POSITIVE]
    return positive[-1] if positive else None


def _organization_priority(fit: IcpFit | None, triggers, today) -> Sourced:
    if fit is None or not fit.fit:
        return _priority(Priority.OTHER, "organisation does not fit the ICP")
    trigger = active_positive_trigger(triggers, today) if triggers else None
    if trigger is not None:
        return _priority(Priority.TRIGGER_FIT, f"active {trigger.type} trigger on an ICP-fit "
                         f"organisation ({trigger.provenance.rule})")
    return _priority(Priority.FIT, f"ICP fit ({fit.rule})")


@lru_cache(maxsize=1024)
def _priority(value: Priority, why: str) -> Sourced:
    """Shared between entities (a handful of distinct values): never change the result."""
    return Sourced(value, Provenance(f"priority: {why}"))


# ---- persons --------------------------------------------------------------------------------


def _decide_person(mapping: Mapping, group: list[Person], deals: list[Deal],
                   org_of: dict[str, Organization], refs: tuple[SourceRef, ...]) -> Person:
    candidates: list[Sourced] = []
    org_refs: list[SourceRef] = []
    linked: list[SourceRef] = []
    converted: list[SourceRef] = []
    emails: list[str] = []
    current: dict = {}
    for view in group:
        candidates += view.stage_candidates
        org_refs += view.organization_refs
        linked += view.linked_refs
        converted += view.converted_refs
        if view.email:
            emails.append(view.email)
        current.update(view.current)
    for deal in deals:  # each names one of the group's records
        effect = mapping.deal_effects.get(deal.status.value)
        if effect and effect.stage:
            candidates.append(_from_deal(deal, effect.stage, effect.rule))
    stage = _decide_stage(candidates, mapping.precedence["person.stage"])
    orgs = [org_of[ref.key] for ref in org_refs if ref.key in org_of]
    org = min(orgs, key=_first_key) if orgs else None
    if len(candidates) > 1:
        candidates.sort(key=lambda c: c.provenance.source.key)
    return Person(
        refs=refs,
        email=min(emails) if emails else None,
        stage=stage,
        stage_candidates=tuple(candidates),
        organization_refs=_sorted_refs(org_refs),
        linked_refs=_sorted_refs(linked),
        converted_refs=_sorted_refs(converted),
        fit=org.fit if org else None,
        priority=_person_priority(stage, org),
        current=current,
    )


def _decide_stage(candidates: list[Sourced], rule: PrecedenceRule) -> Sourced | None:
    if not candidates:
        return None
    if rule.winner != "most_advanced":
        chosen = _by_precedence(candidates, rule)
        why = f"{rule.winner} wins"
    elif len(candidates) == 1:
        chosen, why = candidates[0], "most advanced"
    else:  # the highest on the ladder (off it only when none is on it), then by precedence
        ranks = rule.ranks
        chosen = min(candidates, key=lambda c: (-_RANK.get(c.value, -1),
                                                ranks[c.provenance.source.system],
                                                c.provenance.source.key))
        why = "most advanced"
    prov = chosen.provenance
    return Sourced(chosen.value, Provenance(_derived_rule(rule.rule, prov.rule, why),
                                            prov.source, prov.field, prov.raw))


_RANK = {stage: rank for rank, stage in enumerate(LADDER)}
_LEAD_OR_BEYOND = frozenset(LADDER[LADDER.index(LifecycleStage.LEAD):])


def _person_priority(stage: Sourced | None, org: Organization | None) -> Sourced:
    if stage is not None and stage.value is LifecycleStage.DISQUALIFIED:
        return _priority(Priority.OTHER, "disqualified")
    if org is not None and org.priority is not None and org.priority.value is not Priority.OTHER:
        return org.priority
    if stage is not None and stage.value in _LEAD_OR_BEYOND:
        return _priority(Priority.NONFIT_LEAD, f"a {stage.value} at an organisation that "
                         "does not fit the ICP (or is unknown)")
    return _priority(Priority.OTHER, "no fit organisation and not a lead yet")
