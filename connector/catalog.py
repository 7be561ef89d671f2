"""Each CRM's record shape, in one place: its objects and how to read one of its records.

A `SystemCatalog` per system (`CATALOG["hubspot"]`, `CATALOG["salesforce"]`) holds what is
fixed by the CRM rather than chosen by the admin: the objects crmsync reads and what each
holds (`ObjectSpec`), the fields the core always reads to link and key records, the fields
that hold a record's modification time, the fields a CRM only moves forward, and how a raw
record (as the API returns it) gives its id, its fields, the records it names and its natural
key. The mapping adds what the admin chose; the adapters request at least what is named here;
`normalise` and the state DB's identity index read records only through it. Each entry also
says how an admin fixes a field crmsync writes (`FieldAdmin`: the CRM's field types and
menus), which pre-flight and `crmsync check` print. A third CRM is one more entry here plus
one adapter.

Free of the SDKs and of the mapping (which imports this module), so the pure core, the state
DB and the adapters can all share it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import orjson

from connector.identity import email_key, normalise_domain
from connector.model import System

__all__ = [
    "CATALOG",
    "CATALOG_VERSION",
    "FORWARD_ONLY_FIELDS",
    "HUBSPOT_DEFAULT_GROUPS",
    "HUBSPOT_DEFAULT_PROPERTIES",
    "HUBSPOT_FIELD_CREATION_SCOPES",
    "HUBSPOT_SCOPES",
    "LINK_FIELDS",
    "MODIFIED_TIME_FIELDS",
    "SALESFORCE_COMPOUND_FIELDS",
    "SALESFORCE_NO_FIELD_PERMISSION",
    "FieldAdmin",
    "Kind",
    "Named",
    "ObjectSpec",
    "PersonLinks",
    "SystemCatalog",
    "Ties",
    "Unreadable",
    "catalog_version",
    "id_text",
    "identity_keys",
    "kind_of",
    "raw_text",
    "read_value",
    "record_fields",
    "record_id",
    "value_kind",
]

Kind = Literal["person", "organization", "deal"]
Named = tuple[System, str, Any]  # a record another one names: (system, object, id)

# Bump when the code that reads records (links, keys) changes in a way the data below does
# not show: the mapping fingerprint includes `CATALOG_VERSION`, so the next run replans all.
_READER_REVISION = 1

# Beyond any CRM number field (Salesforce numbers have at most 18 digits); Python cannot even
# turn an int of more than 4,300 digits into text.
_MAX_INT = 2**63


class Unreadable(Exception):
    """A value no CRM field holds (a list, nan, a 5,000-digit number): `normalise` turns it
    into a `Rejection` naming the field, so one bad record cannot stop a batch."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a CRM: what it holds and what is always read of it.

    `modified_fields` hold the record's modification time, the one reads order and filter by
    first; `link_fields` are what the core reads to link and key records (and to name them),
    whatever the mapping says; `write_batch` is how many records one write request carries.
    """

    kind: Kind
    modified_fields: tuple[str, ...]
    link_fields: tuple[str, ...]
    write_batch: int

    @property
    def cursor_field(self) -> str:
        return self.modified_fields[0]


class PersonLinks(NamedTuple):
    """What a person record says about who it is: its raw e-mail, the records named as the
    same person, its organisations, and whether it is a converted lead."""

    email: Any
    linked: list[Named]
    organizations: list[Named]
    converted: bool


class Ties(NamedTuple):
    """What ties a record to others: the records it names and its natural key (`email:...`,
    `domain:...`), None when it has none or none that may join records."""

    named: list[Named]
    natural_key: str | None


# ---- what an admin does about a field crmsync writes (pre-flight) ---------------------------


class FieldAdmin:
    """How one CRM names and types the fields crmsync writes, and where in its settings an
    admin creates a field, makes it writable, retypes it or adds an option.

    Pre-flight and `crmsync check` print these (connector/preflight.py) when a field cannot
    take what the mapping writes; the words name the CRM's own menus, so they live with the
    CRM. Types: HubSpot's "Property type and fieldType values",
    https://developers.hubspot.com/docs/api/crm/properties ; Salesforce's "Field Types" in
    the SOAP API Developer Guide (describeSObjects `type`).
    """

    noun: ClassVar[str]  # what the CRM calls a field
    date_types: ClassVar[frozenset[str]]  # types a calendar date can be written to
    flag_types: ClassVar[frozenset[str]]  # types true/false can be written to
    not_text_types: ClassVar[frozenset[str]]  # types a word cannot be written to
    number_types: ClassVar[frozenset[str]]  # types a number can be written to
    # Types that take only true and false, whatever options they list (a checkbox)
    true_false_types: ClassVar[frozenset[str]] = frozenset()
    # The field to point a rule at, by what the rule writes: "date", "flag" or "text"
    wanted: ClassVar[dict[str, str]]

    def holds(self, writes: str, field_type: str) -> bool:
        """Whether a field of `field_type` can hold what a rule that `writes` writes."""
        if writes == "date":
            return field_type in self.date_types
        if writes == "flag":
            return field_type in self.flag_types
        return field_type not in self.not_text_types

    def create_fix(self, object_type: str, name: str) -> str:
        """How to create a field the mapping names."""
        raise NotImplementedError

    def writable_fix(self, object_type: str, name: str) -> str:
        """How to let crmsync write a field it can only read."""
        raise NotImplementedError

    def add_options(self, object_type: str, field: str, named: str) -> str:
        """Where to add missing options (`named`: "it" or "them") to a field."""
        raise NotImplementedError

    def fields_page(self, object_type: str) -> str:
        """Where an object's fields are created."""
        raise NotImplementedError

    # ---- creating the fields a mapping needs (`crmsync fields`, connector/fields.py) ----
    # The type each kind of field is created as (kinds: connector.fields.Kind)
    create_types: ClassVar[dict[str, str]]
    # Whether a true/false field lists its two values as options (then they are created)
    flag_has_options: ClassVar[bool] = False

    def is_custom(self, object_type: str, name: str) -> bool:
        """Whether an admin creates the field (not one every account has)."""
        raise NotImplementedError

    def field_label(self, name: str) -> str:
        """A label people can read for a field crmsync creates."""
        raise NotImplementedError

    def type_text(self, kind: str) -> str:
        """The type to create a field of `kind` as, in the CRM's own words."""
        return self.create_types[kind]

    def type_details(self, kind: str) -> dict[str, str]:
        """The type to create, as `crmsync fields --json` gives it."""
        raise NotImplementedError


