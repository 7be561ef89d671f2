"""What the emulated portal and org look like: HubSpot properties and Salesforce fields.

One table per system drives validation on writes, the properties API, describe and the data
generator, so the three never disagree about which values a picklist allows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

__all__ = [
    "HUBSPOT_INFORMATION_GROUPS",
    "HUBSPOT_MODIFIED_PROPERTY",
    "HUBSPOT_OBJECT_TYPES",
    "HUBSPOT_PROPERTIES",
    "LIFECYCLE_ORDER",
    "SALESFORCE_FIELDS",
    "SALESFORCE_KEY_PREFIXES",
    "HubSpotPortal",
    "HubSpotProperty",
    "Option",
    "SalesforceField",
    "hubspot_property",
    "salesforce_field",
]


@dataclass(frozen=True)
class Option:
    """One picklist / enumeration option: the stored value and the label people see."""

    value: str
    label: str


@dataclass(frozen=True)
class HubSpotProperty:
    """A HubSpot property definition (type is HubSpot's: string, number, date, datetime,
    enumeration, bool)."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    options: tuple[Option, ...] = ()
    read_only: bool = False
    group: str = "contactinformation"
    description: str = ""
    # made through POST /crm/v3/properties/{type} rather than shipped with the portal
    created: bool = False


@dataclass(frozen=True)
class SalesforceField:
    """A Salesforce field (type is describe's: id, string, email, url, picklist, boolean, int,
    double, currency, date, datetime, reference)."""

    name: str
    type: str = "string"
    label: str = ""
    picklist: tuple[Option, ...] = ()
    restricted: bool = False
    updateable: bool = True
    nillable: bool = True
    reference_to: tuple[str, ...] = ()
    custom: bool = False


def _opts(*values: str | tuple[str, str]) -> tuple[Option, ...]:
    return tuple(
        Option(v, v) if isinstance(v, str) else Option(v[0], v[1]) for v in values
    )


# ---- HubSpot ------------------------------------------------------------------------------

HUBSPOT_OBJECT_TYPES = ("contacts", "companies", "deals")
# The group every portal has per object type (its default properties' group).
HUBSPOT_INFORMATION_GROUPS = {
    "contacts": "contactinformation",
    "companies": "companyinformation",
    "deals": "dealinformation",
}
HUBSPOT_MODIFIED_PROPERTY = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}

