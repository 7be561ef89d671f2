"""`crmsync explain RECORD` and `crmsync history RECORD`: one person's or organisation's story,
from the state DB alone (no API call).

RECORD is a ref (`hubspot:contacts:100007`, `salesforce:Lead:00Q...`), an e-mail address or a
domain. It is found in the mirror, by ref or through the identity index (the e-mail and domain
keys that tie records together). Its planning group, the records tied to it directly or
through others, is then planned exactly as a run plans one (`plan_records` over the group's
mirrored records and stored links, as `Planner.plan_records` does), so the person or
organisation, its values and the next run's changes are what the engine makes of the mirror
now. History reads the audit log record by record (migration 7 indexes it so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from connector.catalog import CATALOG, Unreadable
from connector.core import CoreResult, plan_records
from connector.exceptions import ConfigurationError
from connector.explain import describe_organization, describe_person, link_reasons, link_text
from connector.identity import email_key, normalise_domain, normalise_email
from connector.mapping import Mapping
from connector.model import Deal, Organization, Person, Rejection
from connector.reconcile import duplicates
from connector.state import StateStore, parse_ref
from connector.state.journal import AuditEntry
from connector.state.mirror import RecordState

__all__ = ["Found", "Query", "explain_report", "find", "history_report", "parse_query",
           "render_candidates", "render_explain", "render_history"]

Entity = Person | Organization
_MAX_MERGE_HOPS = 10  # a merge chain longer than this is a loop in the data


@dataclass(frozen=True)
class Query:
    """What RECORD names: `kind` "ref" (value: the ref text), "email" (the address,
    case-folded) or "domain" (the registrable domain)."""

    text: str
    kind: str
    value: str


@dataclass
class Found:
    """What a query found: the live records it names (`matched`), those deleted or merged
    away (`gone`), the core's result over their group, and what in it the query is about."""

    query: Query
    matched: list[str]
    notes: list[str] = field(default_factory=list)
    gone: list[RecordState] = field(default_factory=list)
    core: CoreResult | None = None
    raws: dict[str, dict] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def ambiguous(self) -> bool:
        """An e-mail address or a domain that several people or organisations hold (a shared
        inbox ties no one together): the person asking must name one."""
        return self.query.kind != "ref" and len(self.entities) > 1

    def refs(self) -> list[str]:
        """Every record the answer is about: the entities' records, the deals and rejected
        records asked about, and the records gone since."""
        refs = {ref.key for entity in self.entities for ref in entity.refs}
        refs |= {deal.ref.key for deal in self.deals}
        refs |= {str(rejection.source) for rejection in self.rejected}
        refs |= {state.ref for state in self.gone}
        return sorted(refs)


# ---- finding RECORD ----------------------------------------------------------------------------


def parse_query(text: str) -> Query:
    """RECORD as a ref, an e-mail address or a domain; ConfigurationError (exit 2) when it is
    none of these, naming what would do."""
    text = text.strip()
    if not text:
        raise ConfigurationError("RECORD is empty: give system:object:id (e.g. "
                                 "hubspot:contacts:100007), an e-mail address or a domain")
    system, _, rest = text.partition(":")
    if system.casefold() in CATALOG:
        return Query(text, "ref", _ref_text(system.casefold(), rest, text))
    if "@" in text:
        address = normalise_email(text)
        if address is None or " " in address:
            raise ConfigurationError(f"{text!r} is not an e-mail address")
        return Query(text, "email", address)
    domain = normalise_domain(text)
    if domain is None:
        raise ConfigurationError(
            f"{text} is a free-mail or placeholder domain, or no domain at all: crmsync never "
            "links organisations by it. Name a record instead (system:object:id)")
    return Query(text, "domain", domain)


def _ref_text(system: str, rest: str, text: str) -> str:
    catalog = CATALOG[system]
    object_type, _, record_id = rest.partition(":")
    known = {name.casefold(): name for name in catalog.objects}
    if not object_type or not record_id:
        raise ConfigurationError(f"{text} is not a record: give {system}:OBJECT:ID, e.g. "
                                 f"{system}:{next(iter(catalog.objects))}:ID")
    if object_type.casefold() not in known:
        raise ConfigurationError(f"unknown object {system}:{object_type} ({system} objects: "
                                 f"{', '.join(catalog.objects)})")
    return f"{system}:{known[object_type.casefold()]}:{record_id}"


