"""Deleted and merged records in the engine: tombstones from `read_deleted` (or on any read page)
mark the mirror row deleted; deleted records neither vote nor receive writes, a merge moves
links to the survivor, and a record read again is revived.

Most tests put exact tombstones on the engine through a thin wrapper around the real adapters,
while the deletion itself happens in the sandbox; the merge test goes through the sandbox's
Salesforce merge and the adapter's own `read_deleted` (queryAll) end to end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connector.sandbox import Sandbox
from connector.systems.base import Tombstone
from tests.helpers import engine_for, wrap

SEED = 40


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=SEED) as sb:
        yield sb


def early_linked_person(sandbox: Sandbox) -> tuple[dict, dict]:
    """A HubSpot contact at subscriber or lead, and the Salesforce Contact it is linked to."""
    for contact in sandbox.hubspot_records("contacts"):
        props = contact["properties"]
        sf_id = props.get("salesforcecontactid")
        if sf_id and props.get("lifecyclestage") in ("subscriber", "lead") and props.get("email"):
            sf_contact = sandbox.salesforce_record("Contact", sf_id)
            if not sf_contact.get("IsDeleted"):
                return contact, sf_contact
    raise AssertionError("the seeded data has no early linked person")


def delete_in_salesforce(sandbox: Sandbox, sobject: str, record_id: str,
                         merged_into: str | None = None) -> Tombstone:
    sandbox.update_salesforce(sobject, record_id, {"IsDeleted": True})
    return Tombstone(record_id, datetime.now(UTC), merged_into)


def mirror_row(engine, ref: str) -> dict:
    row = engine.store.db.execute("SELECT deleted, deleted_at, merged_into FROM mirror "
                                  "WHERE ref = ?", (ref,)).fetchone()
    return dict(zip(("deleted", "deleted_at", "merged_into"), row, strict=True))


def test_a_deleted_duplicate_lead_no_longer_votes_for_the_persons_stage(sandbox,
                                                                         state_location):
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        contact, _ = early_linked_person(sandbox)
        email = contact["properties"]["email"]
        lead = sandbox.create_salesforce("Lead", {"LastName": "Duplicate", "Company": "Dup Inc",
                                                  "Email": email, "Status": "Working - Contacted"})
        _, seen = engine.plan()  # the duplicate is read and mirrored; nothing is written
        assert any(c.record_id == contact["id"] for c in seen.changes)  # it would advance them
        tombstone = delete_in_salesforce(sandbox, "Lead", lead["Id"])
        wrapped = wrap(engine, salesforce={"tombstones": {"Lead": [tombstone]}})
        report = engine.sync()
        row = mirror_row(engine, f"salesforce:Lead:{lead['Id']}")
        deleted_reads = {obj for obj, _ in wrapped["salesforce"].deleted_reads}
    assert report.status in ("ok", "rejects"), report.message
    assert (report.deleted, report.merged) == (1, 0)
    assert row["deleted"] == 1 and row["deleted_at"] and row["merged_into"] is None
    assert not any(c["record_id"] == contact["id"] for c in report.changes)
    assert sandbox.hubspot_record("contacts", contact["id"])["properties"]["lifecyclestage"] \
        == contact["properties"]["lifecyclestage"]
    assert deleted_reads == {"Account", "Lead", "Contact", "Opportunity"}


def test_a_deleted_record_is_never_a_write_target_and_is_revived_when_read_again(sandbox,
                                                                                  state_location):
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        contact, sf_contact = early_linked_person(sandbox)
        tombstone = delete_in_salesforce(sandbox, "Contact", sf_contact["Id"])
        wrap(engine, salesforce={"tombstones": {"Contact": [tombstone]}})
        sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "opportunity"})
        report = engine.sync()
        assert report.deleted == 1
        assert not any(c["record_id"] == sf_contact["Id"] for c in report.changes)
        assert engine.store.ledger.open() == [] or all(
            r.ref != f"salesforce:Contact:{sf_contact['Id']}" for r in engine.store.ledger.open())
        # restored from the recycle bin: read again, it takes part again
        sandbox.update_salesforce("Contact", sf_contact["Id"], {"IsDeleted": False})
        revived = engine.sync()
        row = mirror_row(engine, f"salesforce:Contact:{sf_contact['Id']}")
    assert row["deleted"] == 0
    assert any(c["record_id"] == sf_contact["Id"] and c["after"] == "Opportunity"
               for c in revived.changes)
    assert sandbox.salesforce_record("Contact", sf_contact["Id"])["Lifecycle_Stage__c"] \
        == "Opportunity"


def test_a_merge_moves_stored_links_to_the_survivor(sandbox, tmp_path, state_location):
    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        contact, loser = early_linked_person(sandbox)
        hs_ref, loser_ref = f"hubspot:contacts:{contact['id']}", f"salesforce:Contact:{loser['Id']}"
        with engine.store.transaction():  # a link a person asserted (derived ones aren't kept)
            engine.store.mirror.save_links([(hs_ref, loser_ref)], 0)
        survivor = sandbox.create_salesforce("Contact", {
            "LastName": loser["LastName"], "Email": "kept.address@survivor-example.org",
            "AccountId": loser.get("AccountId"), "Lifecycle_Stage__c": "Lead"})
        survivor_ref = f"salesforce:Contact:{survivor['Id']}"
        sandbox.merge_salesforce("Contact", survivor["Id"], loser["Id"])  # the real reader
        sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "opportunity"})
        report = engine.sync()
        links = engine.store.mirror.link_texts()
        row = mirror_row(engine, loser_ref)
    assert (report.deleted, report.merged) == (0, 1)
    assert row["deleted"] == 1 and row["merged_into"] == survivor["Id"]
    assert any({a, b} == {hs_ref, survivor_ref} for a, b in links)
    assert not any(loser_ref in (a, b) for a, b in links)
    # the survivor is now the person's Salesforce record: it follows the person's stage
    assert sandbox.salesforce_record("Contact", survivor["Id"])["Lifecycle_Stage__c"] \
        == "Opportunity"


def test_tombstones_on_a_read_page_count_and_status_shows_them(sandbox, tmp_path, state_location):
    from connector.reporting import status_data  # noqa: PLC0415

    with engine_for(sandbox, state_location) as engine:
        engine.backfill()
        _, sf_contact = early_linked_person(sandbox)
        tombstone = delete_in_salesforce(sandbox, "Contact", sf_contact["Id"])
        wrapped = wrap(engine)
        inner = wrapped["salesforce"]._inner

        def read_changed(obj, since, fields):
            yield from inner.read_changed(obj, since, fields)
            if obj == "Contact":
                from connector.systems.base import Page  # noqa: PLC0415
                yield Page([], tombstone.deleted_at, [tombstone])

        wrapped["salesforce"].read_changed = read_changed
        report = engine.sync()
        data = status_data(engine.store, 1)
    assert report.deleted == 1
    assert data["runs"][0]["counts"]["deleted"] == 1
    assert data["runs"][0]["counts"]["merged"] == 0
