"""One raw CRM record -> one canonical view, with provenance for every value.

Records arrive as the APIs return them: HubSpot `{"id", "properties": {...}, "associations"}`,
Salesforce `{"attributes": {"type"}, "Id", <fields>}`. A record the mapping cannot read (an
unknown picklist value, a malformed date or number, no id) becomes a `Rejection` with a
reason; it never raises, so one bad record cannot stop a batch. Every field is read through
`_value`, which rejects what no CRM field holds (a list, an object, nan, a 5,000-digit
number), so the rest of the core only ever sees text, numbers, flags and None.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

from connector.mapping import Mapping, Meaning, email_key, normalise_domain, normalise_email
from connector.mapping._check import kind_of
from connector.model import (
    Deal,
    Organization,
    Person,
    Provenance,
    Rejection,
    Sourced,
    SourceRef,
    System,
    Trigger,
)

View = Person | Organization | Deal

__all__ = ["View", "identity_keys", "normalise", "raw_text", "record_fields", "record_id"]

_HUBSPOT_LINKS = {"salesforcecontactid": "Contact", "salesforceleadid": "Lead"}
_SYSTEMS = {system.value: system for system in System}  # a dict lookup: System() is slow


# Beyond any CRM number field (Salesforce numbers have at most 18 digits); Python cannot even
# turn an int of more than 4,300 digits into text.
_MAX_INT = 2**63


class _Reject(Exception):
    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def normalise(mapping: Mapping, system: str, object_type: str, raw: Any) -> View | Rejection:
    """Turn one raw record into a Person, Organization or Deal view, or a Rejection."""
    rid = record_id(system, raw)
    ref = SourceRef(_SYSTEMS.get(system) or System(system), object_type, rid or "?")
    if rid is None:
        return Rejection(ref, "record has no id")
    fields = record_fields(system, raw)
    if fields is None:
        return Rejection(ref, "record has no readable fields (malformed JSON?)")
    try:
        kind = kind_of(system, object_type)
        if kind == "person":
            return _person(mapping, ref, system, fields, raw)
        if kind == "organization":
            return _organization(mapping, ref, system, fields)
        return _deal(mapping, ref, system, fields, raw)
    except _Reject as exc:
        return Rejection(ref, exc.reason, exc.field)


def identity_keys(system: str, object_type: str, raw: Any) -> list[str]:
    """Text keys that tie this record to others when reconciling, its own ref's text first.

    The keys are those `reconcile` groups by: the record's ref, the records it names (ids it
    holds, a converted lead's contact, a person's organisation, a deal's people and
    organisation) and its natural key (`email_key` or `normalise_domain`, prefixed `email:`
    or `domain:`; none for a placeholder, free-mail or role value, so planning never joins
    records through one). Cheap next to `normalise` (no models), so a run can work out which
    records belong together before normalising any of them. Shares its code with `normalise`,
    so both always agree; a record `normalise` would reject may still give keys (harmless:
    keys only decide what is planned together). No id, no keys.
    """
    rid = record_id(system, raw)
    fields = record_fields(system, raw) if rid is not None else None
    if rid is None:
        return []
    keys = [f"{system}:{object_type}:{rid}"]
    if fields is None:
        return keys
    try:
        return keys + _named_keys(system, object_type, fields, raw)
    except _Reject:  # normalise rejects it; its own ref is key enough
        return keys


def _named_keys(system: str, object_type: str, fields: dict[str, Any], raw: dict) -> list[str]:
    keys = []
    kind = kind_of(system, object_type)
    if kind == "person":
        email, linked, orgs, _ = _person_links(system, object_type, fields, raw)
        natural = email_key(email) if isinstance(email, str) else None
        named = linked + orgs
        prefix = "email:"
    elif kind == "organization":
        named, natural = _organization_links(system, fields)
        prefix = "domain:"
    else:
        persons, orgs = _deal_links(system, fields, raw)
        named, natural, prefix = persons + orgs, None, ""
    keys.extend(f"{named_system.value}:{obj}:{named_id}" for named_system, obj, named_id in named)
    if natural:
        keys.append(prefix + natural)
    return keys


def record_id(system: str, raw: Any) -> str | None:
    """The record's id as text; None when it has none, or none that is text or a whole
    number (a list, an object, a 5,000-digit number are no id)."""
    if not isinstance(raw, dict):
        return None
    if system == "hubspot":
        value = raw.get("id")
        props = raw.get("properties")
        if value in (None, "") and isinstance(props, dict):
            value = props.get("hs_object_id")
    else:
        value = raw.get("Id")
    return _id_text(value)


def _id_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if type(value) is int and -_MAX_INT <= value <= _MAX_INT:
        return str(value)
    return None


def _value(fields: dict[str, Any], name: str) -> Any:
    """`fields[name]` if it is one plain value: text, a flag, a finite number, or nothing.
    Anything else rejects the record: no CRM field holds it, and reading it could fail."""
    value = fields.get(name)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if -_MAX_INT <= value <= _MAX_INT:
            return value
        raise _Reject(f"{name} is a number too large to be real ({value.bit_length()} bits)",
                      name)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise _Reject(f"{name} is {value!r}, not a number", name)
    raise _Reject(f"{name} is {_kind(value)}, not a single value", name)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def record_fields(system: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    if system == "hubspot":
        props = raw.get("properties")
        return props if isinstance(props, dict) else None
    return raw


def raw_text(value: Any) -> str:
    """The text a picklist lookup uses: True -> "true", 5.0 -> "5", None -> ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


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
            value = _value(fields, field_map.field)
            raw = raw_text(value)
        if raw == "":
            continue
        meaning = field_map.values.get(raw)
        if meaning is None:
            if field_map.unknown == "next":
                continue
            listed = ", ".join(repr(v) for v in list(field_map.values)[:12])
            more = " ..." if len(field_map.values) > 12 else ""
            raise _Reject(
                f"unknown {field_map.field} value {raw!r}: not in {field_map.rule} "
                f"(lists {listed}{more}); add it to the mapping",
                field_map.field,
            )
        if getattr(meaning, wanted) is not None:
            return field_map.field, value, meaning
    return None