def find(store: StateStore, mapping: Mapping, text: str, today: date) -> Found:
    """Look RECORD up in the state DB and plan its group as a run would on `today`.

    ConfigurationError (exit 2) when it names nothing the state DB holds, naming the DB."""
    query = parse_query(text)
    if query.kind == "ref":
        found = _by_ref(store, query)
    elif query.kind == "email":
        found = Found(query, _by_email(store, query.value))
        if not found.matched:
            shared = "" if email_key(query.value) else (
                " (it is a shared or placeholder address, which ties no records together; "
                "every person record was searched for it)")
            raise ConfigurationError(f"no person with e-mail {query.value} in the state DB "
                                     f"{store.path}{shared}")
    else:
        found = Found(query, sorted(store.mirror.refs_with_key(f"domain:{query.value}")))
        if not found.matched:
            raise ConfigurationError(f"no organisation with domain {query.value} in the state "
                                     f"DB {store.path}")
    if found.matched:
        _plan_group(store, mapping, found, today)
    return found


def _by_ref(store: StateStore, query: Query) -> Found:
    ref = query.value
    state = store.mirror.record_state(ref)
    notes: list[str] = []
    if state is None:
        state = _by_short_salesforce_id(store, ref, notes)
    if state is None:
        raise ConfigurationError(
            f"no record {ref} in the state DB {store.path}: no run has read it. Check the id "
            "(and the state DB), or run `crmsync sync` or `crmsync backfill` first")
    gone: list[RecordState] = []
    while state.deleted and state.merged_into and len(gone) < _MAX_MERGE_HOPS:
        gone.append(state)
        notes.append(f"{state.ref} was merged into {state.merged_into}{_on(state)}: showing "
                     f"{state.merged_into}")
        survivor = store.mirror.record_state(state.merged_into)
        if survivor is None:
            notes.append(f"{state.merged_into} is not in the state DB: no run has read it yet")
            return Found(query, [], notes, gone)
        state = survivor
    if state.deleted:
        gone.append(state)
        notes.append(f"{state.ref} was deleted in its CRM{_on(state)}: it no longer links, "
                     "counts in reconciling or receives writes")
        return Found(query, [], notes, gone)
    return Found(query, [state.ref], notes, gone)


def _by_short_salesforce_id(store: StateStore, ref: str, notes: list[str]
                            ) -> RecordState | None:
    """A Salesforce id given in its 15-character form (as reports show it) names the record
    whose 18-character id starts with it."""
    system, _, record_id = ref.split(":", 2)
    if system != "salesforce" or len(record_id) != 15:
        return None
    longer = [r for r in store.mirror.refs_starting(ref, 2) if len(r) == len(ref) + 3]
    if len(longer) != 1:
        return None
    notes.append(f"{ref} is the 15-character form of {longer[0]}")
    return store.mirror.record_state(longer[0])


def _on(state: RecordState) -> str:
    return f" on {state.deleted_at:%Y-%m-%d %H:%M} UTC" if state.deleted_at else ""


def _by_email(store: StateStore, address: str) -> list[str]:
    """The live person records holding `address`: through the identity index, or, for an
    address that ties no one together (info@, a placeholder), by searching them."""
    key = email_key(address)
    if key is not None:
        return sorted(store.mirror.refs_with_key(f"email:{key}"))
    objects = [(name, obj) for name, catalog in CATALOG.items()
               for obj in catalog.objects_of("person")]
    return sorted(ref for ref, raw in store.mirror.records_containing(address, objects)
                  if _email_of(ref, raw) == address)


def _email_of(ref: str, raw: dict) -> str | None:
    system, object_type, _ = ref.split(":", 2)
    catalog = CATALOG[system]
    fields = catalog.record_fields(raw)
    if fields is None:
        return None
    try:
        email = catalog.person_links(object_type, fields, raw).email
    except Unreadable:
        return None
    return normalise_email(email) if isinstance(email, str) else None


