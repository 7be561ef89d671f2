"""`crmsync demo`: the whole connector on the built-in sandbox, in under a minute.

Starts the sandbox with seeded data, backfills, changes a few records the way people in
marketing and sales would, runs an incremental sync and shows what changed and why. Nothing
leaves 127.0.0.1; the state goes to a local SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from connector.report.data import report_data
from connector.report.html import write_report
from connector.runtime import open_engine
from connector.sandbox import Sandbox
from connector.settings import Settings
from connector.sync import Progress, RunReport

__all__ = ["DemoEdit", "run_demo"]


@dataclass(frozen=True)
class DemoEdit:
    """One change a person makes in a CRM between two sync runs, and what it should cause."""

    who: str
    what: str
    expect: str


def run_demo(
    *,
    seed: int = 200,
    state_path: Path = Path("crmsync-demo.db"),
    say: Callable[[str], None] = print,
    show: Callable[[RunReport, bool], None] | None = None,
    progress: Progress | None = None,
    report_path: Path | None = None,
) -> tuple[RunReport, RunReport, list[DemoEdit]]:
    """Backfill, edit, sync, and write the HTML report of the sync to `report_path` (default:
    the state DB's path ending in .html). Returns both reports and the edits made between."""
    report_path = report_path or state_path.with_suffix(".html")
    for suffix in ("", "-wal", "-shm"):  # a fresh demo every time
        Path(f"{state_path}{suffix}").unlink(missing_ok=True)
    show = show or (lambda report, changes: None)
    with Sandbox(seed=seed) as sandbox:
        say(f"Sandbox: HubSpot + Salesforce emulator on {sandbox.base_url} with {seed} "
            f"organisations and about {3 * seed} people (seed {seed}).")
        settings = Settings.from_env_map(sandbox.settings_env(), state_path=state_path)
        with open_engine(settings=settings, state_path=state_path, progress=progress) as engine:
            say("\n1. Backfill: read everything from both systems, reconcile, write back.")
            backfill = engine.backfill()
            show(backfill, False)
            say("\n2. People change things in the CRMs:")
            edits = make_edits(sandbox, date.today())
            for edit in edits:
                say(f"   - {edit.who}: {edit.what}\n       expected: {edit.expect}")
            say("\n3. Incremental sync: read what changed since the backfill (the edits, and the "
                "backfill's own writes, which must not echo back), write only what differs.")
            sync = engine.sync()
            show(sync, True)
            again = engine.sync()
            say(f"\n4. One more sync: {again.planned} change(s) planned, {again.applied} "
                "written (our own writes do not echo back).")
            written = write_report(report_data(engine.store, engine.mapping,
                                               run_id=sync.run_id), report_path)
    say(f"\nState kept in {state_path}: try `crmsync status --state {state_path}` and "
        f"`crmsync rejects --state {state_path}`.")
    say(f"\n5. The report of the sync in step 3 ({written / 1_000_000:.1f} MB, charts of the "
        f"funnel, agreement, changes, what is stuck and the run history); open it in a "
        f"browser:\n{report_path}")
    return backfill, sync, edits


def make_edits(sandbox: Sandbox, today: date) -> list[DemoEdit]:
    """A few edits that show stage, trigger, localised label and reject handling."""
    edits: list[DemoEdit] = []
    contact = _first(sandbox.hubspot_records("contacts"),
                     lambda r: _prop(r, "lifecyclestage") == "lead" and _prop(r, "email"))
    if contact:
        sandbox.update_hubspot("contacts", contact["id"],
                               {"lifecyclestage": "salesqualifiedlead"})
        edits.append(DemoEdit(
            "Marketing (HubSpot)",
            f"moves contact {contact['id']} ({_prop(contact, 'email')}) to Sales Qualified Lead",
            "the linked Salesforce record follows to SQL, if it has one",
        ))
    companies = sandbox.hubspot_records("companies")
    linked_accounts = {_prop(c, "salesforceaccountid") for c in companies}
    account = _first(sandbox.salesforce_records("Account"),
                     lambda r: r["Id"] in linked_accounts and _fits_default_icp(r)
                     and not r.get("Funding_Announced_Date__c")
                     and not r.get("Cost_Savings_Announced_Date__c"))
    if account:
        sandbox.update_salesforce("Account", account["Id"],
                                  {"Funding_Announced_Date__c": today.isoformat()})
        edits.append(DemoEdit(
            "Sales (Salesforce)",
            f"records a funding round today for account {account['Id']} ({account.get('Name')})",
            "the account fits the ICP: Buying_Signal__c in Salesforce and crmsync_trigger_active "
            "on the linked HubSpot company; priority trigger_fit for the company and its people",
        ))
    early = {"subscriber", "lead", "marketingqualifiedlead"}
    early_leads = {_prop(c, "salesforceleadid") for c in sandbox.hubspot_records("contacts")
                   if _prop(c, "lifecyclestage") in early}
    leads = sorted((r for r in sandbox.salesforce_records("Lead") if not r.get("IsConverted")),
                   key=lambda r: r["Id"] not in early_leads)
    if leads:
        sandbox.update_salesforce("Lead", leads[0]["Id"], {"Status": "Salgskvalifisert lead"})
        edits.append(DemoEdit(
            "A Norwegian sales rep (Salesforce)",
            f"sets lead {leads[0]['Id']} to 'Salgskvalifisert lead'",
            "read through the Norwegian label pack as SQL; the linked HubSpot contact follows",
        ))
    if len(leads) > 1:
        sandbox.update_salesforce("Lead", leads[1]["Id"], {"Status": "Nurturing"})
        edits.append(DemoEdit(
            "An admin (Salesforce)",
            f"adds a new status 'Nurturing' and uses it on lead {leads[1]['Id']}",
            "the lead is rejected with the reason (no mapping for 'Nurturing'); the rest goes on",
        ))
    return edits


def _fits_default_icp(account: dict[str, Any]) -> bool:
    """The shipped ICP, restated for picking a demo record (the sync decides for real)."""
    return (
        account.get("Industry") in {"Technology", "Finance", "Banking"}
        and 50 <= (account.get("NumberOfEmployees") or 0) <= 5000
        and (account.get("AnnualRevenue") or 0) >= 5_000_000
        and account.get("BillingCountry") in {"Netherlands", "Belgium", "Norway", "Finland",
                                              "Sweden", "Denmark", "Germany", "United Kingdom"}
    )


def _first(records: list[dict[str, Any]], wanted: Callable[[dict[str, Any]], Any]):
    return next((r for r in records if wanted(r)), None)


def _prop(record: dict[str, Any], name: str) -> Any:
    return (record.get("properties") or {}).get(name)


def utc_now() -> datetime:
    return datetime.now(UTC)