class HubSpotFieldAdmin(FieldAdmin):
    noun = "property"
    date_types = frozenset({"date"})
    flag_types = frozenset({"bool", "enumeration"})
    not_text_types = frozenset({"number", "date", "datetime"})
    number_types = frozenset({"number"})
    wanted: ClassVar[dict[str, str]] = {
        "date": "a Date picker property (type date, not datetime)",
        "flag": "a Single checkbox property (type bool)",
        "text": "a text or dropdown property",
    }

    def create_fix(self, object_type: str, name: str) -> str:
        return (
            f"create the property in HubSpot: Settings > Data Management > Properties > "
            f"{object_type} > Create property, internal name '{name}' "
            f"(or POST /crm/v3/properties/{object_type} with name, label, type, fieldType, "
            "groupName)"
        )

    def writable_fix(self, object_type: str, name: str) -> str:
        return f"'{name}' on {object_type} is read-only or calculated; map a writable property"

    def add_options(self, object_type: str, field: str, named: str) -> str:
        return (f"add {named} in HubSpot (Settings > Data Management > Properties > "
                f"{object_type} > {field} > Field type options)")

    def fields_page(self, object_type: str) -> str:
        return f"HubSpot (Settings > Data Management > Properties > {object_type})"

    # (type, fieldType) per kind. Valid pairs: "Property type and fieldType values",
    # https://developers.hubspot.com/docs/api/crm/properties (bool: booleancheckbox;
    # enumeration: select and others; date and datetime: date; string: text; number: number).
    property_types: ClassVar[dict[str, tuple[str, str]]] = {
        "picklist": ("enumeration", "select"),
        "checkbox": ("bool", "booleancheckbox"),
        "date": ("date", "date"),
        "datetime": ("datetime", "date"),
        "number": ("number", "number"),
        "text": ("string", "text"),
        "link": ("string", "text"),
    }
    create_types: ClassVar[dict[str, str]] = {
        kind: f"{type_}/{field_type}" for kind, (type_, field_type) in property_types.items()}
    flag_has_options = True  # a bool property lists Yes and No

    def is_custom(self, object_type: str, name: str) -> bool:
        return name not in HUBSPOT_DEFAULT_PROPERTIES.get(object_type, frozenset())

    def field_label(self, name: str) -> str:
        """`crmsync_icp_fit` -> "ICP fit (crmsync)"."""
        words = name.removeprefix("crmsync_").replace("_", " ")
        words = " ".join("ICP" if w == "icp" else w for w in words.split())
        text = words[:1].upper() + words[1:]
        return f"{text} (crmsync)" if name.startswith("crmsync_") else text

    def type_details(self, kind: str) -> dict[str, str]:
        type_, field_type = self.property_types[kind]
        return {"hubspot_type": type_, "hubspot_field_type": field_type}


