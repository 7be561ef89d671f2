"""A run's summary: every change counted by field and transition, from the change spool, with
what a person should look at twice flagged."""

from __future__ import annotations

import sqlite3

from connector.model import Change, System
from connector.state.spool import ChangeSpool
from connector.sync import RunReport
from connector.sync.report import group_rejects, split_reason

HS, SF = System.HUBSPOT, System.SALESFORCE


def change(system, obj, rid, field, before, after, step=0):
    return Change(system, obj, rid, field, before, after, "write_back.x <- rule", "why", step)


def spool_of(changes, results=None) -> ChangeSpool:
    spool = ChangeSpool(sqlite3.connect(":memory:"))
    spool.add(changes)
    if results is not None:
        spool.record_results([(i, status, None, None) for i, status in results])
    return spool


def test_a_clear_then_set_counts_once_as_the_move_it_makes_and_flags_follow_the_values(
        mapping):
    spool = spool_of([
        # HubSpot downgrade: customer cleared, then set to lead (two requests, one move)
        change(HS, "contacts", "1", "lifecyclestage", "customer", "", 0),
        change(HS, "contacts", "1", "lifecyclestage", "", "lead", 1),
        change(HS, "contacts", "2", "lifecyclestage", "customer", "", 0),
        change(HS, "contacts", "2", "lifecyclestage", "", "lead", 1),
        change(HS, "contacts", "3", "lifecyclestage", "lead", "customer"),  # forward
        change(SF, "Contact", "9", "Lifecycle_Stage__c", "Customer", "Lead"),  # one step
        change(HS, "contacts", "1", "crmsync_priority", "fit", "other"),  # a priority move
        change(HS, "contacts", "3", "crmsync_priority", None, "fit"),  # a first priority
        change(HS, "companies", "7", "crmsync_trigger_type", "funding", ""),  # cleared
    ])
    report = RunReport(kind="plan", dry_run=True)
    report.summarise(spool, mapping, sent_only=False)
    summary = report.summary
    moves = {(t["field"], t["before"], t["after"]): (t["changes"], t["flags"], t["steps"])
             for t in summary["transitions"]}
    assert moves == {
        ("lifecyclestage", "customer", "lead"): (2, ["downgrade"], 2),
        ("lifecyclestage", "lead", "customer"): (1, [], 1),
        ("Lifecycle_Stage__c", "Customer", "Lead"): (1, ["downgrade"], 1),
        ("crmsync_priority", "fit", "other"): (1, ["priority"], 1),
        ("crmsync_priority", None, "fit"): (1, [], 1),
        ("crmsync_trigger_type", "funding", None): (1, ["clear"], 1),
    }
    assert summary["flagged"] == {"downgrade": 3, "clear": 1, "priority": 1}
    assert (summary["changes"], summary["two_step"], summary["records"]) == (7, 2, 5)
    assert summary["by_object"] == {"hubspot.contacts": 5, "hubspot.companies": 1,
                                    "salesforce.Contact": 1}


def test_a_run_sums_up_what_it_sent_and_a_dry_run_what_would_apply(mapping):
    changes = [change(HS, "contacts", "1", "lifecyclestage", "customer", "", 0),
               change(HS, "contacts", "1", "lifecyclestage", "", "lead", 1),
               change(HS, "contacts", "2", "crmsync_priority", "fit", "other"),
               change(HS, "contacts", "3", "crmsync_priority", "fit", "other"),
               change(HS, "contacts", "4", "crmsync_priority", "fit", "other")]
    # stopped mid-run: record 4 never sent; record 3 refused
    sent = [(1, "applied"), (2, "applied"), (3, "applied"), (4, "rejected")]
    real = RunReport(kind="sync", dry_run=False)
    real.summarise(spool_of(changes, sent), mapping, sent_only=True)
    assert {(t["field"], t["status"]): t["changes"] for t in real.summary["transitions"]} == {
        ("lifecyclestage", "applied"): 1, ("crmsync_priority", "applied"): 1,
        ("crmsync_priority", "rejected"): 1}
    dry = RunReport(kind="sync", dry_run=True)
    dry.summarise(spool_of(changes, [(i, "applied") for i in range(1, 6)]), mapping,
                  sent_only=True)
    assert dry.summary["by_status"] == {"would_apply": 4}


def test_rejects_group_by_cause_and_keep_the_fix_apart():
    fix = "add it under picklists.salesforce.Lead.Status (default.yaml:78)"
    rows = [{"record": f"salesforce:Lead:{n}", "stage": "read", "field": "Status",
             "reason": f"unknown Lead.Status 'Nurturing' -> {fix}"} for n in range(3)]
    rows += [{"record": "salesforce:Lead:9", "stage": "read", "field": "Status",
              "reason": f"unknown Lead.Status 'A -> B' -> {fix}"},  # a value with the mark
             {"record": "hubspot:contacts:1", "stage": "write", "field": "crmsync_priority",
              "reason": "INVALID_OPTION: 'x' is not an option"}]
    groups = group_rejects(rows)
    assert [(g["cause"], g["fix"], g["count"]) for g in groups] == [
        ("unknown Lead.Status 'Nurturing'", fix, 3),
        ("unknown Lead.Status 'A -> B'", fix, 1),
        ("INVALID_OPTION: 'x' is not an option", None, 1)]
    assert groups[0]["records"] == [f"salesforce:Lead:{n}" for n in range(3)]
    assert split_reason("no fix here") == ("no fix here", None)
