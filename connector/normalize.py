"""One raw CRM record -> one canonical view, with provenance for every value.

Records arrive as the APIs return them: HubSpot `{"id", "properties": {...}, "associations"}`,
Salesforce `{"attributes": {"type"}, "Id", <fields>}`. A record the mapping cannot read (an
unknown picklist value, a malformed date or number, no id) becomes a `Rejection` with a
reason; it never raises, so one bad record cannot stop a batch.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from connector.mapping import Mapping, Meaning, normalise_domain, normalise_email
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

__all__ = ["View", "normalise", "raw_text", "record_fields", "record_id"]

_HUBSPOT_LINKS = {"salesforcecontactid": "Contact", "salesforceleadid": "Lead"}


class _Reject(Exception):
    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def normalise(mapping: Mapping, system: str, object_type: str, raw: Any) -> View | Rejection:
    """Turn one raw record into a Person, Organization or Deal view, or a Rejection."""
    rid = record_id(system, raw)
    ref = SourceRef(system=System(system), object_type=object_type, record_id=rid or "?")
    if rid is None:
        return Rejection(source=ref, reason="record has no id")
    fields = record_fields(system, raw)
    if fields is None:
        return Rejection(source=ref, reason="record has no readable fields (malformed JSON?)")
    try:
        kind = kind_of(system, object_type)
        if kind == "person":
            return _person(mapping, ref, fields, raw)
        if kind == "organization":
            return _organization(mapping, ref, fields)
        return _deal(mapping, ref, fields, raw)
    except _Reject as exc:
        return Rejection(source=ref, reason=exc.reason, field=exc.field)


def record_id(system: str, raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    if system == "hubspot":
        value = raw.get("id") or (raw.get("properties") or {}).get("hs_object_id")
    else:
        value = raw.get("Id")
    return str(value) if value not in (None, "") else None


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


def _meanings(mapping: Mapping, ref: SourceRef, fields: dict[str, Any], wanted: str):
    """The first listed field whose value says something about `wanted`, as (field, raw, meaning).

    Fields are tried in the mapping's order; empty values and `~` meanings pass to the next.
    """
    for field_map in mapping.picklists.get((ref.system.value, ref.object_type), ()):
        raw = raw_text(fields.get(field_map.field))
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
            yield field_map.field, fields.get(field_map.field), meaning


def _first(mapping, ref, fields, wanted) -> tuple[str, Any, Meaning] | None:
    return next(iter(_meanings(mapping, ref, fields, wanted)), None)


def _sourced(ref: SourceRef, field: str, raw: Any, value: Any, rule: str) -> Sourced:
    return Sourced(value=value, provenance=Provenance(source=ref, field=field, raw=raw, rule=rule))


def _current(mapping: Mapping, ref: SourceRef, fields: dict[str, Any]) -> dict[str, dict]:
    rules = mapping.write_back.get((ref.system.value, ref.object_type), ())
    return {str(ref): {r.field: fields.get(r.field) for r in rules}}


# ---- persons --------------------------------------------------------------------------------


def _person(mapping: Mapping, ref: SourceRef, fields: dict[str, Any], raw: dict) -> Person:
    hit = _first(mapping, ref, fields, "stage")
    stage = _sourced(ref, hit[0], hit[1], hit[2].stage, hit[2].rule) if hit else None
    linked: list[SourceRef] = []
    orgs: list[SourceRef] = []
    converted = False
    if ref.system is System.HUBSPOT:
        email = fields.get("email")
        for field, obj in _HUBSPOT_LINKS.items():
            if fields.get(field):
                linked.append(_sf(obj, fields[field]))
        company_ids = {str(c) for c in _associations(raw, "companies")}
        if fields.get("associatedcompanyid"):
            company_ids.add(raw_text(fields["associatedcompanyid"]))
        orgs.extend(_hs("companies", c) for c in sorted(company_ids))
    else:
        email = fields.get("Email")
        converted = ref.object_type == "Lead" and _truthy(fields.get("IsConverted"))
        if converted and fields.get("ConvertedContactId"):
            linked.append(_sf("Contact", fields["ConvertedContactId"]))
        account = fields.get("AccountId") or (converted and fields.get("ConvertedAccountId"))
        if account:
            orgs.append(_sf("Account", account))
    if email is not None and not isinstance(email, str):
        raise _Reject(f"e-mail is {type(email).__name__}, not text", "email")
    return Person(
        refs=(ref,),
        email=normalise_email(email),
        stage=None if converted else stage,
        stage_candidates=() if converted or stage is None else (stage,),
        organization_refs=tuple(orgs),
        linked_refs=tuple(linked),
        converted_refs=(ref,) if converted else (),
        current=_current(mapping, ref, fields),
    )


def _sf(obj: str, record: Any) -> SourceRef:
    return SourceRef(system=System.SALESFORCE, object_type=obj, record_id=str(record))


def _hs(obj: str, record: Any) -> SourceRef:
    return SourceRef(system=System.HUBSPOT, object_type=obj, record_id=str(record))


def _associations(raw: dict, to: str) -> list[str]:
    assoc = raw.get("associations") or {}
    if not isinstance(assoc, dict):
        return []
    found = assoc.get(to) or []
    if isinstance(found, dict):  # the API's {"results": [{"id": ...}]} shape
        found = [r.get("id") or r.get("toObjectId") for r in found.get("results", [])]
    return [str(x) for x in found if x not in (None, "")]


def _truthy(value: Any) -> bool:
    return value is True or raw_text(value).casefold() == "true"


# ---- organisations --------------------------------------------------------------------------


def _organization(mapping: Mapping, ref: SourceRef, fields: dict[str, Any]) -> Organization:
    system = ref.system.value
    facts: dict[str, Sourced] = {}
    for fact in mapping.facts.values():
        field = fact.fields.get(system)
        if field is None:
            continue
        try:
            value = fact.normalise(fields.get(field))
        except (TypeError, ValueError):
            raise _Reject(
                f"{field} should be a number for fact {fact.name!r}, got {fields.get(field)!r}",
                field,
            ) from None
        if value is not None:
            facts[fact.name] = _sourced(ref, field, fields.get(field), value, fact.rule)
    relationship = _first(mapping, ref, fields, "relationship")
    fit = _first(mapping, ref, fields, "fit")
    linked = []
    if system == "hubspot" and fields.get("salesforceaccountid"):
        linked.append(_sf("Account", fields["salesforceaccountid"]))
    domain_field = "domain" if system == "hubspot" else "Website"
    return Organization(
        refs=(ref,),
        name=fields.get("name" if system == "hubspot" else "Name"),
        domain=normalise_domain(raw_text(fields.get(domain_field))),
        facts=facts,
        relationship=_from_hit(ref, relationship, "relationship"),
        relationship_candidates=tuple(
            [_from_hit(ref, relationship, "relationship")] if relationship else []
        ),
        asserted_fit=_from_hit(ref, fit, "fit"),
        linked_refs=tuple(linked),
        triggers=tuple(_triggers(mapping, ref, fields)),
        current=_current(mapping, ref, fields),
    )


def _from_hit(ref: SourceRef, hit, attribute: str) -> Sourced | None:
    if hit is None:
        return None
    field, raw, meaning = hit
    return _sourced(ref, field, raw, getattr(meaning, attribute), meaning.rule)


def _triggers(mapping: Mapping, ref: SourceRef, fields: dict[str, Any]):
    for rule in mapping.triggers:
        if (rule.system, rule.object) != (ref.system.value, ref.object_type):
            continue
        date_field = rule.field
        if rule.date_field:
            if raw_text(fields.get(rule.field)) not in rule.values:
                continue
            date_field = rule.date_field
        occurred = parse_date(fields.get(date_field), date_field)
        if occurred is None:
            continue
        yield Trigger(
            type=rule.type,
            occurred_at=occurred,
            expires_at=Trigger.window(occurred, rule.active_days),
            polarity=rule.polarity,
            provenance=Provenance(
                source=ref, field=date_field, raw=fields.get(date_field), rule=rule.rule
            ),
        )


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
    except (ValueError, OverflowError):
        raise _Reject(f"{field} is not a date: {value!r}", field) from None


# ---- deals ----------------------------------------------------------------------------------


def _deal(mapping: Mapping, ref: SourceRef, fields: dict[str, Any], raw: dict) -> Deal:
    hit = _first(mapping, ref, fields, "deal")
    if hit is None:
        raise _Reject("no mapped field gives this deal a status (open, won or lost)")
    if ref.system is System.HUBSPOT:
        persons = tuple(_hs("contacts", c) for c in sorted(_associations(raw, "contacts")))
        orgs = tuple(_hs("companies", c) for c in sorted(_associations(raw, "companies")))
    else:
        persons = (_sf("Contact", fields["ContactId"]),) if fields.get("ContactId") else ()
        orgs = (_sf("Account", fields["AccountId"]),) if fields.get("AccountId") else ()
    return Deal(
        ref=ref,
        status=_from_hit(ref, hit, "deal"),
        person_refs=persons,
        organization_refs=orgs,
    )