LIFECYCLE_OPTIONS = _opts(
    ("subscriber", "Subscriber"),
    ("57129481", "Marketing Qualified Prospect"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("57129482", "Sales Qualified Prospect"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)
# Forward-only order of lifecyclestage: a write to an earlier stage is silently ignored.
LIFECYCLE_ORDER = {option.value: rank for rank, option in enumerate(LIFECYCLE_OPTIONS)}

LEAD_STATUS_OPTIONS = _opts(
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
)
PRIORITY_VALUES = ("trigger_fit", "fit", "nonfit_lead", "other")
BOOL_OPTIONS = _opts(("true", "Yes"), ("false", "No"))
HUBSPOT_INDUSTRIES = (
    "COMPUTER_SOFTWARE",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "FINANCIAL_SERVICES",
    "BANKING",
    "RETAIL",
    "CONSTRUCTION",
    "HOSPITAL_HEALTH_CARE",
    "RESTAURANTS",
    "MANAGEMENT_CONSULTING",
    "TELECOMMUNICATIONS",
    "LOGISTICS_AND_SUPPLY_CHAIN",
)
COMPANY_TYPES = ("PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER")
DEAL_STAGES = _opts(
    ("appointmentscheduled", "Appointment Scheduled"),
    ("qualifiedtobuy", "Qualified To Buy"),
    ("presentationscheduled", "Presentation Scheduled"),
    ("decisionmakerboughtin", "Decision Maker Bought-In"),
    ("contractsent", "Contract Sent"),
    ("closedwon", "Closed Won"),
    ("closedlost", "Closed Lost"),
)


def _hs_common(group: str, modified: str) -> list[HubSpotProperty]:
    return [
        HubSpotProperty("hs_object_id", "Record ID", "number", "number", read_only=True,
                        group=group),
        HubSpotProperty("createdate", "Create Date", "datetime", "date", read_only=True,
                        group=group),
        HubSpotProperty(modified, "Last Modified Date", "datetime", "date", read_only=True,
                        group=group),
        # Set by a merge on the surviving record: the merged-away ids, ";"-separated.
        HubSpotProperty("hs_merged_object_ids", "Merged record IDs", "enumeration",
                        "checkbox", read_only=True, group=group),
    ]


def _hs_enum(name: str, label: str, options: tuple[Option, ...], group: str) -> HubSpotProperty:
    return HubSpotProperty(name, label, "enumeration", "select", options, group=group)


def _hs_bool(name: str, label: str, group: str) -> HubSpotProperty:
    return HubSpotProperty(name, label, "bool", "booleancheckbox", BOOL_OPTIONS, group=group)


def _hs_date(name: str, label: str, group: str) -> HubSpotProperty:
    return HubSpotProperty(name, label, "date", "date", group=group)


def _contact_properties() -> list[HubSpotProperty]:
    g = "contactinformation"
    return [
        *_hs_common(g, "lastmodifieddate"),
        HubSpotProperty("email", "Email", group=g),
        HubSpotProperty("firstname", "First Name", group=g),
        HubSpotProperty("lastname", "Last Name", group=g),
        _hs_enum("lifecyclestage", "Lifecycle Stage", LIFECYCLE_OPTIONS, g),
        _hs_enum("hs_lead_status", "Lead Status", LEAD_STATUS_OPTIONS, g),
        HubSpotProperty("salesforcecontactid", "Salesforce Contact ID", group="salesforce"),
        HubSpotProperty("salesforceleadid", "Salesforce Lead ID", group="salesforce"),
        HubSpotProperty("associatedcompanyid", "Primary Associated Company ID", "number",
                        "number", group=g),
        _hs_bool("crmsync_icp_fit", "ICP fit (crmsync)", "crmsync"),
        _hs_enum("crmsync_priority", "Priority (crmsync)", _opts(*PRIORITY_VALUES), "crmsync"),
    ]


def _company_properties() -> list[HubSpotProperty]:
    g = "companyinformation"
    return [
        *_hs_common(g, "hs_lastmodifieddate"),
        HubSpotProperty("name", "Name", group=g),
        HubSpotProperty("domain", "Company Domain Name", group=g),
        _hs_enum("industry", "Industry", _opts(*HUBSPOT_INDUSTRIES), g),
        HubSpotProperty("numberofemployees", "Number of Employees", "number", "number", group=g),
        HubSpotProperty("country", "Country/Region", group=g),
        HubSpotProperty("annualrevenue", "Annual Revenue", "number", "number", group=g),
        _hs_enum("type", "Type", _opts(*COMPANY_TYPES), g),
        _hs_enum("lifecyclestage", "Lifecycle Stage", LIFECYCLE_OPTIONS, g),
        HubSpotProperty("salesforceaccountid", "Salesforce Account ID", group="salesforce"),
        _hs_date("recent_funding_date", "Recent funding date", g),
        _hs_date("new_executive_date", "New executive date", g),
        _hs_date("expansion_announced_date", "Expansion announced date", g),
        _hs_date("cost_savings_announced_date", "Cost savings announced date", g),
        _hs_bool("crmsync_trigger_active", "Trigger active (crmsync)", "crmsync"),
        HubSpotProperty("crmsync_trigger_type", "Trigger type (crmsync)", group="crmsync"),
        _hs_date("crmsync_trigger_date", "Trigger date (crmsync)", "crmsync"),
        _hs_bool("crmsync_icp_fit", "ICP fit (crmsync)", "crmsync"),
        _hs_enum("crmsync_priority", "Priority (crmsync)", _opts(*PRIORITY_VALUES), "crmsync"),
    ]


def _deal_properties() -> list[HubSpotProperty]:
    g = "dealinformation"
    return [
        *_hs_common(g, "hs_lastmodifieddate"),
        HubSpotProperty("dealname", "Deal Name", group=g),
        _hs_enum("dealstage", "Deal Stage", DEAL_STAGES, g),
        _hs_enum("pipeline", "Pipeline", _opts(("default", "Sales Pipeline")), g),
        HubSpotProperty("amount", "Amount", "number", "number", group=g),
        HubSpotProperty("closedate", "Close Date", "datetime", "date", group=g),
    ]


HUBSPOT_PROPERTIES: dict[str, dict[str, HubSpotProperty]] = {
    "contacts": {p.name: p for p in _contact_properties()},
    "companies": {p.name: p for p in _company_properties()},
    "deals": {p.name: p for p in _deal_properties()},
}


def hubspot_property(object_type: str, name: str) -> HubSpotProperty | None:
    """The definition of a HubSpot property, or None when the portal has no such property."""
    return HUBSPOT_PROPERTIES.get(object_type, {}).get(name)


class HubSpotPortal:
    """One sandbox portal's properties: the shipped table, less what an admin removed.

    A real portal drifts from what a mapping expects: an option deleted from a dropdown, a
    custom property never created. Tests and benchmarks remove them here; validation on
    writes and the properties API both read this, so they always agree.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._properties = {t: dict(HUBSPOT_PROPERTIES[t]) for t in HUBSPOT_OBJECT_TYPES}
        # Property groups outlive their properties: removing every crmsync property leaves
        # the "crmsync" group in place, as in a real portal.
        self._groups = {t: {p.group for p in HUBSPOT_PROPERTIES[t].values()}
                        | {HUBSPOT_INFORMATION_GROUPS[t]} for t in HUBSPOT_OBJECT_TYPES}
        self._names = {t: frozenset(HUBSPOT_PROPERTIES[t]) for t in HUBSPOT_OBJECT_TYPES}

    def property(self, object_type: str, name: str) -> HubSpotProperty | None:
        """The portal's definition of a property, or None when it has no such property."""
        with self._lock:
            return self._properties.get(object_type, {}).get(name)

    def properties(self, object_type: str) -> dict[str, HubSpotProperty]:
        with self._lock:
            return dict(self._properties[object_type])

    def remove_option(self, object_type: str, name: str, value: str) -> None:
        """Delete one option of an enumeration property (KeyError when there is none)."""
        with self._lock:
            definition = self._properties[object_type][name]
            kept = tuple(o for o in definition.options if o.value != value)
            if len(kept) == len(definition.options):
                raise KeyError(f"{object_type}.{name} has no option {value!r}")
            self._properties[object_type][name] = replace(definition, options=kept)

    def retype_property(self, object_type: str, name: str, type_: str, field_type: str) -> None:
        """Give a property another type, as a portal where an admin created it differently
        (options kept only for the types that have them: enumeration and bool)."""
        with self._lock:
            definition = self._properties[object_type][name]
            options = definition.options if type_ in ("enumeration", "bool") else ()
            self._properties[object_type][name] = replace(
                definition, type=type_, field_type=field_type, options=options)

    def remove_property(self, object_type: str, name: str) -> None:
        """Delete a property from the portal (KeyError when there is none)."""
        with self._lock:
            del self._properties[object_type][name]
            self._names[object_type] = frozenset(self._properties[object_type])

    def names(self, object_type: str) -> frozenset[str]:
        """The names of the portal's properties now (cheap: what reads render)."""
        return self._names[object_type]

    def groups(self, object_type: str) -> set[str]:
        with self._lock:
            return set(self._groups[object_type])

    def add_property(self, object_type: str, definition: HubSpotProperty) -> bool:
        """Create a property; False (and nothing changed) when one of that name exists."""
        with self._lock:
            if definition.name in self._properties[object_type]:
                return False
            self._properties[object_type][definition.name] = definition
            self._names[object_type] = frozenset(self._properties[object_type])
            return True


# ---- Salesforce ---------------------------------------------------------------------------

SALESFORCE_KEY_PREFIXES = {"Lead": "00Q", "Contact": "003", "Account": "001", "Opportunity": "006"}

LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
    "Liidi",
    "Prospekti",
    "Myyntivalmis liidi",
    "Abonnent",
    "Markedskvalifisert lead",
    "Salgskvalifisert lead",
    "Nieuw",
    "Gekwalificeerd",
)
CONTACT_LIFECYCLE_STAGES = (
    "Subscriber", "Lead", "MQL", "SQL", "Opportunity", "Customer", "Evangelist", "Other",
    "Disqualified",
)
SALESFORCE_INDUSTRIES = (
    "Technology", "Finance", "Banking", "Retail", "Construction", "Healthcare", "Hospitality",
    "Consulting", "Telecommunications", "Transportation",
)
ACCOUNT_TYPES = (
    "Prospect",
    "Customer - Direct",
    "Customer - Channel",
    "Channel Partner / Reseller",
    "Installation Partner",
    "Technology Partner",
    "Other",
    "Prospekti",
    "Asiakas",
    "Kunde",
    "Klant",
)
OPPORTUNITY_STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)


