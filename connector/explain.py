"""`crmsync mappings explain`: show what the mapping makes of given records, and why.

Admins edit mapping YAML, then feed it a real record from each CRM; every canonical value is
printed with the rule (file:line) that produced it, and the plan shows what would be written.
`missing_links` names the records the given ones are tied to but that were not given (their
absence changes the answer), and `link_reasons` says why records form one person or
organisation; `crmsync explain RECORD` (connector/lookup.py) shares them. No I/O here but
reading the files given.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from connector.catalog import CATALOG, Named, Unreadable, raw_text
from connector.core import plan_records
from connector.exceptions import ConfigurationError
from connector.identity import email_key
from connector.mapping import Mapping
from connector.model import Deal, Organization, Person, Sourced
from connector.reconcile import active_positive_trigger

__all__ = ["describe_organization", "describe_person", "explain", "guess_object_type",
           "link_reasons", "link_text", "missing_links", "read_records", "render_text"]


def read_records(path: Path, system: str) -> list[tuple[str, dict]]:
    """Records from a JSON file (one record, a list, or an API page with `results`/`records`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") \
            from None
    if isinstance(data, dict):
        data = data.get("results") or data.get("records") or [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ConfigurationError(f"{path}: expected a JSON object or a list of objects")
    return [(guess_object_type(system, record, path), record) for record in data]


def guess_object_type(system: str, record: dict, path: Path | str = "<record>") -> str:
    declared = record.get("objectType") or (record.get("attributes") or {}).get("type")
    if declared:
        return str(declared)
    catalog = CATALOG.get(system)
    if catalog is not None:
        fields = catalog.record_fields(record) or {}
        for hint, object_type in catalog.object_hints:
            if hint in fields:
                return object_type
    raise ConfigurationError(
        f"{path}: cannot tell the object type of record {record.get('id') or record.get('Id')!r}; "
        'add "objectType": "contacts" (HubSpot) or "attributes": {"type": "Lead"} (Salesforce)'
    )


def explain(mapping: Mapping, records: list[tuple[str, str, dict]], today: date) -> dict[str, Any]:
    """records: (system, object_type, raw). Returns views, entities and the plan, as JSON data."""
    result = plan_records(mapping, records, today)
    return {
        "today": today.isoformat(),
        "rejections": [r.model_dump(mode="json") for r in result.rejections],
        "persons": [describe_person(p) for p in result.reconciled.persons],
        "organizations": [describe_organization(o, today)
                          for o in result.reconciled.organizations],
        "plan": [c.model_dump(mode="json") for c in result.changes],
    }


def _value(sourced: Sourced | None) -> dict[str, Any] | None:
    if sourced is None:
        return None
    value = sourced.value.value if hasattr(sourced.value, "value") else sourced.value
    return {"value": value, "why": sourced.provenance.describe()}


def describe_person(person: Person) -> dict[str, Any]:
    """A person's values, each with the rule behind it, as JSON data."""
    return {
        "records": [str(r) for r in person.refs],
        "email": person.email,
        "stage": _value(person.stage),
        "stage_candidates": [_value(c) for c in person.stage_candidates],
        "fit": person.fit.fit if person.fit else None,
        "priority": _value(person.priority),
        "converted_leads": [str(r) for r in person.converted_refs],
        "organizations": [str(r) for r in person.organization_refs],
    }


def describe_organization(org: Organization, today: date) -> dict[str, Any]:
    """An organisation's facts, fit, triggers and priority, each with its rule, as JSON data."""
    active = active_positive_trigger(org.triggers, today)
    return {
        "records": [str(r) for r in org.refs],
        "name": org.name,
        "domain": org.domain,
        "facts": {name: _value(fact) for name, fact in org.facts.items()},
        "relationship": _value(org.relationship),
        "fit": None if org.fit is None else {
            "fit": org.fit.fit,
            "matched": list(org.fit.matched),
            "failed": list(org.fit.failed),
            "why": org.fit.asserted_by.describe() if org.fit.asserted_by else org.fit.rule,
        },
        "triggers": [
            {
                "type": t.type,
                "polarity": t.polarity.value,
                "occurred_at": t.occurred_at.isoformat(),
                "expires_at": t.expires_at.isoformat(),
                "active": t.is_active(today),
                "why": t.provenance.describe(),
            }
            for t in org.triggers
        ],
        "active_trigger": active.type if active else None,
        "priority": _value(org.priority),
    }


def render_text(report: dict[str, Any]) -> str:
    """A plain, greppable rendering: one value per line with its reason."""
    lines = [f"as of {report['today']}"]
    for rejection in report["rejections"]:
        source = rejection["source"]
        lines.append(f"REJECTED {source['system']}:{source['object_type']}:{source['record_id']}"
                     f": {rejection['reason']}")
    for person in report["persons"]:
        lines.append(f"\nPerson {' + '.join(person['records'])}")
        lines.append(f"  email: {person['email']}")
        _line(lines, "stage", person["stage"])
        for candidate in person["stage_candidates"]:
            _line(lines, "  candidate", candidate)
        lines.append(f"  fit: {person['fit']}")
        _line(lines, "priority", person["priority"])
        if person["converted_leads"]:
            converted = ", ".join(person["converted_leads"])
            lines.append(f"  converted leads (never written): {converted}")
    for org in report["organizations"]:
        records = " + ".join(org["records"])
        lines.append(f"\nOrganization {records}  ({org['name']}, {org['domain']})")
        for name, fact in org["facts"].items():
            _line(lines, f"fact {name}", fact)
        _line(lines, "relationship", org["relationship"])
        if org["fit"]:
            fit = org["fit"]
            lines.append(f"  fit: {fit['fit']}  matched={fit['matched']} failed={fit['failed']}"
                         f"  <- {fit['why']}")
        for trig in org["triggers"]:
            state = "ACTIVE" if trig["active"] else "inactive"
            lines.append(f"  trigger {trig['type']} ({trig['polarity']}, {state}) "
                         f"{trig['occurred_at']}..{trig['expires_at']}  <- {trig['why']}")
        _line(lines, "priority", org["priority"])
    lines.append("\nPlan:" if report["plan"] else "\nPlan: no changes")
    two_step = {(c["system"], c["record_id"], c["field"]) for c in report["plan"] if c["step"]}
    for change in report["plan"]:
        key = (change["system"], change["record_id"], change["field"])
        step = f" (step {change['step'] + 1} of 2)" if key in two_step else ""
        lines.append(f"  {change['system']} {change['object_type']} {change['record_id']} "
                     f"{change['field']}: {change['before']!r} -> {change['after']!r}{step}")
        lines.append(f"      because {change['reason']}")
        lines.append(f"      rule {change['rule']}")
    return "\n".join(lines)


def _line(lines: list[str], label: str, value: dict | None) -> None:
    if value is None:
        lines.append(f"  {label}: (none)")
    else:
        lines.append(f"  {label}: {value['value']}  <- {value['why']}")


# ---- records tied to others --------------------------------------------------------------------

# What a named record is to the record naming it, by the kinds of both.
_ROLES = {
    ("person", "same"): "the same person's record",
    ("person", "organization"): "its organisation",
    ("organization", "same"): "the same organisation's record",
    ("deal", "person"): "its person",
    ("deal", "organization"): "its organisation",
}


def missing_links(records: list[tuple[str, str, dict]]) -> list[str]:
    """One warning per record a given record names (the same person elsewhere, its
    organisation, a deal's people) that is not among `records`: without it, links, fit and
    priority are worked out from part of the picture, and an admin should know.

    `records`: (system, object_type, raw). Records too malformed to name anything are left to
    `explain`, which rejects them with the reason."""
    given = set()
    for system, object_type, raw in records:
        record_id = CATALOG[system].record_id(raw)
        if record_id is not None:
            given.add(f"{system}:{object_type}:{record_id}")
    warnings = []
    for system, object_type, raw in records:
        catalog = CATALOG[system]
        record_id, fields = catalog.record_id(raw), catalog.record_fields(raw)
        if record_id is None or fields is None:
            continue
        ref = f"{system}:{object_type}:{record_id}"
        try:
            named = _named(system, object_type, fields, raw)
        except Unreadable:
            continue
        for role, (named_system, named_object, named_id) in named:
            other = f"{named_system.value}:{named_object}:{raw_text(named_id)}"
            if other not in given:
                warnings.append(f"{ref}: {role} {other} is not among the given records")
    return list(dict.fromkeys(warnings))


def _named(system: str, object_type: str, fields: dict[str, Any], raw: dict
           ) -> list[tuple[str, Named]]:
    """(role, named record) for every record this one names."""
    catalog = CATALOG[system]
    kind = catalog.kind_of(object_type)
    if kind == "person":
        _, linked, orgs, _ = catalog.person_links(object_type, fields, raw)
        return ([(_ROLES["person", "same"], n) for n in linked]
                + [(_ROLES["person", "organization"], n) for n in orgs])
    if kind == "organization":
        linked, _ = catalog.organization_links(fields)
        return [(_ROLES["organization", "same"], n) for n in linked]
    persons, orgs = catalog.deal_links(fields, raw)
    return ([(_ROLES["deal", "person"], n) for n in persons]
            + [(_ROLES["deal", "organization"], n) for n in orgs])


def link_reasons(entity: Person | Organization, views: dict[str, Person | Organization | Deal],
                 raws: dict[str, dict], links: list[tuple[str, str]]) -> dict[str, list[dict]]:
    """Why each record of `entity` belongs to it, by ref text: the ties `reconcile` groups
    by, each as JSON data (`link_text` words it), with the values that tie them.

    - a stored link a person asserted: `{"kind": "stored link", "with": ref}`;
    - a cross-reference id, a record holding another's id (a HubSpot contact's
      `salesforcecontactid`, a converted lead's `ConvertedContactId`): `{"kind":
      "cross-reference id", "record": ref, "field": name, "names": ref}`, on both records,
      with `"with"` the entity's other records that name the same one when it is not mirrored;
    - a shared natural key: `{"kind": "e-mail" | "domain", "value": ..., "with": [refs]}`.

    `views` and `raws` are keyed by ref text (the core's views, the mirrored records);
    `links` are stored links. Pure: it re-derives what reconcile did from the same inputs.
    """
    refs = [ref.key for ref in entity.refs]
    inside = set(refs)
    reasons: dict[str, list[dict]] = {ref: [] for ref in refs}
    for a, b in sorted(links):
        if a != b and a in inside:
            reasons[a].append({"kind": "stored link", "with": b})
        if a != b and b in inside:
            reasons[b].append({"kind": "stored link", "with": a})
    naming: dict[str, list[str]] = {}
    for ref in refs:
        view = views.get(ref)
        for named in getattr(view, "linked_refs", ()):
            if named.key != ref:
                naming.setdefault(named.key, []).append(ref)
    for named, by in sorted(naming.items()):
        for ref in by:
            reason = {"kind": "cross-reference id", "record": ref,
                      "field": _field_naming(ref, raws.get(ref), named), "names": named}
            if named in inside:
                reasons[named].append(reason)
                reasons[ref].append(reason)
            elif len(by) > 1:
                reasons[ref].append({**reason, "with": [other for other in by if other != ref]})
    kind = "e-mail" if isinstance(entity, Person) else "domain"
    sharing: dict[str, list[str]] = {}
    for ref in refs:
        view = views.get(ref)
        natural = (email_key(view.email) if isinstance(view, Person)
                   else getattr(view, "domain", None))
        if natural:
            sharing.setdefault(natural, []).append(ref)
    for value, by in sorted(sharing.items()):
        if len(by) > 1:
            for ref in by:
                reasons[ref].append({"kind": kind, "value": value,
                                     "with": [other for other in by if other != ref]})
    return reasons


def _field_naming(ref: str, raw: dict | None, named: str) -> str | None:
    """The field of record `ref` that holds the id of `named`, if one of its link fields does."""
    if raw is None:
        return None
    system, object_type, _ = ref.split(":", 2)
    catalog = CATALOG[system]
    fields = catalog.record_fields(raw) or {}
    named_id = named.rsplit(":", 1)[1]
    spec = catalog.objects.get(object_type)
    for name in spec.link_fields if spec is not None else ():
        if raw_text(fields.get(name)) == named_id:
            return name
    return None


def link_text(reason: dict) -> str:
    """One reason of `link_reasons` in words: `e-mail kari@nordlys.no (with ...)`."""
    kind = reason["kind"]
    if kind == "stored link":
        return f"stored link with {reason['with']}"
    if kind == "cross-reference id":
        named = reason["names"]
        text = (f"cross-reference id: {reason['record']} {reason['field']}="
                f"{named.rsplit(':', 1)[1]}" if reason["field"]
                else f"cross-reference id: {reason['record']} names {named}")
        if reason.get("with"):
            text += f" (as does {', '.join(reason['with'])})"
        return text
    return f"{kind} {reason['value']} (with {', '.join(reason['with'])})"
