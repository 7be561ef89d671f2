"""Edits people make between two scheduled runs, applied inside the sandbox process.

A fixed, small delta (a quarter of an hour of CRM activity, not a share of the portal): the
incremental run reads it, and the quiet run after it must still fit every object's re-read
overlap into one page.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

__all__ = ["make_edits"]

EARLY_STAGES = ("subscriber", "lead", "marketingqualifiedlead")


def make_edits(sandbox: Any, persons: int, seed: int = 7) -> int:
    """Advance `persons` people's stage (half in each CRM) and give a few accounts a funding
    round today; returns how many records were edited."""
    rng = random.Random(seed)
    half = max(1, persons // 2)
    contacts = [c for c in sandbox.hubspot_records("contacts")
                if (c["properties"].get("lifecyclestage") or "") in EARLY_STAGES]
    leads = [r for r in sandbox.salesforce_records("Lead")
             if not r.get("IsConverted") and not r.get("IsDeleted")]
    accounts = [a for a in sandbox.salesforce_records("Account")
                if not a.get("Funding_Announced_Date__c")]
    edited = 0
    for contact in rng.sample(contacts, min(half, len(contacts))):
        sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "salesqualifiedlead"})
        edited += 1
    for lead in rng.sample(leads, min(half, len(leads))):
        sandbox.update_salesforce("Lead", lead["Id"], {"Status": "Working - Contacted"})
        edited += 1
    today = date.today().isoformat()
    for account in rng.sample(accounts, min(max(1, persons // 10), len(accounts))):
        sandbox.update_salesforce("Account", account["Id"], {"Funding_Announced_Date__c": today})
        edited += 1
    return edited
