"""A record whose identity keys change leaves its old group: the records it used to be grouped
with must be planned again, or they keep a plan made with it. Against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.sandbox import Sandbox
from connector.state import StateStore
from tests.helpers import copy_db, engine_for, rows

SEED = 40
SHARED = "robin.quill@quillworks-industrial.de"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=SEED) as sb:
        yield sb


def fit_account(sandbox: Sandbox) -> dict:
    return next(a for a in sandbox.salesforce_records("Account")
                if str(a.get("ICP_Fit__c")).casefold() == "true" and not a["IsDeleted"])


def test_fixing_an_email_replans_the_records_it_was_linked_with(sandbox, tmp_path, state_location):
    state = state_location
    with engine_for(sandbox, state) as engine:
        assert engine.backfill().status == "ok"
    # one person in two records, tied only by the address: the Salesforce Contact works at
    # an ICP-fit account, the HubSpot contact has no company and takes its fit from there
    account = fit_account(sandbox)
    contact = sandbox.create_salesforce("Contact", {
        "LastName": "Quill", "Email": SHARED, "AccountId": account["Id"],
        "Lifecycle_Stage__c": "Lead"})
    person = sandbox.create_hubspot("contacts", {"email": SHARED, "lastname": "Quill",
                                                 "lifecyclestage": "lead"})
    with engine_for(sandbox, state) as engine:
        assert engine.sync().status == "ok"
    fit = sandbox.hubspot_record("contacts", person["id"])["properties"]
    assert fit.get("crmsync_icp_fit") == "true", fit  # the link took effect

    sandbox.update_salesforce("Contact", contact["Id"],
                              {"Email": "r.quill@quillworks-maritime.de"})  # a typo fixed
    copy = copy_db(state, tmp_path / "copy.db")
    with engine_for(sandbox, state) as engine:
        incremental = engine.sync(dry_run=True)
    with engine_for(sandbox, copy) as engine:
        full = engine.sync(dry_run=True, replan_all=True)
    assert incremental.plan_scope == "changed"
    unlinked = [r for r in rows(full) if r[2] == person["id"]]
    assert unlinked, "the full plan does not touch the unlinked HubSpot contact"
    assert rows(incremental) == rows(full)


def test_the_state_store_marks_dirty_whoever_shared_a_key_the_record_lost(state_location):
    lead = {"attributes": {"type": "Lead"}, "Id": "00Q000000000001", "Email": SHARED}
    other = {"attributes": {"type": "Lead"}, "Id": "00Q000000000002", "Email": SHARED}
    bystander = {"attributes": {"type": "Lead"}, "Id": "00Q000000000003",
                 "Email": "someone.else@quillworks-industrial.de"}
    with StateStore(state_location) as store:
        with store.transaction():
            store.mirror.save_reread("salesforce", "Lead", [(r["Id"], r) for r in
                                                               (lead, other, bystander)], 1)
            store.mirror.clear_dirty()
            store.mirror.save_reread(
                "salesforce", "Lead", [(lead["Id"], {**lead, "Email": "r.quill@quillworks.de"})], 2)
        assert set(store.mirror.dirty_refs()) == {"salesforce:Lead:00Q000000000001",
                                                  "salesforce:Lead:00Q000000000002"}
        assert store.mirror.left_behind == {"salesforce:Lead:00Q000000000002"}
