"""Every field a mapping makes crmsync read or write, per system and object: what it holds,
the options it needs, and whether an admin has to create it.

A new portal or org lacks the custom fields a mapping names (`crmsync_*` properties, `__c`
fields), and creating them by hand from a YAML file is where picklist values get misspelt.
`fields_needed` derives the list from the compiled mapping and the catalog, so `crmsync
fields` can print it, create the HubSpot properties and write a Salesforce metadata folder
from the same facts that `crmsync check` and a run's pre-flight test against.

Pure: a mapping in, `FieldNeed`s out; no I/O. Where an option list comes from:
- a field crmsync writes: the values its write-back rule can write (the reverse map, or every
  canonical value the source can take, as the pre-flight computes them);
- a picklist crmsync reads: the values the mapping file lists for it (label packs' localised
  values are ways to read a picklist an org already has, not options to create);
- a trigger field that says which values count: those values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from connector.catalog import (
    CATALOG,
    HUBSPOT_DEFAULT_GROUPS,
)
from connector.mapping import Mapping, WriteRule
from connector.preflight import DATE_SOURCES, FLAG_SOURCES, values_written

__all__ = [
    "FieldNeed",
    "Kind",
    "Option",
    "PropertyStep",
    "fields_needed",
    "hubspot_plan",
    "hubspot_property_body",
    "hubspot_scopes",
    "problems_with",
]

# What a field holds, in crmsync's words; each system's own type follows from it.
Kind = Literal["picklist", "checkbox", "date", "datetime", "number", "text", "link"]

FLAG_VALUES = ("true", "false")
# How a boolean's options read in HubSpot (its own bool properties list Yes and No).
FLAG_LABELS = {"true": "Yes", "false": "No"}
# Rank of each kind when usages disagree: what crmsync writes decides, then the most specific.
_KIND_ORDER = ("date", "checkbox", "picklist", "number", "datetime", "text", "link")


@dataclass(frozen=True)
class Option:
    """One picklist value: as stored, as shown, and whether crmsync writes it (then the field
    must have it) or only reads it."""

    value: str
    label: str
    written: bool


@dataclass(frozen=True)
class FieldNeed:
    """One field of one object that crmsync reads or writes."""

    system: str
    object: str
    name: str
    kind: Kind
    read: bool
    written: bool
    custom: bool
    options: tuple[Option, ...] = ()
    rules: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.system} {self.object}.{self.name}"

    @property
    def access(self) -> str:
        return "read, write" if self.read and self.written else "write" if self.written else "read"

    @property
    def label(self) -> str:
        """A label people can read: `crmsync_icp_fit` -> "ICP fit (crmsync)",
        `Buying_Signal_Type__c` -> "Buying Signal Type"."""
        return CATALOG[self.system].admin.field_label(self.name)

    @property
    def type_text(self) -> str:
        """The type to create, in the system's own words."""
        return CATALOG[self.system].admin.type_text(self.kind)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "system": self.system, "object": self.object, "field": self.name,
            "custom": self.custom, "read": self.read, "written": self.written,
            "kind": self.kind, "label": self.label, "type": self.type_text,
            "options": [{"value": o.value, "label": o.label, "written": o.written}
                        for o in self.options],
            "rules": list(self.rules),
        }
        return {**out, **CATALOG[self.system].admin.type_details(self.kind)}


# ---- deriving the list ------------------------------------------------------------------------


@dataclass
class _Usage:
    """What the mapping and the catalog say about one field, gathered before merging."""

    kinds: list[Kind] = field(default_factory=list)
    written_kind: Kind | None = None
    written_options: list[str] = field(default_factory=list)
    read_options: list[str] = field(default_factory=list)
    read: bool = False
    written: bool = False
    rules: list[str] = field(default_factory=list)


def fields_needed(mapping: Mapping) -> list[FieldNeed]:
    """Every field the mapping (and the catalog, for links and modification times) has
    crmsync read or write, in system, object and field order."""
    usages: dict[tuple[str, str, str], _Usage] = {}

    def use(system: str, obj: str, name: str) -> _Usage:
        return usages.setdefault((system, obj, name), _Usage())

    for system in CATALOG:
        _catalog_usages(system, use)
    _picklist_usages(mapping, use)
    _fact_usages(mapping, use)
    _trigger_usages(mapping, use)
    _write_usages(mapping, use)
    order = {system: list(CATALOG[system].objects) for system in CATALOG}
    return [
        _merge(system, obj, name, usage)
        for (system, obj, name), usage in sorted(
            usages.items(), key=lambda item: (
                list(CATALOG).index(item[0][0]), _position(order[item[0][0]], item[0][1]),
                item[0][2].lower()))
    ]


