"""A deterministic, seeded generator of realistic overlapping HubSpot and Salesforce data.

Realistic here means the awkward cases a sync meets in real portals and orgs: people in both
systems linked by id or only by e-mail, people in one system only, converted leads, e-mail
duplicates that differ in case, organisations in and out of the default ICP, fresh, expired and
suppressing trigger dates, localised picklist labels, and large groups of records sharing one
modified timestamp (including a Salesforce group that straddles a 2,000-record query batch).
Everything derives from `random.Random(seed)` and dates are relative to `now`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.sandbox.schema import (
    ACCOUNT_TYPES,
    COMPANY_TYPES,
    CONTACT_LIFECYCLE_STAGES,
    DEAL_STAGES,
    OPPORTUNITY_STAGES,
)
from connector.sandbox.store import Dataset, hs_datetime, sf_datetime

__all__ = ["ICP_COUNTRIES", "ICP_INDUSTRIES", "generate_dataset"]

ICP_INDUSTRIES = ("COMPUTER_SOFTWARE", "INFORMATION_TECHNOLOGY_AND_SERVICES",
                  "FINANCIAL_SERVICES", "BANKING")
OTHER_INDUSTRIES = ("RETAIL", "CONSTRUCTION", "HOSPITAL_HEALTH_CARE", "RESTAURANTS",
                    "MANAGEMENT_CONSULTING", "TELECOMMUNICATIONS", "LOGISTICS_AND_SUPPLY_CHAIN")
SF_INDUSTRY = {
    "COMPUTER_SOFTWARE": "Technology",
    "INFORMATION_TECHNOLOGY_AND_SERVICES": "Technology",
    "FINANCIAL_SERVICES": "Finance",
    "BANKING": "Banking",
    "RETAIL": "Retail",
    "CONSTRUCTION": "Construction",
    "HOSPITAL_HEALTH_CARE": "Healthcare",
    "RESTAURANTS": "Hospitality",
    "MANAGEMENT_CONSULTING": "Consulting",
    "TELECOMMUNICATIONS": "Telecommunications",
    "LOGISTICS_AND_SUPPLY_CHAIN": "Transportation",
}
# country -> (top-level domain, locale of its picklist labels, company suffix)
COUNTRIES = {
    "Netherlands": ("nl", "nl", "B.V."),
    "Belgium": ("be", "nl", "NV"),
    "Luxembourg": ("lu", "", "S.A."),
    "Norway": ("no", "no", "AS"),
    "Denmark": ("dk", "", "A/S"),
    "Sweden": ("se", "", "AB"),
    "Finland": ("fi", "fi", "Oy"),
    "Iceland": ("is", "", "ehf."),
    "Germany": ("de", "", "GmbH"),
    "United Kingdom": ("co.uk", "", "Ltd"),
    "United States": ("com", "", "Inc."),
    "Brazil": ("com.br", "", "Ltda."),
}
ICP_COUNTRIES = tuple(c for c in COUNTRIES if c not in {"United States", "Brazil"})
FIRST_NAMES = {
    "nl": ("Anna", "Daan", "Sanne", "Joris", "Femke", "Bram", "Lotte", "Sem", "Noor", "Pieter"),
    "no": ("Ingrid", "Lars", "Sigrid", "Ole", "Kari", "Henrik", "Nora", "Eirik", "Silje", "Jonas"),
    "fi": ("Aino", "Mikko", "Helmi", "Juha", "Emilia", "Ville", "Sanna", "Antti", "Laura",
           "Eetu"),
    "": ("Emma", "Lukas", "Olivia", "Noah", "Mia", "Elias", "Sofia", "Oscar", "Hannah", "Liam",
         "Beatriz", "Thiago", "Freya", "Magnus"),
}
LAST_NAMES = {
    "nl": ("de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder"),
    "no": ("Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Berg"),
    "fi": ("Korhonen", "Virtanen", "Mäkinen", "Nieminen", "Mäkelä", "Hämäläinen", "Laine"),
    "": ("Smith", "Müller", "Johansson", "Schmidt", "Brown", "Silva", "Jensen", "Taylor",
         "Fischer", "Andersson", "Santos", "Wilson"),
}
NAME_STEMS = ("Nordlys", "Kanal", "Polder", "Fjord", "Aurora", "Delta", "Vesta", "Orbit",
              "Lumen", "Granite", "Harbor", "Birch", "Kestrel", "Tundra", "Mosaic", "Quartz",
              "Beacon", "Summit", "Cobalt", "Meridian", "Saga", "Vinter", "Ankeri", "Tulip")
NAME_KINDS = ("Data", "Systems", "Capital", "Bank", "Retail", "Bouw", "Health", "Foods",
              "Logistics", "Software", "Analytics", "Partners", "Cloud", "Finans")
# Localised picklist labels some admins use instead of the standard values.
LOCAL_LEAD_STATUS = {"fi": ("Liidi", "Prospekti", "Myyntivalmis liidi"),
                     "no": ("Abonnent", "Markedskvalifisert lead", "Salgskvalifisert lead"),
                     "nl": ("Nieuw", "Gekwalificeerd")}
LOCAL_ACCOUNT_TYPE = {"fi": ("Prospekti", "Asiakas"), "no": ("Kunde",), "nl": ("Klant",)}
HS_STAGES = (("subscriber", 8), ("57129481", 5), ("lead", 25), ("marketingqualifiedlead", 15),
             ("salesqualifiedlead", 10), ("57129482", 5), ("opportunity", 10), ("customer", 12),
             ("evangelist", 3), ("other", 4), (None, 3))
SF_STAGE_FOR_HS = {"subscriber": "Subscriber", "57129481": "Lead", "lead": "Lead",
                   "marketingqualifiedlead": "MQL", "salesqualifiedlead": "SQL",
                   "57129482": "SQL", "opportunity": "Opportunity", "customer": "Customer",
                   "evangelist": "Evangelist", "other": "Other"}
LEAD_STATUSES = ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED",
                 "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING")
SF_BATCH = 2000


@dataclass
class _Organisation:
    """One real-world organisation and where it lives in each system."""

    name: str
    domain: str
    country: str
    locale: str
    industry: str
    employees: int
    revenue: int
    triggers: dict[str, str]
    company_id: str | None = None
    account_id: str | None = None
    contact_ids: list[str] = field(default_factory=list)
    sf_contact_ids: list[str] = field(default_factory=list)
    converted_lead_ids: list[str] = field(default_factory=list)


class _Generator:
    """Holds the random stream, the clock anchor and the dataset being filled."""

    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now.astimezone(UTC).replace(microsecond=0)
        self.data = Dataset(now)

    # ---- small helpers --------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def days_ago(self, low: float, high: float) -> datetime:
        seconds = self.rng.uniform(low * 86400, high * 86400)
        return self.now - timedelta(seconds=int(seconds))

    def day(self, low: float, high: float) -> str:
        return self.days_ago(low, high).date().isoformat()

    def created_and_modified(self) -> tuple[datetime, datetime]:
        created = self.days_ago(2, 730)
        age = (self.now - created).total_seconds()
        modified = created + timedelta(seconds=int(self.rng.uniform(0, age - 3600)))
        return created, modified

    # ---- organisations --------------------------------------------------------------------

    def organisation(self, index: int) -> _Organisation:
        in_icp = self.chance(0.45)
        country = self.rng.choice(ICP_COUNTRIES if in_icp else tuple(COUNTRIES))
        industry = self.rng.choice(ICP_INDUSTRIES if in_icp else ICP_INDUSTRIES + OTHER_INDUSTRIES)
        employees = int(math.exp(self.rng.uniform(math.log(50), math.log(5000))))
        revenue = self.rng.randrange(5_000_000, 400_000_000, 250_000)
        if not in_icp:
            industry, employees, revenue, country = self.break_icp(
                industry, employees, revenue, country
            )
        tld, locale, suffix = COUNTRIES[country]
        stem = f"{self.rng.choice(NAME_STEMS)} {self.rng.choice(NAME_KINDS)}"
        name = f"{stem} {index} {suffix}"
        domain = f"{stem.lower().replace(' ', '')}{index}.{tld}"
        return _Organisation(name, domain, country, locale, industry, employees, revenue,
                             self.triggers())

    def break_icp(
        self, industry: str, employees: int, revenue: int, country: str
    ) -> tuple[str, int, int, str]:
        """Make one (sometimes two) ICP criteria fail, so non-fit organisations look close."""
        for _ in range(1 + self.chance(0.3)):
            criterion = self.rng.randrange(4)
            if criterion == 0:
                industry = self.rng.choice(OTHER_INDUSTRIES)
            elif criterion == 1:
                small, large = self.rng.randrange(2, 49), self.rng.randrange(5001, 60000)
                employees = self.rng.choice((small, large))
            elif criterion == 2:
                revenue = self.rng.randrange(100_000, 4_999_999, 50_000)
            else:
                country = self.rng.choice(("United States", "Brazil"))
        return industry, employees, revenue, country

    def triggers(self) -> dict[str, str]:
        """Trigger dates: fresh (< 30 days), expired (> 1 year), suppressing (cost savings)."""
        found: dict[str, str] = {}
        roll = self.rng.random()
        kinds = ("funding", "executive", "expansion")
        if roll < 0.35:
            found[self.rng.choice(kinds)] = self.day(1, 29)
        elif roll < 0.50:
            found[self.rng.choice(kinds)] = self.day(380, 900)
        if self.chance(0.10):
            found["cost_savings"] = self.day(1, 60)
        return found

    def add_company(self, org: _Organisation, account_link: bool) -> None:
        created, modified = self.created_and_modified()
        triggers = org.triggers
        props: dict[str, Any] = {
            "name": org.name,
            "domain": org.domain,
            "industry": org.industry,
            "numberofemployees": org.employees,
            "country": org.country,
            "annualrevenue": org.revenue,
            "type": self.rng.choice(COMPANY_TYPES) if self.chance(0.8) else None,
            "lifecyclestage": self.rng.choice(("lead", "opportunity", "customer", "other")),
            "salesforceaccountid": org.account_id if account_link else None,
            "recent_funding_date": triggers.get("funding"),
            "new_executive_date": triggers.get("executive"),
            "expansion_announced_date": triggers.get("expansion"),
            "cost_savings_announced_date": triggers.get("cost_savings"),
            "createdate": hs_datetime(created),
            "hs_lastmodifieddate": hs_datetime(modified),
        }
        if self.chance(0.15):  # a trigger only Salesforce knows about
            props["recent_funding_date"] = None
        org.company_id = self.data.add_hubspot("companies", props)["id"]

    def add_account(self, org: _Organisation) -> None:
        created, modified = self.created_and_modified()
        triggers = org.triggers
        website = self.rng.choice((f"https://www.{org.domain}", f"http://{org.domain}/",
                                   f"www.{org.domain}", org.domain.upper()))
        account_type = self.rng.choice(ACCOUNT_TYPES[:7])
        if org.locale in LOCAL_ACCOUNT_TYPE and self.chance(0.35):
            account_type = self.rng.choice(LOCAL_ACCOUNT_TYPE[org.locale])
        org.account_id = self.data.add_salesforce("Account", {
            "Name": org.name if self.chance(0.9) else org.name.upper(),
            "Website": website,
            "Industry": SF_INDUSTRY[org.industry],
            "NumberOfEmployees": org.employees,
            "BillingCountry": org.country,
            "AnnualRevenue": float(org.revenue),
            "Type": account_type,
            "Funding_Announced_Date__c": triggers.get("funding"),
            "New_Executive_Date__c": triggers.get("executive"),
            "Expansion_Date__c": triggers.get("expansion"),
            "Cost_Savings_Announced_Date__c": triggers.get("cost_savings"),
            "CreatedDate": sf_datetime(created),
            "LastModifiedDate": sf_datetime(modified),
        })["Id"]

    # ---- persons --------------------------------------------------------------------------

    def person(self, org: _Organisation, in_hubspot_org: bool, in_salesforce_org: bool) -> None:
        locale = org.locale if org.locale in FIRST_NAMES and self.chance(0.7) else ""
        first = self.rng.choice(FIRST_NAMES[locale])
        last = self.rng.choice(LAST_NAMES[locale])
        local = f"{first}.{last}".lower().replace(" ", "").replace("ä", "a").replace("ü", "u")
        email = f"{local}{self.rng.randrange(1, 999)}@{org.domain}"
        stage = self.weighted_stage()
        roll = self.rng.random()
        in_hubspot = roll < 0.78
        in_salesforce = roll < 0.55 or roll >= 0.78
        link_by_id = roll < 0.35
        sf_email = email if not self.chance(0.12) else _case_variant(email)
        sf_person = None
        if in_salesforce:
            sf_person = self.salesforce_person(org, in_salesforce_org, first, last, sf_email, stage)
        if in_hubspot:
            self.hubspot_contact(org, in_hubspot_org, first, last, email, stage,
                                 sf_person if link_by_id else None)

    def weighted_stage(self) -> str | None:
        stages, weights = zip(*HS_STAGES, strict=True)
        return self.rng.choices(stages, weights)[0]

    def salesforce_person(
        self, org: _Organisation, has_account: bool, first: str, last: str, email: str,
        stage: str | None,
    ) -> tuple[str, str]:
        """Create a Lead, a Contact, or a converted Lead plus its Contact; return (kind, id)."""
        roll = self.rng.random()
        if has_account and roll < 0.62:
            return "Contact", self.sf_contact(org, first, last, email, stage)
        if has_account and roll < 0.80:
            contact_id = self.sf_contact(org, first, last, email, stage)
            lead_id = self.sf_lead(org, first, last, email, converted_to=contact_id)
            org.converted_lead_ids.append(lead_id)
            # Half the HubSpot links point at the converted lead, not at its contact.
            return ("Lead", lead_id) if self.chance(0.5) else ("Contact", contact_id)
        return "Lead", self.sf_lead(org, first, last, email)

    def sf_contact(
        self, org: _Organisation, first: str, last: str, email: str, stage: str | None
    ) -> str:
        created, modified = self.created_and_modified()
        sf_stage = SF_STAGE_FOR_HS.get(stage or "")
        if self.chance(0.2):  # the teams disagree: that is what crmsync reconciles
            sf_stage = self.rng.choice(CONTACT_LIFECYCLE_STAGES)
        contact_id = self.data.add_salesforce("Contact", {
            "FirstName": first, "LastName": last, "Email": email, "AccountId": org.account_id,
            "Lifecycle_Stage__c": sf_stage,
            "CreatedDate": sf_datetime(created), "LastModifiedDate": sf_datetime(modified),
        })["Id"]
        org.sf_contact_ids.append(contact_id)
        if self.chance(0.05):  # a duplicate lead whose e-mail differs only in case
            self.sf_lead(org, first, last, _case_variant(email))
        return contact_id

    def sf_lead(
        self, org: _Organisation, first: str, last: str, email: str,
        converted_to: str | None = None,
    ) -> str:
        created, modified = self.created_and_modified()
        status = self.rng.choice(("Open - Not Contacted", "Working - Contacted",
                                  "Closed - Not Converted"))
        if org.locale in LOCAL_LEAD_STATUS and self.chance(0.35):
            status = self.rng.choice(LOCAL_LEAD_STATUS[org.locale])
        fields: dict[str, Any] = {
            "FirstName": first, "LastName": last, "Email": email, "Company": org.name,
            "Status": status, "Industry": SF_INDUSTRY[org.industry],
            "NumberOfEmployees": org.employees if self.chance(0.7) else None,
            "Country": org.country,
            "AnnualRevenue": float(org.revenue) if self.chance(0.5) else None,
            "CreatedDate": sf_datetime(created), "LastModifiedDate": sf_datetime(modified),
            "IsDeleted": self.chance(0.02),
        }
        if converted_to is not None:
            fields.update({
                "Status": "Closed - Converted", "IsConverted": True,
                "ConvertedContactId": converted_to, "ConvertedAccountId": org.account_id,
                "ConvertedDate": modified.date().isoformat(), "IsDeleted": False,
            })
        return self.data.add_salesforce("Lead", fields)["Id"]

    def hubspot_contact(
        self, org: _Organisation, has_company: bool, first: str, last: str, email: str,
        stage: str | None, linked: tuple[str, str] | None,
    ) -> None:
        created, modified = self.created_and_modified()
        props: dict[str, Any] = {
            "email": email, "firstname": first, "lastname": last, "lifecyclestage": stage,
            "hs_lead_status": self.rng.choice(LEAD_STATUSES) if self.chance(0.6) else None,
            "createdate": hs_datetime(created), "lastmodifieddate": hs_datetime(modified),
        }
        if linked is not None:
            kind, sf_id = linked
            props["salesforcecontactid" if kind == "Contact" else "salesforceleadid"] = sf_id
        if has_company and org.company_id:
            props["associatedcompanyid"] = org.company_id
        contact = self.data.add_hubspot("contacts", props, archived=self.chance(0.01))
        org.contact_ids.append(contact["id"])
        if has_company and org.company_id:
            self.data.associate("contacts", contact["id"], "companies", org.company_id)

    # ---- deals ----------------------------------------------------------------------------

    def deals(self, org: _Organisation) -> None:
        for _ in range(self.rng.choice((0, 0, 1, 1, 2))):
            if org.company_id:
                self.hubspot_deal(org)
            if org.account_id:
                self.opportunity(org)

    def hubspot_deal(self, org: _Organisation) -> None:
        created, modified = self.created_and_modified()
        stage = self.rng.choice(DEAL_STAGES).value
        deal = self.data.add_hubspot("deals", {
            "dealname": f"{org.name} – {self.rng.choice(('Pilot', 'Renewal', 'Expansion'))}",
            "dealstage": stage, "pipeline": "default",
            "amount": self.rng.randrange(2_000, 250_000, 500),
            "closedate": hs_datetime(self.days_ago(-90, 300)),
            "createdate": hs_datetime(created), "hs_lastmodifieddate": hs_datetime(modified),
        })
        self.data.associate("deals", deal["id"], "companies", str(org.company_id))
        if org.contact_ids:
            self.data.associate("deals", deal["id"], "contacts", self.rng.choice(org.contact_ids))

    def opportunity(self, org: _Organisation) -> None:
        created, modified = self.created_and_modified()
        stage = self.rng.choice(OPPORTUNITY_STAGES)
        opportunity = self.data.add_salesforce("Opportunity", {
            "Name": f"{org.name} – {self.rng.choice(('Pilot', 'Renewal', 'Expansion'))}",
            "AccountId": org.account_id,
            "ContactId": self.rng.choice(org.sf_contact_ids) if org.sf_contact_ids else None,
            "StageName": stage, "IsClosed": stage.startswith("Closed"),
            "IsWon": stage == "Closed Won",
            "Amount": float(self.rng.randrange(2_000, 250_000, 500)),
            "CloseDate": self.days_ago(-90, 300).date().isoformat(),
            "CreatedDate": sf_datetime(created), "LastModifiedDate": sf_datetime(modified),
        })
        for lead_id in org.converted_lead_ids:
            lead = self.data.salesforce["Lead"][lead_id]
            if lead["ConvertedOpportunityId"] is None and self.chance(0.5):
                lead["ConvertedOpportunityId"] = opportunity["Id"]

    # ---- shared timestamps ----------------------------------------------------------------

    def share_timestamps(self) -> None:
        """Give large groups one modified timestamp, as imports and mass updates do."""
        import_moment = self.now - timedelta(days=3, hours=2)
        for object_type, prop in (("contacts", "lastmodifieddate"),
                                  ("companies", "hs_lastmodifieddate")):
            stamp = hs_datetime(import_moment)
            for record in self.data.hubspot[object_type].values():
                if record["properties"]["createdate"] < stamp and self.chance(0.3):
                    record["properties"][prop] = stamp
        mass_update = sf_datetime(self.now - timedelta(days=2, hours=5))
        for records in self.data.salesforce.values():
            for record in records.values():
                if record["LastModifiedDate"] < mass_update and self.chance(0.25):
                    record["SystemModstamp"] = mass_update  # a system job: LastModifiedDate stays
            self.straddle_batch_boundary(list(records.values()))

    def straddle_batch_boundary(self, records: list[dict[str, Any]]) -> None:
        """Make records around query position 2,000 share a SystemModstamp."""
        if len(records) <= SF_BATCH + 50:
            return
        ordered = sorted(records, key=lambda r: (r["SystemModstamp"], r["Id"]))
        stamp = ordered[SF_BATCH - 50]["SystemModstamp"]
        for record in ordered[SF_BATCH - 50 : SF_BATCH + 50]:
            record["SystemModstamp"] = stamp
            record["LastModifiedDate"] = min(record["LastModifiedDate"], stamp)


def _case_variant(email: str) -> str:
    """The same address with a different capitalisation (Anna.Jansen@Acme.nl)."""
    local, _, domain = email.partition("@")
    return ".".join(part.capitalize() for part in local.split(".")) + "@" + domain.capitalize()


def generate_dataset(*, seed: int, organisations: int, now: datetime) -> Dataset:
    """Generate `organisations` organisations and about three persons each, from `seed`.

    Organisations: ~50% in both systems linked by `salesforceaccountid`, ~20% in both linked
    only by domain, ~15% HubSpot only, ~15% Salesforce only. Persons: ~35% in both systems
    linked by HubSpot `salesforcecontactid`/`salesforceleadid` (some pointing at a converted
    lead), ~20% in both linked only by e-mail (12% of those differ in case), the rest in one
    system only.
    """
    gen = _Generator(seed, now)
    for index in range(organisations):
        org = gen.organisation(index + 1)
        roll = gen.rng.random()
        in_hubspot, in_salesforce = roll < 0.85, roll < 0.70 or roll >= 0.85
        if in_salesforce:
            gen.add_account(org)
        if in_hubspot:
            gen.add_company(org, account_link=roll < 0.50)
        for _ in range(gen.rng.choice((1, 2, 3, 3, 4, 5))):
            gen.person(org, in_hubspot, in_salesforce)
        gen.deals(org)
    gen.share_timestamps()
    return gen.data