def _plan_group(store: StateStore, mapping: Mapping, found: Found, today: date) -> None:
    """Plan the records tied to the matched ones as a run plans a group (see the module
    docstring), and pick out what the query is about."""
    group = store.mirror.group_closure(found.matched)
    found.raws = store.mirror.raw([parse_ref(ref) for ref in group])
    found.links = store.mirror.link_texts(group)
    records = [(*ref.split(":", 2)[:2], raw) for ref, raw in sorted(found.raws.items())]
    found.core = core = plan_records(mapping, records, today, found.links)
    owner: dict[str, Entity] = {ref.key: entity
                                for entity in (*core.reconciled.persons,
                                               *core.reconciled.organizations)
                                for ref in entity.refs}
    deals = {deal.ref.key: deal for deal in core.reconciled.deals}
    rejected = {str(rejection.source): rejection for rejection in core.rejections}

    def add(entity: Entity) -> None:
        if all(entity is not other for other in found.entities):
            found.entities.append(entity)

    for ref in found.matched:
        if ref in owner:
            add(owner[ref])
        elif ref in deals:
            found.deals.append(deals[ref])
            for named in (*deals[ref].person_refs, *deals[ref].organization_refs):
                if named.key in owner:
                    add(owner[named.key])
        elif ref in rejected:
            found.rejected.append(rejected[ref])


# ---- explain -----------------------------------------------------------------------------------


def explain_report(store: StateStore, mapping: Mapping, found: Found, today: date,
                   mapping_sha256: str | None = None) -> dict[str, Any]:
    """What `crmsync explain` shows, as JSON data. `mapping_sha256`, when given, is compared
    with the mapping the state DB last planned with (a changed one replans everything)."""
    notes = list(found.notes)
    planned_with = store.meta("planned_mapping")
    if mapping_sha256 is not None and planned_with and planned_with != mapping_sha256:
        notes.append("the mapping differs from the one the state DB last planned with: the "
                     "next run plans every record with it")
    open_rejects = {}
    for entry in store.ledger.open():
        open_rejects.setdefault(entry.ref, []).append(entry)
    return {
        "record": found.query.text,
        "state": str(store.path),
        "mapping": [str(path) for path in mapping.files],
        "today": today.isoformat(),
        "last_run": _last_run(store),
        "notes": notes,
        "matched": found.matched,
        "gone": [{"record": s.ref, "deleted_at": s.deleted_at.isoformat() if s.deleted_at
                  else None, "merged_into": s.merged_into} for s in found.gone],
        "rejected": [{"record": str(r.source), "field": r.field, "reason": r.reason,
                      "attempts": _attempts(open_rejects, str(r.source))}
                     for r in found.rejected],
        "deals": [_deal(deal) for deal in found.deals],
        "entities": [_entity(entity, found, today, open_rejects) for entity in found.entities],
    }


def _last_run(store: StateStore) -> dict[str, Any] | None:
    runs = store.journal.runs(1)
    if not runs:
        return None
    run = runs[0]
    return {"run": run.id, "kind": run.kind, "status": run.status, "dry_run": run.dry_run,
            "started_at": run.started_at.isoformat()}


def _attempts(open_rejects: dict[str, list], ref: str) -> int | None:
    entries = [e for e in open_rejects.get(ref, ()) if e.stage == "read"]
    return entries[0].attempts if entries else None


def _deal(deal: Deal) -> dict[str, Any]:
    return {"record": deal.ref.key, "status": deal.status.value.value,
            "why": deal.status.provenance.describe(),
            "people": [ref.key for ref in deal.person_refs],
            "organizations": [ref.key for ref in deal.organization_refs]}


