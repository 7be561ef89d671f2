"""`crmsync mappings explain`: show what the mapping makes of given records, and why.

Admins edit mapping YAML, then feed it a real record from each CRM; every canonical value is
printed with the rule (file:line) that produced it, and the plan shows what would be written.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from connector.catalog import CATALOG
from connector.core import plan_records
from connector.exceptions import ConfigurationError
from connector.mapping import Mapping
from connector.model import Organization, Person, Sourced
from connector.reconcile import active_positive_trigger

__all__ = ["explain", "guess_object_type", "read_records", "render_text"]


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
        "persons": [_person(p) for p in result.reconciled.persons],
        "organizations": [_organization(o, today) for o in result.reconciled.organizations],
        "plan": [c.model_dump(mode="json") for c in result.changes],
    }


def _value(sourced: Sourced | None) -> dict[str, Any] | None:
    if sourced is None:
        return None
    value = sourced.value.value if hasattr(sourced.value, "value") else sourced.value
    return {"value": value, "why": sourced.provenance.describe()}


def _person(person: Person) -> dict[str, Any]:
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


def _organization(org: Organization, today: date) -> dict[str, Any]:
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