def _from_hit(ref: SourceRef, hit: tuple[str, Any, Meaning] | None, wanted: str) -> Sourced | None:
    """The `wanted` meaning of a picklist hit, with where it came from."""
    if hit is None:
        return None
    field, raw, meaning = hit
    return Sourced(getattr(meaning, wanted), Provenance(meaning.rule, ref, field, raw))


def _current(mapping: Mapping, ref: SourceRef, fields: dict[str, Any]) -> dict[str, dict]:
    rules = mapping.write_back.get((ref.system, ref.object_type), ())
    return {ref.key: {r.field: _value(fields, r.field) for r in rules}}


def _refs(named: list[_Named]) -> tuple[SourceRef, ...]:
    return tuple([SourceRef(system, obj, str(rid)) for system, obj, rid in named])


# ---- persons --------------------------------------------------------------------------------


def _person(mapping: Mapping, ref: SourceRef, system: str, fields: dict[str, Any],
            raw: dict) -> Person:
    stage = _from_hit(ref, _first(mapping, ref, fields, "stage"), "stage")
    email, linked, orgs, converted = _person_links(system, ref.object_type, fields, raw)
    if email is not None and not isinstance(email, str):
        raise _Reject(f"e-mail is {type(email).__name__}, not text", "email")
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


def _person_links(system: str, object_type: str, fields: dict[str, Any], raw: dict):
    """(raw e-mail, records named as the same person, its organisations, converted lead?);
    records as (system, object, id)."""
    linked: list[_Named] = []
    orgs: list[_Named] = []
    converted = False
    if system == "hubspot":
        email = fields.get("email")
        for field, obj in _HUBSPOT_LINKS.items():
            if named := _value(fields, field):
                linked.append((System.SALESFORCE, obj, named))
        company_ids = set(_associations(raw, "companies"))
        if company := _value(fields, "associatedcompanyid"):
            company_ids.add(raw_text(company))
        orgs.extend((System.HUBSPOT, "companies", c) for c in sorted(company_ids))
    else:
        email = fields.get("Email")
        converted = object_type == "Lead" and _truthy(_value(fields, "IsConverted"))
        if converted and (contact := _value(fields, "ConvertedContactId")):
            linked.append((System.SALESFORCE, "Contact", contact))
        account = _value(fields, "AccountId") or (
            converted and _value(fields, "ConvertedAccountId"))
        if account:
            orgs.append((System.SALESFORCE, "Account", account))
    return email, linked, orgs, converted


_Named = tuple[System, str, Any]  # a record another one names: (system, object, id)


def _associations(raw: dict, to: str) -> list[str]:
    """Ids of the `to` records associated with this one: a list of ids, or the API's
    `{"results": [{"id": ...}]}` shape. Any other shape rejects the record."""
    assoc = raw.get("associations") or {}
    if not isinstance(assoc, dict):
        raise _Reject(f"associations is {_kind(assoc)}, not an object", "associations")
    found = assoc.get(to) or []
    if isinstance(found, dict):
        found = found.get("results") or []
    if not isinstance(found, list):
        raise _Reject(f"associations.{to} is {_kind(found)}, not a list", "associations")
    ids = []
    for entry in found:
        named = entry.get("id") or entry.get("toObjectId") if isinstance(entry, dict) else entry
        if named in (None, ""):
            continue
        text = _id_text(named)
        if text is None:
            raise _Reject(f"associations.{to} holds {_kind(named)}, not an id", "associations")
        ids.append(text)
    return ids