def _sf_system() -> list[SalesforceField]:
    return [
        SalesforceField("CreatedDate", "datetime", "Created Date", updateable=False,
                        nillable=False),
        SalesforceField("LastModifiedDate", "datetime", "Last Modified Date", updateable=False,
                        nillable=False),
        SalesforceField("SystemModstamp", "datetime", "System Modstamp", updateable=False,
                        nillable=False),
        SalesforceField("IsDeleted", "boolean", "Deleted", updateable=False, nillable=False),
    ]


def _sf_id(sobject: str) -> SalesforceField:
    return SalesforceField("Id", "id", f"{sobject} ID", updateable=False, nillable=False)


def _sf_ref(name: str, target: str, *, updateable: bool = True) -> SalesforceField:
    return SalesforceField(name, "reference", name, reference_to=(target,), updateable=updateable)


def _sf_pick(name: str, values: tuple[str, ...], *, restricted: bool, nillable: bool = True,
             custom: bool = False) -> SalesforceField:
    return SalesforceField(name, "picklist", name.removesuffix("__c").replace("_", " "),
                           _opts(*values), restricted=restricted, nillable=nillable,
                           custom=custom)


def _sf_fit_fields() -> list[SalesforceField]:
    return [
        SalesforceField("ICP_Fit__c", "boolean", "ICP Fit", nillable=False, custom=True),
        _sf_pick("Priority__c", PRIORITY_VALUES, restricted=True, custom=True),
    ]