def _entity(entity: Entity, found: Found, today: date,
            open_rejects: dict[str, list]) -> dict[str, Any]:
    core = found.core
    assert core is not None  # entities come from the core's result
    views = {(v.ref if isinstance(v, Deal) else v.refs[0]).key: v for v in core.views}
    reasons = link_reasons(entity, views, found.raws, found.links)
    refs = {ref.key for ref in entity.refs}
    person = isinstance(entity, Person)
    records = []
    for ref in entity.refs:
        view = views.get(ref.key)
        record: dict[str, Any] = {"ref": ref.key, "links": reasons[ref.key]}
        if person:
            record["email"] = getattr(view, "email", None)
            record["converted"] = ref in entity.converted_refs
        else:
            record["name"] = getattr(view, "name", None)
            record["domain"] = getattr(view, "domain", None)
        records.append(record)
    deals = [_deal(deal) for deal in core.reconciled.deals
             if refs & {r.key for r in (deal.person_refs if person else deal.organization_refs)}]
    report: dict[str, Any] = {
        "kind": "person" if person else "organization",
        "title": _title(entity),
        "records": records,
        "deals": deals,
        "duplicates": [{"system": d.system, "records": list(d.records),
                        "linked_by": list(d.linked_by)}
                       for d in duplicates(core.reconciled, core.views, found.links)
                       if set(d.records) <= refs],
        "open_rejects": [{"record": e.ref, "stage": e.stage, "field": e.field or None,
                          "reason": e.reason, "attempts": e.attempts}
                         for ref in sorted(refs) for e in open_rejects.get(ref, ())],
        "next_run": [{"record": c.ref.key, **c.model_dump(mode="json")}
                     for c in core.changes if c.ref.key in refs],
    }
    if isinstance(entity, Person):
        organization = _organization_of(entity, core)
        report["values"] = describe_person(entity)
        report["values"]["fit_why"] = _fit_why(organization)
        report["organizations"] = [
            {"records": [r.key for r in org.refs], "name": org.name, "domain": org.domain}
            for org in core.reconciled.organizations
            if {r.key for r in org.refs} & {r.key for r in entity.organization_refs}]
    else:
        report["values"] = describe_organization(entity, today)
        report["people"] = [
            {"records": [r.key for r in p.refs], "email": p.email,
             "stage": p.stage.value.value if p.stage else None}
            for p in core.reconciled.persons
            if {r.key for r in p.organization_refs} & refs]
    return report


def _title(entity: Entity) -> str:
    if isinstance(entity, Person):
        return f"Person {entity.email or entity.refs[0].key}"
    domain = f" ({entity.domain})" if entity.domain else ""
    return f"Organization {entity.name or entity.refs[0].key}{domain}"


def _organization_of(person: Person, core: CoreResult) -> Organization | None:
    """The organisation a person's fit comes from (reconcile takes the first by ref)."""
    named = {ref.key for ref in person.organization_refs}
    orgs = [org for org in core.reconciled.organizations
            if named & {ref.key for ref in org.refs}]
    return min(orgs, key=lambda org: org.refs[0].key) if orgs else None


def _fit_why(org: Organization | None) -> str:
    if org is None:
        return "no organisation of this person is in the state DB"
    of = " + ".join(ref.key for ref in org.refs)
    if org.fit is None:
        return f"organisation {of} has no ICP verdict (no rule and no asserted fit)"
    why = org.fit.asserted_by.describe() if org.fit.asserted_by else org.fit.rule
    return f"{why}, of organisation {of}"


def render_explain(report: dict[str, Any]) -> str:
    """Plain lines: who, which records and why linked, the values and their rules, the next
    run's changes. The same text on a terminal and in a pipe (it greps well)."""
    last = report["last_run"]
    read = (f"after run {last['run']} ({last['kind']}{', dry run' if last['dry_run'] else ''}"
            f", {last['status']}, {last['started_at'][:19].replace('T', ' ')} UTC)"
            if last else "before any run")
    packs = f" (with {len(report['mapping']) - 1} label pack file(s))" \
        if len(report["mapping"]) > 1 else ""
    lines = [f"as the state DB {report['state']} holds it {read}; as of {report['today']}",
             f"mapping: {report['mapping'][0]}{packs}"]
    lines += [f"note: {note}" for note in report["notes"]]
    for rejected in report["rejected"]:
        tries = f" (seen in {rejected['attempts']} run(s))" if rejected["attempts"] else ""
        lines.append(f"{rejected['record']} is rejected when read{tries}: {rejected['reason']}. "
                     "It takes no part in planning until that is fixed")
    for deal in report["deals"]:
        lines.append(f"\nDeal {deal['record']}: {deal['status']}  <- {deal['why']}")
    for entity in report["entities"]:
        lines += _entity_lines(entity)
    return "\n".join(lines)


