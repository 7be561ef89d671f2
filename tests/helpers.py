"""Helpers for tests: records shaped as the CRM APIs return them, engines over the sandbox,
state DB copies, and the fixed 'today' the core tests plan on."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.core import plan_records
from connector.plan import Plan
from connector.runtime import open_engine
from connector.settings import Settings
from connector.state import StateStore
from connector.systems.base import Page, Tombstone

TODAY = date(2026, 11, 23)


def hs(object_type: str, record_id: str, **properties: Any) -> tuple[str, str, dict]:
    return ("hubspot", object_type, {"id": record_id, "properties": properties})


def hs_deal(record_id: str, stage: str, contacts=(), companies=()) -> tuple[str, str, dict]:
    return (
        "hubspot",
        "deals",
        {
            "id": record_id,
            "properties": {"dealstage": stage},
            "associations": {"contacts": list(contacts), "companies": list(companies)},
        },
    )


def sf(object_type: str, record_id: str, **fields: Any) -> tuple[str, str, dict]:
    return ("salesforce", object_type, {"attributes": {"type": object_type}, "Id": record_id,
                                        **fields})


def run_core(mapping, records, today, links=()):
    """normalise -> reconcile -> plan over raw records; returns (reconciled, plan, rejections)."""
    result = plan_records(mapping, records, today, links)
    return result.reconciled, Plan(result.changes), result.rejections


def person_with(reconciled, ref: str):
    return next(p for p in reconciled.persons if ref in {str(r) for r in p.refs})


def org_with(reconciled, ref: str):
    return next(o for o in reconciled.organizations if ref in {str(r) for r in o.refs})


def changes_to(plan, ref: str):
    return {(c.field, c.step): (c.before, c.after) for c in plan.changes if str(c.ref) == ref}


def hold_lock(path, ready, release, seconds: float = 30) -> None:
    """Process target: take the run lock, signal `ready`, keep it until `release` is set."""
    store = StateStore(path)
    store.lock.acquire("crmsync sync")
    ready.set()
    release.wait(seconds)
    store.lock.release()


# --- engines over a sandbox (appended: the wiring, as `crmsync` builds it) ------------------

# Backoff short enough for the sandbox's faults to cost milliseconds.
FAST_RETRIES = {"retry_initial_wait_seconds": 0.01, "retry_max_wait_seconds": 0.05}


@contextmanager
def engine_for(sandbox, state: Path | str, mapping=None, **overrides) -> Iterator:
    """An engine over the sandbox and the state DB at `state` (a path, or a PostgreSQL URL:
    tests/state_backends.py), built by `open_engine` as the `crmsync` command builds one;
    `overrides` are settings by name."""
    settings = Settings.from_env_map(sandbox.settings_env(), state_url=str(state),
                                     **{**FAST_RETRIES, **overrides})
    with open_engine(settings=settings, state_path=state, mapping=mapping) as engine:
        yield engine


def linked_early_contact(sandbox) -> dict:
    """A HubSpot contact linked to a Salesforce Contact and still before SQL."""
    return next(c for c in sandbox.hubspot_records("contacts")
                if c["properties"].get("salesforcecontactid")
                and c["properties"].get("lifecyclestage") in ("subscriber", "lead",
                                                              "marketingqualifiedlead"))


def written(sandbox) -> int:
    """Records the sandbox has had written to it, both systems."""
    return sum(sandbox.counters()["records_written"].values())


def rows(report) -> list[tuple]:
    return [(r["system"], r["object_type"], r["record_id"], r["field"], r["step"], r["after"])
            for r in report.changes]


def copy_db(source: Path | str, target: Path) -> Path | str:
    """A copy of a state store: the SQLite file at `target`, or, for a PostgreSQL tenant,
    its rows under another tenant (whose location is returned)."""
    if str(source).startswith("postgresql:"):
        from tests.state_backends import copy_tenant  # noqa: PLC0415

        return copy_tenant(str(source), Path(target).stem)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def edit_across_systems(sandbox) -> None:
    """Edits whose effects reach records that did not change themselves."""
    contact = linked_early_contact(sandbox)  # -> its Salesforce Contact's stage
    sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "salesqualifiedlead"})
    companies = {c["properties"].get("salesforceaccountid"): c
                 for c in sandbox.hubspot_records("companies")}
    account = next(a for a in sandbox.salesforce_records("Account")
                   if a["Id"] in companies and not a.get("Funding_Announced_Date__c"))
    funded = (date.today() - timedelta(days=3)).isoformat()  # -> the HubSpot company's flags
    sandbox.update_salesforce("Account", account["Id"], {"Funding_Announced_Date__c": funded})


# --- adapters with hooks (appended: shared by the hardening and deletion tests) -------------


class Wrapped:
    """A sandbox-backed adapter with hooks: `on_write` runs before each write batch, and
    `read_deleted` yields exactly the given tombstones instead of asking the CRM, so a test
    says what was deleted and when."""

    def __init__(self, inner: Any, on_write: Callable[[str, list], None] | None = None,
                 tombstones: dict[str, list[Tombstone]] | None = None) -> None:
        self._inner = inner
        self.system = inner.system
        self.on_write = on_write
        self.tombstones = tombstones or {}
        self.deleted_reads: list[tuple[str, datetime | None]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, object_type, updates, *, confirm_fields=()):
        if self.on_write is not None:
            self.on_write(object_type, list(updates))
        return self._inner.write(object_type, updates, confirm_fields=confirm_fields)

    def read_deleted(self, object_type, since):
        self.deleted_reads.append((object_type, since))
        found = self.tombstones.pop(object_type, [])
        if found:
            newest = max((t.deleted_at for t in found if t.deleted_at), default=None)
            yield Page(records=[], max_modified=newest, tombstones=found)


def wrap(engine, **hooks) -> dict[str, Wrapped]:
    """Put a `Wrapped` around each of the engine's adapters; `hooks` by system, e.g.
    `hubspot={"on_write": f}`."""
    wrapped = {system: Wrapped(adapter, **hooks.get(system, {}))
               for system, adapter in engine.adapters.items()}
    engine.adapters = wrapped
    return wrapped


# --- sandbox datasets (appended: a fixture's data, used beside it by the model tests) --------


MANY = 150


def inline_fixture() -> dict:
    """150 contacts and 60 companies; deal 900001 has every contact (more than the 100 a
    record inlines) and company 500001, 900002 only that company, 900003 nothing, 900004 all
    60 companies (61 rows with the primary one's extra row)."""
    contacts = [{"id": str(100001 + n), "properties": {"email": f"p{n}@many.example"}}
                for n in range(MANY)]
    companies = [{"id": str(500001 + n), "properties": {"name": f"Org {n}"}} for n in range(60)]
    deals = [{"id": str(900001 + n), "properties": {"dealname": f"Deal {n}"}} for n in range(4)]
    return {"hubspot": {
        "contacts": contacts, "companies": companies, "deals": deals,
        "associations": {
            "deals/contacts": [["900001", c["id"]] for c in contacts],
            "deals/companies": [["900001", "500001"], ["900002", "500001"],
                                *(["900004", c["id"]] for c in companies)],
        },
    }}
