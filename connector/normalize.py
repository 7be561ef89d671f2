"""One raw CRM record -> one canonical view, with provenance for every value.

Records arrive as the APIs return them: HubSpot `{"id", "properties": {...}, "associations"}`,
Salesforce `{"attributes": {"type"}, "Id", <fields>}`. A record the mapping cannot read (an
unknown picklist value, a malformed date or number, no id) becomes a `Rejection` with a
reason; it never raises, so one bad record cannot stop a batch. Every field is read through
`catalog.read_value`, which rejects what no CRM field holds (a list, an object, nan, a 5,000-digit
number), so the rest of the core only ever sees text, numbers, flags and None.
"""

from __future__ import annotations

import difflib
from datetime import UTC, date, datetime
from typing import Any

from connector.catalog import (
    CATALOG,
    Named,
    SystemCatalog,
    Unreadable,
    raw_text,
    read_value,
)
from connector.identity import normalise_email
from connector.mapping import FieldMap, Mapping, Meaning
from connector.model import (
    Deal,
    Organization,
    Person,
    Provenance,
    Rejection,
    Sourced,
    SourceRef,
    Trigger,
)

View = Person | Organization | Deal

__all__ = ["View", "normalise", "parse_date"]


def normalise(mapping: Mapping, system: str, object_type: str, raw: Any) -> View | Rejection:
    """Turn one raw record into a Person, Organization or Deal view, or a Rejection."""
    catalog = CATALOG[system]
    rid = catalog.record_id(raw)
    ref = SourceRef(catalog.system, object_type, rid or "?")
    if rid is None:
        return Rejection(ref, "record has no id")
    fields = catalog.record_fields(raw)
    if fields is None:
        return Rejection(ref, "record has no readable fields (malformed JSON?)")
    try:
        kind = catalog.kind_of(object_type)
        if kind == "person":
            return _person(mapping, ref, catalog, fields, raw)
        if kind == "organization":
            return _organization(mapping, ref, system, catalog, fields)
        return _deal(mapping, ref, catalog, fields, raw)
    except Unreadable as exc:
        return Rejection(ref, exc.reason, exc.field)


# ---- picklists ------------------------------------------------------------------------------


def _first(
    mapping: Mapping, ref: SourceRef, fields: dict[str, Any], wanted: str
) -> tuple[str, Any, Meaning] | None:
    """The first listed field whose value says something about `wanted`, as (field, raw, meaning).

    Fields are tried in the mapping's order; empty values and `~` meanings pass to the next.
    """
    for field_map in mapping.picklists.get((ref.system, ref.object_type), ()):
        value = fields.get(field_map.field)
        if type(value) is str:
            raw = value.strip()  # raw_text, inlined for the common case
        else:
            value = read_value(fields, field_map.field)
            raw = raw_text(value)
        if raw == "":
            continue
        meaning = field_map.values.get(raw)
        if meaning is None:
            if field_map.unknown == "next":
                continue
            raise Unreadable(_unknown_value(ref, field_map, raw), field_map.field)
        if getattr(meaning, wanted) is not None:
            return field_map.field, value, meaning
    return None


def _unknown_value(ref: SourceRef, field_map: FieldMap, raw: str) -> str:
    """The reason for a value the mapping does not list, as "CAUSE -> FIX": the cause names
    no record, so every record holding the value shares it (`crmsync rejects` groups them),
    and the fix is the mapping line to add it at."""
    close = difflib.get_close_matches(raw, list(field_map.values), n=1, cutoff=0.8)
    typo = f", or correct the value in the CRM if it means {close[0]!r}" if close else ""
    return (f"unknown {ref.object_type}.{field_map.field} {raw!r} -> add it under "
            f"{field_map.rule}{typo}")


def _from_hit(ref: SourceRef, hit: tuple[str, Any, Meaning] | None, wanted: str) -> Sourced | None:
    """The `wanted` meaning of a picklist hit, with where it came from."""
    if hit is None:
        return None
    field, raw, meaning = hit
    return Sourced(getattr(meaning, wanted), Provenance(meaning.rule, ref, field, raw))


def _current(mapping: Mapping, ref: SourceRef, fields: dict[str, Any]) -> dict[str, dict]:
    rules = mapping.write_back.get((ref.system, ref.object_type), ())
    return {ref.key: {r.field: read_value(fields, r.field) for r in rules}}