class SalesforceFieldAdmin(FieldAdmin):
    noun = "field"
    date_types = frozenset({"date"})
    flag_types = frozenset({"boolean", "picklist", "multipicklist"})
    not_text_types = frozenset({"boolean", "date", "datetime", "time", "double", "int", "long",
                                "currency", "percent", "reference", "id"})
    number_types = frozenset({"double", "int", "long", "currency", "percent"})
    true_false_types = frozenset({"boolean"})  # a checkbox
    wanted: ClassVar[dict[str, str]] = {
        "date": "a Date field (not Date/Time)",
        "flag": "a Checkbox field",
        "text": "a Text or Picklist field",
    }

    def create_fix(self, object_type: str, name: str) -> str:
        suffix = "" if name.endswith("__c") else " (custom fields' API names end in __c)"
        return (
            f"create the field in Salesforce: Setup > Object Manager > {object_type} > Fields & "
            f"Relationships > New, API name '{name}'{suffix}, and give the integration user "
            "field-level access to it"
        )

    def writable_fix(self, object_type: str, name: str) -> str:
        return (
            f"give the integration user Edit access to {object_type}.{name} (field-level "
            "security), or map a writable field"
        )

    def add_options(self, object_type: str, field: str, named: str) -> str:
        return (f"add {named} to the picklist in Salesforce (Setup > Object Manager > "
                f"{object_type} > Fields & Relationships > {field} > Values > New)")

    def fields_page(self, object_type: str) -> str:
        return f"Salesforce (Setup > Object Manager > {object_type} > Fields & Relationships)"

    # Custom field types (Metadata API FieldType): Picklist, Checkbox, Date, DateTime, Number,
    # Text. https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/
    # meta_field_types.htm
    field_types: ClassVar[dict[str, str]] = {
        "picklist": "Picklist",
        "checkbox": "Checkbox",
        "date": "Date",
        "datetime": "DateTime",
        "number": "Number",
        "text": "Text",
        "link": "Text",
    }
    create_types: ClassVar[dict[str, str]] = {
        **field_types, "number": "Number(18, 2)", "text": "Text(255)", "link": "Text(255)"}

    def is_custom(self, object_type: str, name: str) -> bool:
        return name.lower().endswith("__c")  # custom fields' API names end in __c

    def field_label(self, name: str) -> str:
        """`Buying_Signal_Type__c` -> "Buying Signal Type" (labels: 40 characters at most)."""
        return name.removesuffix("__c").replace("_", " ")[:40]

    def type_details(self, kind: str) -> dict[str, str]:
        return {"salesforce_type": self.field_types[kind]}


