"""One person's story through crmsync, for `explain` and `history` tests: a backfill, an
edit in HubSpot, a dry-run sync, a real sync, each run through the real CLI against the
sandbox. What each run changed is taken from the sandbox (its records before and after),
never from crmsync's own state, so the tests compare what a person sees with what happened.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.catalog import MODIFIED_TIME_FIELDS
from connector.sandbox import Sandbox
from tests.helpers import copy_db
from tests.runs import cli, write_env

SEED = 30
ROLE_ADDRESS = "info@harbourlight-analytics.com"  # a shared inbox: never links two people
EARLY = {"subscriber", "lead", "marketingqualifiedlead"}
VOLATILE = {name for names in MODIFIED_TIME_FIELDS.values() for name in names}

Values = dict[str, dict[str, Any]]  # ref -> field -> value


@dataclass
class Story:
    sandbox: Sandbox
    folder: Path
    env_file: Path
    pending: Path  # state DB after backfill, edit and `sync --dry-run`
    synced: Path  # ... and then a real `sync`
    hubspot_ref: str  # the edited HubSpot contact, tied to its Salesforce Contact by e-mail
    salesforce_ref: str
    email: str
    company_ref: str  # the HubSpot contact's company
    company_domain: str
    account_id: str | None  # the Salesforce Account id the company holds, if any
    role_leads: list[str]  # two leads sharing ROLE_ADDRESS
    nurturing_lead: str  # a lead created after the backfill, with a Status not mapped
    backfill: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    sync: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)

    def run(self, *args: str, state: Path | None = None) -> subprocess.CompletedProcess:
        """`crmsync ARGS --env-file ... --state ...`, as a person runs it (stdout a pipe)."""
        return cli(*args, cwd=self.folder, env_file=self.env_file, state=state)

    def copy_of(self, db: Path, name: str) -> Path:
        return copy_db(db, self.folder / name)


@contextmanager
def story(folder: Path) -> Iterator[Story]:
    with Sandbox(seed=SEED) as sandbox:
        env_file = write_env(sandbox, folder)
        state = folder / "state.db"
        role_leads = [
            "salesforce:Lead:" + sandbox.create_salesforce("Lead", {
                "LastName": name, "Company": "Harbourlight Analytics", "Email": ROLE_ADDRESS,
                "Status": "Open - Not Contacted"})["Id"]
            for name in ("Inbox", "Desk")]
        before = _values(sandbox)
        _ok(cli("backfill", cwd=folder, env_file=env_file, state=state))
        backfilled = _values(sandbox)
        backfill = _differences(before, backfilled)
        contact, salesforce_contact = _person_to_edit(sandbox, backfill)
        sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "salesqualifiedlead"})
        nurturing = sandbox.create_salesforce("Lead", {
            "LastName": "Virtanen", "Company": "Harbourlight Analytics", "Status": "Nurturing",
            "Email": "aino.virtanen@harbourlight-analytics.com"})
        edited = _values(sandbox)
        _ok(cli("sync", "--dry-run", cwd=folder, env_file=env_file, state=state))
        pending = copy_db(state, folder / "pending.db")
        _ok(cli("sync", cwd=folder, env_file=env_file, state=state))
        synced = copy_db(state, folder / "synced.db")
        company = sandbox.hubspot_record("companies",
                                         contact["properties"]["associatedcompanyid"])
        yield Story(
            sandbox=sandbox, folder=folder, env_file=env_file, pending=pending, synced=synced,
            hubspot_ref=f"hubspot:contacts:{contact['id']}",
            salesforce_ref=f"salesforce:Contact:{salesforce_contact['Id']}",
            email=contact["properties"]["email"],
            company_ref=f"hubspot:companies:{company['id']}",
            company_domain=company["properties"]["domain"],
            account_id=company["properties"].get("salesforceaccountid"),
            role_leads=sorted(role_leads),
            nurturing_lead=f"salesforce:Lead:{nurturing['Id']}",
            backfill=backfill, sync=_differences(edited, _values(sandbox)),
        )
        shutil.rmtree(folder, ignore_errors=True)


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode in (0, 1), result.stderr[-2000:]


def _person_to_edit(sandbox: Sandbox, backfill: dict) -> tuple[dict, dict]:
    """A HubSpot contact before SQL, tied to a Salesforce Contact before SQL by e-mail only
    (no Salesforce id on it), whose two records the backfill both changed."""
    by_email = {(c.get("Email") or "").casefold(): c for c in sandbox.salesforce_records("Contact")}
    for contact in sandbox.hubspot_records("contacts"):
        props = contact["properties"]
        other = by_email.get((props.get("email") or "").casefold())
        if (other is None or props.get("salesforcecontactid") or props.get("salesforceleadid")
                or props.get("lifecyclestage") not in EARLY
                or other.get("Lifecycle_Stage__c") not in ("Subscriber", "Lead", "MQL")
                or not props.get("associatedcompanyid")):
            continue
        if f"hubspot:contacts:{contact['id']}" in backfill \
                and f"salesforce:Contact:{other['Id']}" in backfill:
            return contact, other
    raise AssertionError("the seeded data holds no person to edit")


def _values(sandbox: Sandbox) -> Values:
    out: Values = {}
    for obj in ("contacts", "companies"):
        for record in sandbox.hubspot_records(obj):
            out[f"hubspot:{obj}:{record['id']}"] = dict(record["properties"])
    for obj in ("Lead", "Contact", "Account"):
        for record in sandbox.salesforce_records(obj):
            out[f"salesforce:{obj}:{record['Id']}"] = dict(record)
    return out


def _differences(before: Values, after: Values) -> dict[str, dict[str, tuple[Any, Any]]]:
    """{ref: {field: (before, after)}} for every field that changed, bar modification times."""
    changed = {}
    for ref, values in after.items():
        old = before.get(ref, {})
        fields = {name: (old.get(name), value) for name, value in values.items()
                  if name not in VOLATILE and old.get(name) != value}
        if fields:
            changed[ref] = fields
    return changed