def _position(objects: list[str], obj: str) -> int:
    return objects.index(obj) if obj in objects else len(objects)


def _catalog_usages(system: str, use) -> None:
    catalog = CATALOG[system]
    for obj, spec in catalog.objects.items():
        for name in spec.link_fields:
            usage = use(system, obj, name)
            usage.read = True
            usage.kinds.append("link")
            usage.rules.append(f"catalog: {system} {obj} links and names records by it")
        for name in spec.modified_fields:
            usage = use(system, obj, name)
            usage.read = True
            usage.kinds.append("datetime")
            usage.rules.append(f"catalog: {system} {obj} is read in order of it")


def _picklist_usages(mapping: Mapping, use) -> None:
    for (system, obj), field_maps in mapping.picklists.items():
        for field_map in field_maps:
            usage = use(system, obj, field_map.field)
            usage.read = True
            # only what the mapping file itself lists: label-pack values are how an org
            # already spells its values, not options to add
            listed = [value for value, meaning in field_map.values.items()
                      if meaning.rule.startswith("picklists.")]
            usage.kinds.append("checkbox" if _flag_values(listed) else "picklist")
            _extend(usage.read_options, listed)
            usage.rules.append(field_map.rule)


def _fact_usages(mapping: Mapping, use) -> None:
    for fact in mapping.facts.values():
        for system, name in fact.fields.items():
            obj = CATALOG[system].objects_of("organization")[0]
            usage = use(system, obj, name)
            usage.read = True
            usage.kinds.append("number" if fact.type == "number" else "text")
            usage.rules.append(fact.rule)


def _trigger_usages(mapping: Mapping, use) -> None:
    for trigger in mapping.triggers:
        usage = use(trigger.system, trigger.object, trigger.field)
        usage.read = True
        usage.rules.append(trigger.rule)
        if trigger.values:  # the field says which event happened; the date is elsewhere
            usage.kinds.append("picklist")
            _extend(usage.read_options, sorted(trigger.values))
        else:
            usage.kinds.append("date")
        if trigger.date_field:
            dated = use(trigger.system, trigger.object, trigger.date_field)
            dated.read = True
            dated.kinds.append("date")
            dated.rules.append(trigger.rule)


def _write_usages(mapping: Mapping, use) -> None:
    for (system, obj), rules in mapping.write_back.items():
        for rule in rules:
            usage = use(system, obj, rule.field)
            usage.written = True
            usage.read = True  # current values are read to plan only real differences
            usage.written_kind, options = _written_kind(mapping, rule)
            _extend(usage.written_options, options)
            usage.rules.append(rule.rule)


def _written_kind(mapping: Mapping, rule: WriteRule) -> tuple[Kind, list[str]]:
    """The kind of field a write-back rule needs and the values it writes there."""
    if rule.source in DATE_SOURCES:
        return "date", []
    written = [_text(v) for v in values_written(mapping, rule) or []]
    if rule.source in FLAG_SOURCES and _flag_values(written):
        return "checkbox", []
    if values_written(mapping, rule) is None:
        return "text", []
    return "picklist", written


def _merge(system: str, obj: str, name: str, usage: _Usage) -> FieldNeed:
    kind = usage.written_kind or min(usage.kinds, key=_KIND_ORDER.index)
    admin = CATALOG[system].admin
    custom = admin.is_custom(obj, name)
    options: list[Option] = []
    if kind == "picklist":
        values = list(usage.written_options)
        _extend(values, usage.read_options)
        written = set(usage.written_options)
        options = [Option(v, v, v in written) for v in values]
    elif kind == "checkbox" and admin.flag_has_options:
        options = [Option(v, FLAG_LABELS[v], usage.written) for v in FLAG_VALUES]
    return FieldNeed(system, obj, name, kind, usage.read, usage.written, custom,
                     tuple(options), tuple(dict.fromkeys(usage.rules)))


def _flag_values(values: Iterable[str]) -> bool:
    found = set(values)
    return bool(found) and found <= set(FLAG_VALUES)