def _entity_lines(entity: dict[str, Any]) -> list[str]:
    lines = [f"\n{entity['title']}", f"records ({len(entity['records'])}):"]
    for record in entity["records"]:
        about = (record.get("email") or "" if entity["kind"] == "person"
                 else "  ".join(v for v in (record.get("name"), record.get("domain")) if v))
        converted = "  converted lead (history: never written)" if record.get("converted") \
            else ""
        lines.append(f"  {record['ref']}  {about}{converted}".rstrip())
        reasons = "; ".join(link_text(reason) for reason in record["links"])
        lines.append(f"      linked: {reasons or 'only this record'}")
    for duplicate in entity["duplicates"]:
        lines.append(f"duplicates: {duplicate['system']} holds this {entity['kind']} "
                     f"{len(duplicate['records'])} times ({', '.join(duplicate['records'])}), "
                     f"linked by {', '.join(duplicate['linked_by'])}: merge them in "
                     f"{duplicate['system']}")
    if entity["kind"] == "person":
        orgs = ["{} ({})".format(" + ".join(org["records"]),
                                 ", ".join(v for v in (org["name"], org["domain"]) if v))
                for org in entity["organizations"]]
        lines.append(f"organisation: {'; '.join(orgs) or '(none in the state DB)'}")
    else:
        people = [" + ".join(person["records"]) for person in entity["people"]]
        lines.append(f"people ({len(people)}): {', '.join(people) or '(none)'}")
    deals = [f"{deal['record']} {deal['status']}" for deal in entity["deals"]]
    lines.append(f"deals ({len(deals)}): {', '.join(deals) or '(none)'}")
    lines.append("values:")
    lines += _value_lines(entity)
    for reject in entity["open_rejects"]:
        field_name = f" {reject['field']}" if reject["field"] else ""
        lines.append(f"open reject: {reject['record']}{field_name} ({reject['stage']}, "
                     f"{reject['attempts']} attempt(s)): {reject['reason']}")
    lines += _change_lines(entity["next_run"])
    return lines


def _value_lines(entity: dict[str, Any]) -> list[str]:
    values, lines = entity["values"], []
    if entity["kind"] == "person":
        _value(lines, "stage", values["stage"])
        for candidate in values["stage_candidates"]:
            _value(lines, "  candidate", candidate)
        lines.append(f"  fit: {values['fit']}  <- {values['fit_why']}")
        _value(lines, "priority", values["priority"])
        return lines
    for name, fact in values["facts"].items():
        _value(lines, f"fact {name}", fact)
    _value(lines, "relationship", values["relationship"])
    fit = values["fit"]
    if fit:
        failed = f"; failed: {', '.join(fit['failed'])}" if fit["failed"] else ""
        lines.append(f"  fit: {fit['fit']}  <- {fit['why']} (matched: "
                     f"{', '.join(fit['matched']) or 'none'}{failed})")
    else:
        lines.append("  fit: (none)")
    for trigger in values["triggers"]:
        state = "ACTIVE" if trigger["active"] else "inactive"
        lines.append(f"  trigger {trigger['type']} ({trigger['polarity']}, {state}) "
                     f"{trigger['occurred_at']}..{trigger['expires_at']}  <- {trigger['why']}")
    _value(lines, "priority", values["priority"])
    return lines


def _value(lines: list[str], label: str, value: dict | None) -> None:
    shown = "(none)" if value is None else f"{value['value']}  <- {value['why']}"
    lines.append(f"  {label}: {shown}")


def _change_lines(changes: list[dict[str, Any]]) -> list[str]:
    if not changes:
        return ["next run: no changes"]
    lines = [f"next run: {len(changes)} change(s)"]
    two_step = {(c["record"], c["field"]) for c in changes if c["step"]}
    for change in changes:
        step = (f" (step {change['step'] + 1} of 2)"
                if (change["record"], change["field"]) in two_step else "")
        lines.append(f"  {change['system']} {change['object_type']} {change['record_id']} "
                     f"{change['field']}: {change['before']!r} -> {change['after']!r}{step}")
        lines.append(f"      because {change['reason']}")
        lines.append(f"      rule {change['rule']}")
    return lines


def render_candidates(found: Found, state: str) -> str:
    """The people or organisations an ambiguous RECORD matches, one line each."""
    kind = "people" if found.query.kind == "email" else "organisations"
    lines = [f"{found.query.value} matches {len(found.entities)} {kind} in the state DB "
             f"{state}; name one of them:"]
    lines += [f"  {' + '.join(c['records'])}  {c['about']}".rstrip()
              for c in candidates(found)]
    return "\n".join(lines)


def candidates(found: Found) -> list[dict[str, Any]]:
    out = []
    for entity in found.entities:
        if isinstance(entity, Person):
            about = entity.stage.value.value if entity.stage else ""
        else:
            about = ", ".join(v for v in (entity.name, entity.domain) if v)
        out.append({"records": [ref.key for ref in entity.refs], "about": about})
    return out


