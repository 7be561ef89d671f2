"""Record builders for core tests: raw dicts shaped as the CRM APIs return them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connector.core import plan_records
from connector.plan import Plan
from connector.runtime import open_engine
from connector.settings import Settings
from connector.state import StateStore


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
def engine_for(sandbox, state: Path, mapping=None, **overrides) -> Iterator:
    """An engine over the sandbox and the state DB at `state`, built by `open_engine` as the
    `crmsync` command builds one; `overrides` are settings by name."""
    settings = Settings.from_env_map(sandbox.settings_env(), state_path=state,
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