def _extend(values: list[str], more: Iterable[str]) -> None:
    for value in more:
        if value not in values:
            values.append(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(getattr(value, "value", value))


# ---- what a system must grant --------------------------------------------------------------


def hubspot_scopes(mapping: Mapping) -> tuple[list[str], list[str]]:
    """(the private-app scopes crmsync's calls need with this mapping, the extra ones only
    `crmsync fields --create hubspot` needs), in object order.

    A run reads every object the catalog lists (list, search, batch read, and for deals the
    v4 associations to contacts and companies): `crm.objects.{object}.read`. It writes the
    objects the mapping writes back to: `.write`. `check` describes every object it reads or
    writes and the pre-flight those it writes (GET /crm/v3/properties/{object}):
    `crm.schemas.{object}.read`. Creating a property (POST /crm/v3/properties/{object}) needs
    `crm.schemas.{object}.write`, for the objects that have custom properties.
    """
    objects = list(CATALOG["hubspot"].objects)
    written = set(mapping.fields_written("hubspot"))
    described = set(mapping.fields_read("hubspot")) | written
    custom = {need.object for need in fields_needed(mapping)
              if need.system == "hubspot" and need.custom}
    needed = []
    for obj in objects:
        needed.append(f"crm.objects.{obj}.read")
        if obj in written:
            needed.append(f"crm.objects.{obj}.write")
    needed += [f"crm.schemas.{obj}.read" for obj in objects if obj in described]
    creation = [f"crm.schemas.{obj}.write" for obj in objects if obj in custom]
    return needed, creation


# ---- comparing with what a system has --------------------------------------------------------


def problems_with(need: FieldNeed, info: Any) -> list[str]:
    """Why an existing field (a `FieldInfo`: type, options) cannot serve as `need`; empty
    when it can. The same rules as the pre-flight's (connector/preflight.py): a date must be a
    date, a flag a checkbox, words any type that holds text, and every value crmsync writes
    must be an option when the field lists options."""
    system, held = need.system, info.type
    admin = CATALOG[system].admin
    noun = admin.noun
    wanted = need.type_text
    if need.kind == "date" and held not in admin.date_types:
        return [f"is a {held} {noun}; crmsync needs {wanted} (calendar dates)"]
    if need.kind == "checkbox" and held not in admin.flag_types:
        return [f"is a {held} {noun}; crmsync needs {wanted} (true/false)"]
    if need.kind == "number" and held not in admin.number_types:
        return [f"is a {held} {noun}; crmsync needs {wanted} (a number)"]
    if need.kind == "picklist" and held in admin.not_text_types:
        return [f"is a {held} {noun}; crmsync needs {wanted} (words)"]
    if need.kind in ("picklist", "checkbox") and info.options:
        required = ([o.value for o in need.options if o.written] if need.kind == "picklist"
                    else list(FLAG_VALUES) if need.written else [])
        missing = [v for v in required if v not in info.options]
        if missing:
            return [f"lacks the option(s) {', '.join(repr(v) for v in missing)} that crmsync "
                    f"writes (it has: {', '.join(info.options)})"]
    return []


def hubspot_property_body(need: FieldNeed) -> dict[str, Any]:
    """The body of POST /crm/v3/properties/{object} that creates `need` (name, label, type,
    fieldType and groupName are required; options for enumeration and bool). The object's
    default information group exists in every portal, so no group has to be created first.
    https://developers.hubspot.com/docs/api/crm/properties ("Create a property")."""
    type_, field_type = CATALOG["hubspot"].admin.property_types[need.kind]
    body: dict[str, Any] = {
        "name": need.name,
        "label": need.label,
        "type": type_,
        "fieldType": field_type,
        "groupName": HUBSPOT_DEFAULT_GROUPS[need.object],
        "description": ("Written and read" if need.written else "Read") + " by crmsync: "
        + "; ".join(rule for rule in need.rules if not rule.startswith("catalog:")),
    }
    if need.options:
        body["options"] = [
            {"label": option.label, "value": option.value, "displayOrder": position,
             "hidden": False}
            for position, option in enumerate(need.options)
        ]
    return body


# ---- what creating HubSpot properties would do -------------------------------------------------


Step = Literal["create", "ok", "wrong", "missing-standard"]


@dataclass(frozen=True)
class PropertyStep:
    """What `crmsync fields --create hubspot` does about one property: create it, leave it
    (there and fit), report it (there but the wrong type or options: never changed), or
    report a standard property the portal lacks (crmsync does not create those)."""

    need: FieldNeed
    step: Step
    detail: str = ""


def hubspot_plan(needs: Iterable[FieldNeed], described: dict[str, dict[str, Any]]
                 ) -> list[PropertyStep]:
    """The step for every custom HubSpot property, and for every standard one the portal
    lacks, given each object's described properties (name -> FieldInfo)."""
    steps = []
    for need in needs:
        if need.system != "hubspot":
            continue
        info = described.get(need.object, {}).get(need.name)
        if info is None:
            steps.append(PropertyStep(need, "create" if need.custom else "missing-standard"))
        elif need.custom:
            problems = problems_with(need, info)
            steps.append(PropertyStep(need, "wrong", "; ".join(problems)) if problems
                         else PropertyStep(need, "ok"))
    return steps