# ---- history -----------------------------------------------------------------------------------

_ROLLBACK_RULE = re.compile(r"^rollback of run (\d+)$")


def history_report(store: StateStore, found: Found) -> dict[str, Any]:
    """Every change crmsync made (or meant to make) to the records of `found`, run by run,
    oldest first, as JSON data; a change a later rollback restored says which run did."""
    refs = found.refs()
    entries = store.journal.history([parse_ref(ref) for ref in refs])
    rolled_back = _rolled_back(entries, store)
    runs: dict[int, dict[str, Any]] = {}
    for entry in entries:
        if entry.run_id not in runs:
            run = store.journal.run(entry.run_id)
            runs[entry.run_id] = {
                "run": entry.run_id, "kind": run.kind if run else "?",
                "started_at": run.started_at.isoformat() if run else None,
                "status": run.status if run else None,
                "dry_run": run.dry_run if run else False, "changes": []}
        by = rolled_back.get((entry.run_id, entry.ref.key, entry.field))
        runs[entry.run_id]["changes"].append({
            "record": entry.ref.key, "system": entry.ref.system.value,
            "object_type": entry.ref.object_type, "record_id": entry.ref.record_id,
            "field": entry.field, "before": entry.before, "after": entry.after,
            "step": entry.step, "rule": entry.rule, "reason": entry.reason,
            "status": entry.status, "rolled_back_by": by if entry.status == "applied" else None,
            "outcome": _outcome(entry, by), "at": entry.at.isoformat()})
    title = " / ".join(_title(entity) for entity in found.entities) or ", ".join(refs)
    return {"record": found.query.text, "state": str(store.path), "title": title,
            "records": refs, "notes": found.notes, "runs": list(runs.values())}


def _rolled_back(entries: list[AuditEntry], store: StateStore) -> dict[tuple, int]:
    """(run, record, field) -> the run that wrote its before-value back (`crmsync rollback`)."""
    found: dict[tuple, int] = {}
    for entry in entries:
        match = _ROLLBACK_RULE.match(entry.rule or "")
        if match and entry.status == "applied":
            run = store.journal.run(entry.run_id)
            if run is not None and run.kind == "rollback":
                found[(int(match[1]), entry.ref.key, entry.field)] = entry.run_id
    return found


def _outcome(entry: AuditEntry, rolled_back_by: int | None) -> str:
    """What became of a change, in words."""
    system = entry.ref.system.value
    if entry.status == "applied":
        return f"rolled back by run {rolled_back_by}" if rolled_back_by else "applied"
    return {
        "rejected": f"rejected by {system} (see `crmsync rejects`)",
        "retry_later": f"not written: {system} kept failing; the next run tries again",
        "not_applied": f"not written (the run ended before {system} answered, and a later run "
                       "found the field without it)",
        "intent": f"intended (the run ended before {system} answered; the next run checks "
                  "whether it was written)",
    }.get(entry.status, entry.status)


def render_history(report: dict[str, Any]) -> str:
    """Plain lines, a heading per run and a line per change (record, field, before -> after,
    outcome), its reason and rule under it: greppable, at any width."""
    lines = [f"history of {report['title']}: {', '.join(report['records'])}"]
    lines += [f"note: {note}" for note in report["notes"]]
    if not report["runs"]:
        lines.append(f"crmsync has not changed {', '.join(report['records'])} (nothing in the "
                     f"audit log of {report['state']})")
    for run in report["runs"]:
        lines.append(run_heading(run))
        for change in run["changes"]:
            lines.append(f"  {change_text(change)}  {change['outcome']}")
            if change["reason"]:
                lines.append(f"      because {change['reason']}")
            lines.append(f"      rule {change['rule']}")
    return "\n".join(lines)


def run_heading(run: dict[str, Any]) -> str:
    started = (run["started_at"] or "")[:19].replace("T", " ")
    return f"run {run['run']} {run['kind']} {started} UTC ({run['status']})"


def change_text(change: dict[str, Any]) -> str:
    step = f" (step {change['step'] + 1} of 2)" if change["step"] else ""
    return (f"{change['system']} {change['object_type']} {change['record_id']} "
            f"{change['field']}: {change['before']!r} -> {change['after']!r}{step}")