def _lead_fields() -> list[SalesforceField]:
    return [
        _sf_id("Lead"),
        SalesforceField("FirstName", label="First Name"),
        SalesforceField("LastName", label="Last Name", nillable=False),
        SalesforceField("Email", "email", "Email"),
        SalesforceField("Company", label="Company", nillable=False),
        _sf_pick("Status", LEAD_STATUSES, restricted=True, nillable=False),
        SalesforceField("IsConverted", "boolean", "Converted", updateable=False, nillable=False),
        _sf_ref("ConvertedContactId", "Contact", updateable=False),
        _sf_ref("ConvertedAccountId", "Account", updateable=False),
        _sf_ref("ConvertedOpportunityId", "Opportunity", updateable=False),
        SalesforceField("ConvertedDate", "date", "Converted Date", updateable=False),
        _sf_pick("Industry", SALESFORCE_INDUSTRIES, restricted=False),
        SalesforceField("NumberOfEmployees", "int", "Employees"),
        SalesforceField("Country", label="Country"),
        SalesforceField("AnnualRevenue", "currency", "Annual Revenue"),
        *_sf_fit_fields(),
        _sf_ref("MasterRecordId", "Lead", updateable=False),  # merge losers
        *_sf_system(),
    ]


def _contact_fields() -> list[SalesforceField]:
    return [
        _sf_id("Contact"),
        SalesforceField("FirstName", label="First Name"),
        SalesforceField("LastName", label="Last Name", nillable=False),
        SalesforceField("Email", "email", "Email"),
        _sf_ref("AccountId", "Account"),
        _sf_pick("Lifecycle_Stage__c", CONTACT_LIFECYCLE_STAGES, restricted=True, custom=True),
        *_sf_fit_fields(),
        _sf_ref("MasterRecordId", "Contact", updateable=False),  # merge losers
        *_sf_system(),
    ]


def _account_fields() -> list[SalesforceField]:
    def date(name: str) -> SalesforceField:
        return SalesforceField(name, "date", name.removesuffix("__c").replace("_", " "),
                               custom=True)

    return [
        _sf_id("Account"),
        SalesforceField("Name", label="Account Name", nillable=False),
        SalesforceField("Website", "url", "Website"),
        _sf_pick("Industry", SALESFORCE_INDUSTRIES, restricted=False),
        SalesforceField("NumberOfEmployees", "int", "Employees"),
        SalesforceField("BillingCountry", label="Billing Country"),
        SalesforceField("AnnualRevenue", "currency", "Annual Revenue"),
        _sf_pick("Type", ACCOUNT_TYPES, restricted=True),
        date("Funding_Announced_Date__c"),
        date("New_Executive_Date__c"),
        date("Expansion_Date__c"),
        date("Cost_Savings_Announced_Date__c"),
        SalesforceField("Buying_Signal__c", "boolean", "Buying Signal", nillable=False,
                        custom=True),
        SalesforceField("Buying_Signal_Type__c", label="Buying Signal Type", custom=True),
        date("Buying_Signal_Date__c"),
        *_sf_fit_fields(),
        _sf_ref("MasterRecordId", "Account", updateable=False),  # merge losers
        *_sf_system(),
    ]


def _opportunity_fields() -> list[SalesforceField]:
    return [
        _sf_id("Opportunity"),
        SalesforceField("Name", label="Name", nillable=False),
        _sf_ref("AccountId", "Account"),
        _sf_ref("ContactId", "Contact"),
        _sf_pick("StageName", OPPORTUNITY_STAGES, restricted=True, nillable=False),
        SalesforceField("IsClosed", "boolean", "Closed", updateable=False, nillable=False),
        SalesforceField("IsWon", "boolean", "Won", updateable=False, nillable=False),
        SalesforceField("Amount", "currency", "Amount"),
        SalesforceField("CloseDate", "date", "Close Date", nillable=False),
        *_sf_system(),
    ]


SALESFORCE_FIELDS: dict[str, dict[str, SalesforceField]] = {
    "Lead": {f.name: f for f in _lead_fields()},
    "Contact": {f.name: f for f in _contact_fields()},
    "Account": {f.name: f for f in _account_fields()},
    "Opportunity": {f.name: f for f in _opportunity_fields()},
}


def salesforce_field(sobject: str, name: str) -> SalesforceField | None:
    """A field of an sObject by its API name, case-insensitively as SOQL resolves names."""
    fields = SALESFORCE_FIELDS.get(sobject, {})
    found = fields.get(name)
    if found is not None:
        return found
    lowered = name.lower()
    return next((f for f in fields.values() if f.name.lower() == lowered), None)
