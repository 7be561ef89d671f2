"""A busy CRM: a seeded background writer that edits, creates, deletes, merges and associates
records in both systems while a client reads them.

Real portals and orgs never hold still during a sync: users, workflows, flows and other
integrations change records between two pages of one read. `Churn` does that at a steady,
configurable rate, deterministically for a given seed (the *sequence* of actions is seeded; when
each lands relative to a client's requests depends on timing, which is the point).

Each action is what a person or another integration would do, through the sandbox's own
"user" operations (no validation, modified times bumped as the CRMs do):

- edit a mapped field (a picklist value the CRM offers) or an unmapped one (a name);
- create a person;
- delete (HubSpot: archive) a person or a deal;
- merge two persons (HubSpot contact merge; Salesforce Lead merge: the loser is deleted with
  `MasterRecordId`);
- associate a HubSpot contact with a deal.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector.sandbox.schema import HUBSPOT_PROPERTIES, SALESFORCE_FIELDS

if TYPE_CHECKING:
    from connector.sandbox._sandbox import Sandbox

__all__ = ["Churn", "ChurnMix", "parse_rate"]

# Fields people edit, per object: (field, values). Mapped picklists take the CRM's own options;
# the names are unmapped for the stage logic and only move the modified time.
_HUBSPOT_EDITS = {
    "contacts": ("lifecyclestage", "hs_lead_status", "firstname"),
    "companies": ("industry", "name"),
    "deals": ("dealstage", "dealname"),
}
_SALESFORCE_EDITS = {
    "Lead": ("Status", "FirstName"),
    "Contact": ("Lifecycle_Stage__c", "FirstName"),
    "Account": ("Industry", "Name"),
    "Opportunity": ("StageName", "Name"),
}


@dataclass(frozen=True)
class ChurnMix:
    """Relative weights of the kinds of change; edits dominate, as in a real CRM."""

    edit: int = 70
    create: int = 10
    delete: int = 8
    merge: int = 6
    associate: int = 6


def parse_rate(text: str) -> float:
    """`20/s`, `20`, `300/min` -> changes per second."""
    value, _, unit = text.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}.get(unit.strip())
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if per is None or not rate > 0:
        raise ValueError(f"churn rate {text!r}: expected a positive number per s, min or h, "
                         "e.g. 20/s")
    return rate / per


class Churn:
    """Changes records of `sandbox` at `rate` per second on a thread, until `stop()`.

    Use as a context manager, or call `step()` yourself for an exact number of changes.
    `counts` tells what was done (e.g. `hubspot.delete`: 3).
    """

    def __init__(self, sandbox: Sandbox, rate: float, *, seed: int = 0,
                 mix: ChurnMix | None = None) -> None:
        self.sandbox = sandbox
        self.rate = rate
        self.random = random.Random(seed)
        self.mix = mix or ChurnMix()
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial = 0

    def __enter__(self) -> Churn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sandbox-churn", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        interval = 1.0 / self.rate
        while not self._stop.wait(interval):
            self.step()

    def step(self) -> str | None:
        """Make one change; returns what it was (`system.kind`), or None if nothing fitted."""
        kinds = [k for k in ("edit", "create", "delete", "merge", "associate")
                 for _ in range(getattr(self.mix, k))]
        kind = self.random.choice(kinds)
        system = self.random.choice(("hubspot", "salesforce"))
        action: Callable[[], bool] = getattr(self, f"_{system}_{kind}", lambda: False)
        try:
            done = action()
        except KeyError:  # the record went away between choosing and changing it
            done = False
        if not done:
            return None
        name = f"{system}.{kind}"
        self.counts[name] += 1
        return name

    # ---- HubSpot -------------------------------------------------------------------------

    def _hubspot_ids(self, object_type: str) -> list[str]:
        return [r["id"] for r in self.sandbox.hubspot_records(object_type)
                if not r.get("archived")]

    def _hubspot_edit(self) -> bool:
        object_type = self.random.choice(tuple(_HUBSPOT_EDITS))
        ids = self._hubspot_ids(object_type)
        if not ids:
            return False
        name = self.random.choice(_HUBSPOT_EDITS[object_type])
        prop = HUBSPOT_PROPERTIES[object_type].get(name)
        value: Any = (self.random.choice(prop.options).value if prop is not None and prop.options
                      else self._text())
        self.sandbox.update_hubspot(object_type, self.random.choice(ids), {name: value})
        return True

    def _hubspot_create(self) -> bool:
        tag = self._text()
        self.sandbox.create_hubspot("contacts", {
            "email": f"{tag.lower()}@churn-{self.random.randrange(50)}.example-corp.com",
            "firstname": tag, "lastname": "Churn", "lifecyclestage": "lead"})
        return True

    def _hubspot_delete(self) -> bool:
        object_type = self.random.choice(("contacts", "deals"))
        ids = self._hubspot_ids(object_type)
        if len(ids) < 2:
            return False
        self.sandbox.delete_hubspot(object_type, self.random.choice(ids))
        return True

    def _hubspot_merge(self) -> bool:
        ids = self._hubspot_ids("contacts")
        if len(ids) < 2:
            return False
        survivor, loser = self.random.sample(ids, 2)
        self.sandbox.merge_hubspot("contacts", survivor, loser)
        return True

    def _hubspot_associate(self) -> bool:
        contacts, deals = self._hubspot_ids("contacts"), self._hubspot_ids("deals")
        if not contacts or not deals:
            return False
        self.sandbox.associate_hubspot("deals", self.random.choice(deals),
                                       "contacts", self.random.choice(contacts))
        return True

    # ---- Salesforce ----------------------------------------------------------------------

    def _salesforce_ids(self, sobject: str) -> list[str]:
        return [r["Id"] for r in self.sandbox.salesforce_records(sobject)
                if not r.get("IsDeleted") and not r.get("IsConverted")]

    def _salesforce_edit(self) -> bool:
        sobject = self.random.choice(tuple(_SALESFORCE_EDITS))
        ids = self._salesforce_ids(sobject)
        if not ids:
            return False
        name = self.random.choice(_SALESFORCE_EDITS[sobject])
        spec = SALESFORCE_FIELDS[sobject].get(name)
        options = [o.value for o in spec.picklist] if spec is not None else []
        if name == "Status":  # converting a lead takes the convert API, not an edit
            options = [o for o in options if o != "Closed - Converted"]
        value = self.random.choice(options) if options else self._text()
        self.sandbox.update_salesforce(sobject, self.random.choice(ids), {name: value})
        return True

    def _salesforce_create(self) -> bool:
        tag = self._text()
        self.sandbox.create_salesforce("Lead", {
            "FirstName": tag, "LastName": "Churn", "Company": f"Churn {tag}",
            "Email": f"{tag.lower()}@churn-{self.random.randrange(50)}.example-corp.com",
            "Status": "Open - Not Contacted"})
        return True

    def _salesforce_delete(self) -> bool:
        sobject = self.random.choice(("Lead", "Opportunity"))
        ids = self._salesforce_ids(sobject)
        if len(ids) < 2:
            return False
        self.sandbox.delete_salesforce(sobject, self.random.choice(ids))
        return True

    def _salesforce_merge(self) -> bool:
        ids = self._salesforce_ids("Lead")
        if len(ids) < 2:
            return False
        master, loser = self.random.sample(ids, 2)
        self.sandbox.merge_salesforce("Lead", master, loser)
        return True

    def _text(self) -> str:
        self._serial += 1
        return f"Churn{self.random.randrange(10**6):06d}x{self._serial}"