def _refs(named: list[Named]) -> tuple[SourceRef, ...]:
    return tuple([SourceRef(system, obj, str(rid)) for system, obj, rid in named])


# ---- persons --------------------------------------------------------------------------------


def _person(mapping: Mapping, ref: SourceRef, catalog: SystemCatalog, fields: dict[str, Any],
            raw: dict) -> Person:
    stage = _from_hit(ref, _first(mapping, ref, fields, "stage"), "stage")
    email, linked, orgs, converted = catalog.person_links(ref.object_type, fields, raw)
    if email is not None and not isinstance(email, str):
        raise Unreadable(f"e-mail is {type(email).__name__}, not text", "email")
    if converted:
        stage = None
    return Person(
        refs=(ref,),
        email=normalise_email(email),
        stage=stage,
        stage_candidates=(stage,) if stage else (),
        organization_refs=_refs(orgs) if orgs else (),
        linked_refs=_refs(linked) if linked else (),
        converted_refs=(ref,) if converted else (),
        current=_current(mapping, ref, fields),
    )


# ---- organisations --------------------------------------------------------------------------


def _organization(mapping: Mapping, ref: SourceRef, system: str, catalog: SystemCatalog,
                  fields: dict[str, Any]) -> Organization:
    facts: dict[str, Sourced] = {}
    for fact in mapping.facts.values():
        field = fact.fields.get(system)
        if field is None:
            continue
        raw = read_value(fields, field)
        try:
            value = fact.normalise(raw)
        except (TypeError, ValueError, OverflowError):
            raise Unreadable(
                f"{field} should be a number for fact {fact.name!r}, got {raw!r}", field
            ) from None
        if value is not None:
            facts[fact.name] = Sourced(value, Provenance(fact.rule, ref, field, raw))
    relationship = _from_hit(ref, _first(mapping, ref, fields, "relationship"), "relationship")
    asserted_fit = _from_hit(ref, _first(mapping, ref, fields, "fit"), "fit")
    linked, domain = catalog.organization_links(fields)
    return Organization(
        refs=(ref,),
        name=read_value(fields, catalog.organization_name_field),
        domain=domain,
        facts=facts,
        relationship=relationship,
        relationship_candidates=(relationship,) if relationship else (),
        asserted_fit=asserted_fit,
        linked_refs=_refs(linked) if linked else (),
        triggers=_triggers(mapping, ref, system, fields),
        current=_current(mapping, ref, fields),
    )


def _triggers(mapping: Mapping, ref: SourceRef, system: str,
              fields: dict[str, Any]) -> tuple[Trigger, ...]:
    found = []
    for rule in mapping.triggers:
        if rule.system != system or rule.object != ref.object_type:
            continue
        date_field = rule.field
        if rule.date_field:
            if raw_text(read_value(fields, rule.field)) not in rule.values:
                continue
            date_field = rule.date_field
        raw = read_value(fields, date_field)
        occurred = parse_date(raw, date_field)
        if occurred is None:
            continue
        try:
            expires = Trigger.window(occurred, rule.active_days)
        except OverflowError:  # 9999-12-31 + 180 days: no date can hold it
            raise Unreadable(f"{date_field} is {raw!r}: too late for a {rule.type} trigger to "
                          f"expire {rule.active_days} days later", date_field) from None
        found.append(Trigger(rule.type, occurred, expires, rule.polarity,
                             Provenance(rule.rule, ref, date_field, raw)))
    return tuple(found)


def parse_date(value: Any, field: str) -> date | None:
    """Dates as CRMs send them: `2026-01-31`, ISO datetimes, or epoch milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC).date()
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except (ValueError, OverflowError, OSError):  # OSError: an epoch the C library refuses
        raise Unreadable(f"{field} is not a date: {_short(value)}", field) from None


def _short(value: Any) -> str:
    """A value for a reason text: long ones cut, so a reason stays one readable line."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


# ---- deals ----------------------------------------------------------------------------------


def _deal(mapping: Mapping, ref: SourceRef, catalog: SystemCatalog, fields: dict[str, Any],
          raw: dict) -> Deal:
    status = _from_hit(ref, _first(mapping, ref, fields, "deal"), "deal")
    if status is None:
        raise Unreadable("no mapped field gives this deal a status (open, won or lost)")
    persons, orgs = catalog.deal_links(fields, raw)
    return Deal(
        ref=ref,
        status=status,
        person_refs=_refs(persons) if persons else (),
        organization_refs=_refs(orgs) if orgs else (),
    )
