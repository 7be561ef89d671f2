"""Duplicate records (two or more records of one system linked into one person or
organisation) are reported, by run, in --json and in `crmsync status`; which record's value
wins among them stays the same whatever order the records come in."""

from __future__ import annotations

import json

from connector.core import plan_records
from connector.model import LifecycleStage
from connector.plan import Plan
from connector.reconcile import Duplicate, duplicates
from connector.sandbox import Sandbox
from tests.helpers import hs, person_with, sf
from tests.runs import cli, write_env

SEED = 30
TWIN = "casey.moreno@lantern-robotics.io"
PAIR = "jo.varga@brightmill-foods.co.uk"


def _duplicates_of(records, mapping, today):
    result = plan_records(mapping, records, today)
    return result.reconciled, Plan(result.changes), duplicates(result.reconciled, result.views)


def test_two_leads_with_one_email_are_a_duplicate_linked_by_email(mapping, today):
    _, _, found = _duplicates_of([
        sf("Lead", "00Q1", Email=TWIN, Status="Open - Not Contacted"),
        sf("Lead", "00Q2", Email=TWIN.upper(), Status="Working - Contacted"),
        hs("contacts", "7", email=TWIN),
        sf("Lead", "00Q3", Email="somebody.else@lantern-robotics.io"),
    ], mapping, today)
    assert found == [Duplicate("person", "salesforce",
                               ("salesforce:Lead:00Q1", "salesforce:Lead:00Q2"), ("e-mail",))]


def test_hubspot_records_naming_one_salesforce_record_are_linked_by_crm_id(mapping, today):
    _, _, found = _duplicates_of([
        hs("contacts", "1", salesforcecontactid="0031"),
        hs("contacts", "2", salesforcecontactid="0031"),
        sf("Contact", "0031"),
    ], mapping, today)
    assert found == [Duplicate("person", "hubspot", ("hubspot:contacts:1", "hubspot:contacts:2"),
                               ("CRM id",))]


def test_companies_sharing_a_domain_are_a_duplicate_and_a_converted_lead_is_not(mapping, today):
    _, _, found = _duplicates_of([
        hs("companies", "11", domain="https://www.lantern-robotics.io"),
        hs("companies", "12", domain="lantern-robotics.io"),
        sf("Lead", "00Q1", IsConverted=True, ConvertedContactId="0031",
           Status="Closed - Converted"),
        sf("Contact", "0031", Email=PAIR),
    ], mapping, today)
    assert found == [Duplicate("organization", "hubspot",
                               ("hubspot:companies:11", "hubspot:companies:12"), ("domain",))]


def test_the_winner_among_duplicates_does_not_depend_on_input_order(mapping, today):
    records = [
        sf("Lead", "00Q2", Email=TWIN, Status="Working - Contacted"),
        sf("Contact", "0035", Email=TWIN, Lifecycle_Stage__c="MQL"),
        sf("Lead", "00Q1", Email=TWIN, Status="Working - Contacted"),
        hs("contacts", "9", email=TWIN, lifecyclestage="lead"),
    ]
    outcomes = set()
    for order in (records, records[::-1], records[1:] + records[:1], records[2:] + records[:2]):
        reconciled, plan, found = _duplicates_of(order, mapping, today)
        person = person_with(reconciled, "salesforce:Lead:00Q1")
        assert person.stage.value is LifecycleStage.MQL
        outcomes.add((str(person.stage.provenance.source), tuple(found),
                      tuple((str(c.ref), c.field, c.after) for c in plan.changes)))
    assert len(outcomes) == 1, outcomes
    [(winner, found, _)] = outcomes
    assert winner == "salesforce:Contact:0035"  # three records hold MQL: the first by ref wins
    assert [d.records for d in found] == [("salesforce:Contact:0035", "salesforce:Lead:00Q1",
                                           "salesforce:Lead:00Q2")]


def test_duplicates_reach_the_run_report_json_and_status(tmp_path):
    with Sandbox(seed=SEED) as sandbox:
        first = sandbox.create_salesforce("Lead", {"LastName": "Moreno", "Company": "Lantern",
                                                   "Email": TWIN})
        second = sandbox.create_salesforce("Lead", {"LastName": "Moreno", "Company": "Lantern",
                                                    "Email": TWIN})
        lead = sandbox.create_salesforce("Lead", {"LastName": "Varga", "Company": "Brightmill",
                                                  "Email": PAIR})
        contact = sandbox.create_salesforce("Contact", {"LastName": "Varga", "Email": PAIR})
        env_file = write_env(sandbox, tmp_path)
        state = tmp_path / "state.db"
        backfill = cli("backfill", "--json", cwd=tmp_path, env_file=env_file, state=state)
        assert backfill.returncode in (0, 1), backfill.stderr
        report = json.loads(backfill.stdout)
        groups = {tuple(d["records"]): d for d in report["duplicates"]}
        twins = tuple(sorted(f"salesforce:Lead:{r['Id']}" for r in (first, second)))
        pair = tuple(sorted([f"salesforce:Lead:{lead['Id']}",
                             f"salesforce:Contact:{contact['Id']}"]))
        assert groups[twins] == {"entity": "person", "system": "salesforce",
                                 "records": list(twins), "linked_by": ["e-mail"]}
        assert groups[pair]["linked_by"] == ["e-mail"]
        assert report["duplicate_groups"] == len(report["duplicates"])

        # an incremental run plans none of them, yet status still knows every group
        assert cli("sync", cwd=tmp_path, env_file=env_file, state=state).returncode in (0, 1)
        status = json.loads(cli("status", "--json", cwd=tmp_path, state=state).stdout)
        assert status["duplicates"]["groups"] == len(report["duplicates"])
        listed = {tuple(d["records"]) for d in status["duplicates"]["first"]}
        assert listed <= set(groups) and listed
        text = cli("status", cwd=tmp_path, state=state).stdout
        assert f"duplicate records: {len(report['duplicates'])} group(s)" in text