class SystemCatalog:
    """One CRM's objects and the reading of its raw records. Subclasses know the shape."""

    system: ClassVar[System]
    objects: ClassVar[dict[str, ObjectSpec]]
    # Every name a record's modification time has here, the cursor field first. Every write
    # moves it (crmsync's own too), so change detection ignores it and rules may not read it.
    modified_time_fields: tuple[str, ...]
    forward_only: frozenset[tuple[str, str]] = frozenset()  # (object, field)
    organization_name_field: str
    # (field, object) pairs that tell a record's object when the record does not say
    object_hints: tuple[tuple[str, str], ...] = ()
    admin: ClassVar[FieldAdmin]  # how an admin fixes a field crmsync writes (pre-flight)

    def kind_of(self, obj: str) -> Kind:
        """The kind of record `obj` holds; an object not listed reads as a deal."""
        spec = self.objects.get(obj)
        return spec.kind if spec is not None else "deal"

    def objects_of(self, kind: Kind) -> tuple[str, ...]:
        return tuple(name for name, spec in self.objects.items() if spec.kind == kind)

    @property
    def read_order(self) -> tuple[str, ...]:
        """Objects in the order a run reads them: organisations before the people and deals
        that name them."""
        order = ("organization", "person", "deal")
        return tuple(sorted(self.objects, key=lambda name: order.index(self.objects[name].kind)))

    # ---- reading a raw record ------------------------------------------------------------

    def record_id(self, raw: Any) -> str | None:
        """The record's id as text; None when it has none, or none that is text or a whole
        number (a list, an object, a 5,000-digit number are no id)."""
        raise NotImplementedError

    def record_fields(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        """The record's fields by name; None when the record holds none it could read."""
        raise NotImplementedError

    def person_links(self, obj: str, fields: dict[str, Any], raw: dict) -> PersonLinks:
        raise NotImplementedError

    def organization_links(self, fields: dict[str, Any]) -> tuple[list[Named], str | None]:
        """(records named as the same organisation, normalised domain)."""
        raise NotImplementedError

    def deal_links(self, fields: dict[str, Any], raw: dict) -> tuple[list[Named], list[Named]]:
        """(the deal's people, its organisations)."""
        raise NotImplementedError

    def ties(self, obj: str, fields: dict[str, Any], raw: dict) -> Ties:
        """The records this one names and its natural key; none for a placeholder, free-mail
        or role value, so planning never joins records through one."""
        kind = self.kind_of(obj)
        if kind == "person":
            email, linked, orgs, _ = self.person_links(obj, fields, raw)
            natural = email_key(email) if isinstance(email, str) else None
            return Ties(linked + orgs, f"email:{natural}" if natural else None)
        if kind == "organization":
            named, domain = self.organization_links(fields)
            return Ties(named, f"domain:{domain}" if domain else None)
        persons, orgs = self.deal_links(fields, raw)
        return Ties(persons + orgs, None)

    def identity_keys(self, obj: str, raw: Any) -> list[str]:
        """Text keys that tie this record to others when reconciling, its own ref's text first.

        The keys are those `reconcile` groups by: the record's ref, the records it names (ids
        it holds, a converted lead's contact, a person's organisation, a deal's people and
        organisation) and its natural key. Cheap next to `normalise` (no models), so a run can
        work out which records belong together before normalising any of them. Shares its
        code with `normalise`, so both always agree; a record `normalise` would reject may
        still give keys (harmless: keys only decide what is planned together). No id, no keys.
        """
        rid = self.record_id(raw)
        if rid is None:
            return []
        keys = [f"{self.system.value}:{obj}:{rid}"]
        fields = self.record_fields(raw)
        if fields is None:
            return keys
        try:
            named, natural = self.ties(obj, fields, raw)
        except Unreadable:  # normalise rejects it; its own ref is key enough
            return keys
        keys.extend(f"{system.value}:{name}:{named_id}" for system, name, named_id in named)
        if natural:
            keys.append(natural)
        return keys

    # ---- what the engine keeps -----------------------------------------------------------

    def as_read_back(self, written: dict[str, Any]) -> dict[str, Any]:
        """Written values as the CRM gives them back on the next read."""
        return written

    def mirror_text(self, raw: dict[str, Any]) -> bytes:
        """What the mirror keeps of a record: everything planning reads, so all but its
        modification time, which every write moves (crmsync's own too) and rules may not read.
        Canonical JSON, so equal content gives equal bytes and re-reading it is no change.

        orjson: a sync re-reads whole pages of records it already holds, and the standard
        library's encoder and decoder were a third of the engine's time per such record.
        """
        volatile = self.modified_time_fields
        content = {k: v for k, v in raw.items() if k not in volatile}
        properties = content.get("properties")
        if isinstance(properties, dict):
            content["properties"] = {k: v for k, v in properties.items() if k not in volatile}
        return orjson.dumps(content, option=orjson.OPT_SORT_KEYS, default=str)


class HubSpotCatalog(SystemCatalog):
    """HubSpot CRM v3: `{"id", "properties": {...}, "associations": {...}}`; the adapter puts
    a deal's contacts and companies under `associations` as lists of ids."""

    system = System.HUBSPOT
    objects: ClassVar[dict[str, ObjectSpec]] = {
        "contacts": ObjectSpec("person", ("lastmodifieddate",), (
            "email", "firstname", "lastname", "salesforcecontactid", "salesforceleadid",
            "associatedcompanyid"), 100),
        "companies": ObjectSpec("organization", ("hs_lastmodifieddate",),
                                ("name", "domain", "salesforceaccountid"), 100),
        "deals": ObjectSpec("deal", ("hs_lastmodifieddate",), ("dealname",), 100),
    }
    # `updatedAt` is the same time beside the properties.
    modified_time_fields = ("lastmodifieddate", "hs_lastmodifieddate", "updatedAt")
    # HubSpot answers 2xx to a backward lifecyclestage write and ignores it (design.md).
    forward_only = frozenset({("contacts", "lifecyclestage"), ("companies", "lifecyclestage")})
    organization_name_field = "name"
    admin = HubSpotFieldAdmin()
    object_hints = (("dealstage", "deals"), ("email", "contacts"), ("domain", "companies"),
                    ("name", "companies"))
    # HubSpot properties that hold the id of the same person in Salesforce
    _person_links: ClassVar[dict[str, str]] = {
        "salesforcecontactid": "Contact", "salesforceleadid": "Lead"}

    def record_id(self, raw: Any) -> str | None:
        if not isinstance(raw, dict):
            return None
        value = raw.get("id")
        props = raw.get("properties")
        if value in (None, "") and isinstance(props, dict):
            value = props.get("hs_object_id")
        return id_text(value)

    def record_fields(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        props = raw.get("properties")
        return props if isinstance(props, dict) else None

    def person_links(self, obj: str, fields: dict[str, Any], raw: dict) -> PersonLinks:
        linked: list[Named] = []
        for field, named_obj in self._person_links.items():
            if named := read_value(fields, field):
                linked.append((System.SALESFORCE, named_obj, named))
        company_ids = set(_associations(raw, "companies"))
        if company := read_value(fields, "associatedcompanyid"):
            company_ids.add(raw_text(company))
        orgs: list[Named] = [(System.HUBSPOT, "companies", c) for c in sorted(company_ids)]
        return PersonLinks(fields.get("email"), linked, orgs, False)

    def organization_links(self, fields: dict[str, Any]) -> tuple[list[Named], str | None]:
        linked: list[Named] = []
        if account := read_value(fields, "salesforceaccountid"):
            linked.append((System.SALESFORCE, "Account", account))
        return linked, normalise_domain(raw_text(read_value(fields, "domain")))

    def deal_links(self, fields: dict[str, Any], raw: dict) -> tuple[list[Named], list[Named]]:
        persons = [(System.HUBSPOT, "contacts", c) for c in sorted(_associations(raw, "contacts"))]
        orgs = [(System.HUBSPOT, "companies", c) for c in sorted(_associations(raw, "companies"))]
        return persons, orgs

    def as_read_back(self, written: dict[str, Any]) -> dict[str, Any]:
        """HubSpot clears a property written as "", and reads it back as null."""
        return {name: None if value == "" else value for name, value in written.items()}


class SalesforceCatalog(SystemCatalog):
    """Salesforce REST: `{"attributes": {"type"}, "Id", <fields>}`, fields at the top level."""

    system = System.SALESFORCE
    objects: ClassVar[dict[str, ObjectSpec]] = {
        "Lead": ObjectSpec("person", ("SystemModstamp",), (
            "Email", "FirstName", "LastName", "Company", "IsConverted", "ConvertedContactId",
            "ConvertedAccountId"), 200),
        "Contact": ObjectSpec("person", ("SystemModstamp",),
                              ("Email", "FirstName", "LastName", "AccountId"), 200),
        "Account": ObjectSpec("organization", ("SystemModstamp",), ("Name", "Website"), 200),
        "Opportunity": ObjectSpec("deal", ("SystemModstamp",),
                                  ("Name", "AccountId", "ContactId"), 200),
    }
    modified_time_fields = ("SystemModstamp", "LastModifiedDate")
    organization_name_field = "Name"
    admin = SalesforceFieldAdmin()

    def record_id(self, raw: Any) -> str | None:
        if not isinstance(raw, dict):
            return None
        return id_text(raw.get("Id"))

    def record_fields(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        return raw

    def person_links(self, obj: str, fields: dict[str, Any], raw: dict) -> PersonLinks:
        linked: list[Named] = []
        orgs: list[Named] = []
        converted = obj == "Lead" and _truthy(read_value(fields, "IsConverted"))
        if converted and (contact := read_value(fields, "ConvertedContactId")):
            linked.append((System.SALESFORCE, "Contact", contact))
        account = read_value(fields, "AccountId") or (
            converted and read_value(fields, "ConvertedAccountId"))
        if account:
            orgs.append((System.SALESFORCE, "Account", account))
        return PersonLinks(fields.get("Email"), linked, orgs, converted)

    def organization_links(self, fields: dict[str, Any]) -> tuple[list[Named], str | None]:
        return [], normalise_domain(raw_text(read_value(fields, "Website")))

    def deal_links(self, fields: dict[str, Any], raw: dict) -> tuple[list[Named], list[Named]]:
        contact, account = read_value(fields, "ContactId"), read_value(fields, "AccountId")
        persons: list[Named] = [(System.SALESFORCE, "Contact", contact)] if contact else []
        orgs: list[Named] = [(System.SALESFORCE, "Account", account)] if account else []
        return persons, orgs


CATALOG: dict[str, SystemCatalog] = {
    catalog.system.value: catalog for catalog in (HubSpotCatalog(), SalesforceCatalog())
}

# ---- the catalog as tables, for the places that look up by (system, object) -----------------

# Fields the core always reads to link and key records, whatever the mapping says.
LINK_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    (name, obj): spec.link_fields
    for name, catalog in CATALOG.items() for obj, spec in catalog.objects.items()
}
MODIFIED_TIME_FIELDS: dict[str, tuple[str, ...]] = {
    name: catalog.modified_time_fields for name, catalog in CATALOG.items()
}
FORWARD_ONLY_FIELDS: frozenset[tuple[str, str, str]] = frozenset(
    (name, obj, field) for name, catalog in CATALOG.items() for obj, field in catalog.forward_only
)


def catalog_version(catalogs: Iterable[SystemCatalog]) -> str:
    """A fingerprint of what the catalogs declare (objects, always-read and modified fields,
    forward-only fields) and of the revision of the code that reads records."""
    declared = sorted(
        (c.system.value, sorted((obj, spec.kind, spec.modified_fields, spec.link_fields)
                                for obj, spec in c.objects.items()),
         c.modified_time_fields, sorted(c.forward_only), c.organization_name_field)
        for c in catalogs)
    digest = hashlib.sha256(repr((_READER_REVISION, declared)).encode()).hexdigest()
    return f"{_READER_REVISION}:{digest[:16]}"


CATALOG_VERSION = catalog_version(CATALOG.values())


# ---- by system name, for callers that hold one ----------------------------------------------


def kind_of(system: str, obj: str) -> Kind:
    catalog = CATALOG.get(system)
    return catalog.kind_of(obj) if catalog is not None else "deal"


def record_id(system: str, raw: Any) -> str | None:
    return CATALOG[system].record_id(raw)


def record_fields(system: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    return CATALOG[system].record_fields(raw)


def identity_keys(system: str, object_type: str, raw: Any) -> list[str]:
    return CATALOG[system].identity_keys(object_type, raw)


# ---- values as a CRM field holds them -------------------------------------------------------


def id_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if type(value) is int and -_MAX_INT <= value <= _MAX_INT:
        return str(value)
    return None


def read_value(fields: dict[str, Any], name: str) -> Any:
    """`fields[name]` if it is one plain value: text, a flag, a finite number, or nothing.
    Anything else is `Unreadable`: no CRM field holds it, and reading it could fail."""
    value = fields.get(name)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if -_MAX_INT <= value <= _MAX_INT:
            return value
        raise Unreadable(f"{name} is a number too large to be real ({value.bit_length()} bits)",
                         name)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise Unreadable(f"{name} is {value!r}, not a number", name)
    raise Unreadable(f"{name} is {value_kind(value)}, not a single value", name)


def value_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def raw_text(value: Any) -> str:
    """The text a picklist lookup uses: True -> "true", 5.0 -> "5", None -> ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _truthy(value: Any) -> bool:
    return value is True or raw_text(value).casefold() == "true"


def _associations(raw: dict, to: str) -> list[str]:
    """Ids of the `to` records associated with this one: a list of ids, or the API's
    `{"results": [{"id": ...}]}` shape. Any other shape is `Unreadable`."""
    assoc = raw.get("associations") or {}
    if not isinstance(assoc, dict):
        raise Unreadable(f"associations is {value_kind(assoc)}, not an object", "associations")
    found = assoc.get(to) or []
    if isinstance(found, dict):
        found = found.get("results") or []
    if not isinstance(found, list):
        raise Unreadable(f"associations.{to} is {value_kind(found)}, not a list", "associations")
    ids = []
    for entry in found:
        named = entry.get("id") or entry.get("toObjectId") if isinstance(entry, dict) else entry
        if named in (None, ""):
            continue
        text = id_text(named)
        if text is None:
            raise Unreadable(f"associations.{to} holds {value_kind(named)}, not an id",
                             "associations")
        ids.append(text)
    return ids


# ---- setting up a portal and an org: scopes and the fields every one already has ------------
# (read by `crmsync fields` and `crmsync check`, README and config/example.env list the same)

# The private-app scopes crmsync's own calls need with the shipped mapping, and no more:
# reading contacts, companies and deals (list, search, batch read, the v4 associations of
# deals), writing the two objects `mappings/default.yaml` writes back to, and reading the
# property definitions of all three (`check` and the pre-flight describe them). HubSpot's
# scopes reference: https://developers.hubspot.com/docs/apps/developer-platform/build-apps/
# authentication/scopes ; the properties API: https://developers.hubspot.com/docs/api/crm/
# properties (reading needs crm.schemas.{object}.read, creating crm.schemas.{object}.write).
# `crmsync fields` derives the list from any mapping (connector.fields.hubspot_scopes); a test
# checks that this list is what it derives from the shipped one.
HUBSPOT_SCOPES: tuple[str, ...] = (
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.schemas.contacts.read",
    "crm.schemas.companies.read",
    "crm.schemas.deals.read",
)
# Only `crmsync fields --create hubspot` needs these (creating the shipped mapping's custom
# contact and company properties); grant them for that command and remove them afterwards.
HUBSPOT_FIELD_CREATION_SCOPES: tuple[str, ...] = (
    "crm.schemas.contacts.write",
    "crm.schemas.companies.write",
)

# Properties every HubSpot portal has (HubSpot's default properties of each object), or that
# HubSpot's own Salesforce integration creates (`salesforce*id`): crmsync never creates them.
# Any other property a mapping names is custom. Default properties: HubSpot knowledge base,
# "HubSpot's default contact / company / deal properties".
HUBSPOT_DEFAULT_PROPERTIES: dict[str, frozenset[str]] = {
    "contacts": frozenset({
        "hs_object_id", "createdate", "lastmodifieddate", "email", "firstname", "lastname",
        "lifecyclestage", "hs_lead_status", "associatedcompanyid", "company", "country",
        "industry", "jobtitle", "phone", "website", "hs_merged_object_ids",
        "salesforcecontactid", "salesforceleadid"}),
    "companies": frozenset({
        "hs_object_id", "createdate", "hs_lastmodifieddate", "name", "domain", "industry",
        "numberofemployees", "country", "annualrevenue", "type", "lifecyclestage", "city",
        "phone", "website", "hs_merged_object_ids", "salesforceaccountid"}),
    "deals": frozenset({
        "hs_object_id", "createdate", "hs_lastmodifieddate", "dealname", "dealstage",
        "pipeline", "amount", "closedate", "hs_merged_object_ids"}),
}
# The group every portal has per object: where `crmsync fields --create hubspot` puts the
# properties it creates (a property's groupName must name an existing group).
HUBSPOT_DEFAULT_GROUPS: dict[str, str] = {
    "contacts": "contactinformation",
    "companies": "companyinformation",
    "deals": "dealinformation",
}

# Salesforce standard fields that take no field permission in a permission set: the record
# id and system stamps, required fields ("You cannot deploy to a required field"), name parts
# and fields Salesforce sets itself (conversion, merge, closed/won). Access to them comes with
# the object's Read. Custom fields always end in `__c` and are never in this table.
SALESFORCE_NO_FIELD_PERMISSION: dict[str, frozenset[str]] = {
    obj: frozenset({"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted",
                    "MasterRecordId"}) | extra
    for obj, extra in {
        "Lead": frozenset({"FirstName", "LastName", "Company", "Status", "IsConverted",
                           "ConvertedContactId", "ConvertedAccountId",
                           "ConvertedOpportunityId", "ConvertedDate"}),
        "Contact": frozenset({"FirstName", "LastName"}),
        "Account": frozenset({"Name"}),
        "Opportunity": frozenset({"Name", "StageName", "CloseDate", "IsClosed", "IsWon"}),
    }.items()
}
# Parts of a compound address: a permission set grants access to the whole address.
SALESFORCE_COMPOUND_FIELDS: dict[tuple[str, str], str] = {
    **{("Account", f"Billing{part}"): "BillingAddress"
       for part in ("Street", "City", "State", "PostalCode", "Country")},
    **{("Account", f"Shipping{part}"): "ShippingAddress"
       for part in ("Street", "City", "State", "PostalCode", "Country")},
    **{(obj, part): "Address" for obj in ("Lead",)
       for part in ("Street", "City", "State", "PostalCode", "Country")},
    **{("Contact", f"Mailing{part}"): "MailingAddress"
       for part in ("Street", "City", "State", "PostalCode", "Country")},
}