def _truthy(value: Any) -> bool:
    return value is True or raw_text(value).casefold() == "true"


# ---- organisations --------------------------------------------------------------------------


def _organization(mapping: Mapping, ref: SourceRef, system: str,
                  fields: dict[str, Any]) -> Organization:
    facts: dict[str, Sourced] = {}
    for fact in mapping.facts.values():
        field = fact.fields.get(system)
        if field is None:
            continue
        raw = _value(fields, field)
        try:
            value = fact.normalise(raw)
        except (TypeError, ValueError, OverflowError):
            raise _Reject(
                f"{field} should be a number for fact {fact.name!r}, got {raw!r}", field
            ) from None
        if value is not None:
            facts[fact.name] = Sourced(value, Provenance(fact.rule, ref, field, raw))
    relationship = _from_hit(ref, _first(mapping, ref, fields, "relationship"), "relationship")
    asserted_fit = _from_hit(ref, _first(mapping, ref, fields, "fit"), "fit")
    linked, domain = _organization_links(system, fields)
    return Organization(
        refs=(ref,),
        name=_value(fields, "name" if system == "hubspot" else "Name"),
        domain=domain,
        facts=facts,
        relationship=relationship,
        relationship_candidates=(relationship,) if relationship else (),
        asserted_fit=asserted_fit,
        linked_refs=_refs(linked) if linked else (),
        triggers=_triggers(mapping, ref, system, fields),
        current=_current(mapping, ref, fields),
    )


def _organization_links(system: str, fields: dict[str, Any]) -> tuple[list[_Named], str | None]:
    """(records named as the same organisation, normalised domain)."""
    linked: list[_Named] = []
    if system == "hubspot" and (account := _value(fields, "salesforceaccountid")):
        linked.append((System.SALESFORCE, "Account", account))
    domain_field = "domain" if system == "hubspot" else "Website"
    return linked, normalise_domain(raw_text(_value(fields, domain_field)))


def _triggers(mapping: Mapping, ref: SourceRef, system: str,
              fields: dict[str, Any]) -> tuple[Trigger, ...]:
    found = []
    for rule in mapping.triggers:
        if rule.system != system or rule.object != ref.object_type:
            continue
        date_field = rule.field
        if rule.date_field:
            if raw_text(_value(fields, rule.field)) not in rule.values:
                continue
            date_field = rule.date_field
        raw = _value(fields, date_field)
        occurred = parse_date(raw, date_field)
        if occurred is None:
            continue
        try:
            expires = Trigger.window(occurred, rule.active_days)
        except OverflowError:  # 9999-12-31 + 180 days: no date can hold it
            raise _Reject(f"{date_field} is {raw!r}: too late for a {rule.type} trigger to "
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
        raise _Reject(f"{field} is not a date: {_short(value)}", field) from None


def _short(value: Any) -> str:
    """A value for a reason text: long ones cut, so a reason stays one readable line."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


# ---- deals ----------------------------------------------------------------------------------


def _deal(mapping: Mapping, ref: SourceRef, system: str, fields: dict[str, Any],
          raw: dict) -> Deal:
    status = _from_hit(ref, _first(mapping, ref, fields, "deal"), "deal")
    if status is None:
        raise _Reject("no mapped field gives this deal a status (open, won or lost)")
    persons, orgs = _deal_links(system, fields, raw)
    return Deal(
        ref=ref,
        status=status,
        person_refs=_refs(persons) if persons else (),
        organization_refs=_refs(orgs) if orgs else (),
    )


def _deal_links(system: str, fields: dict[str, Any], raw: dict):
    """(the deal's people, its organisations)."""
    if system == "hubspot":
        persons = [(System.HUBSPOT, "contacts", c) for c in sorted(_associations(raw, "contacts"))]
        orgs = [(System.HUBSPOT, "companies", c) for c in sorted(_associations(raw, "companies"))]
        return persons, orgs
    contact, account = _value(fields, "ContactId"), _value(fields, "AccountId")
    persons = [(System.SALESFORCE, "Contact", contact)] if contact else []
    orgs = [(System.SALESFORCE, "Account", account)] if account else []
    return persons, orgs
