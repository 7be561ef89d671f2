"""The report's numbers, pure: hand-made records with counts worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from connector.core import plan_records
from connector.report import numbers
from connector.report.data import _fix_for, _ranker
from connector.report.numbers import AuditChange
from tests.helpers import TODAY, hs, sf

FUNDED = (TODAY - timedelta(days=10)).isoformat()
SAVINGS_LONG_AGO = (TODAY - timedelta(days=800)).isoformat()

# A: HubSpot lead + Salesforce Contact at SQL (linked by id), and a converted lead of that
# Contact; B: a HubSpot customer only; C: a Salesforce lead at MQL only. Account X fits the
# ICP and has had funding 10 days ago; company 9 is in no home market.
RECORDS = [
    hs("contacts", "1", email="a@acme.io", lifecyclestage="lead", salesforcecontactid="003A"),
    hs("contacts", "2", email="b@beta.io", lifecyclestage="customer"),
    sf("Contact", "003A", Email="a@acme.io", Lifecycle_Stage__c="SQL", AccountId="001X"),
    sf("Lead", "00Q1", Email="c@gamma.io", Status="Working - Contacted"),
    sf("Lead", "00Q2", Email="a@acme.io", Status="Closed - Converted", IsConverted=True,
       ConvertedContactId="003A", ConvertedAccountId="001X"),
    sf("Account", "001X", Name="Acme", Website="acme.io", Industry="Technology",
       NumberOfEmployees=200, BillingCountry="Netherlands", AnnualRevenue=10_000_000,
       Funding_Announced_Date__c=FUNDED, Cost_Savings_Announced_Date__c=SAVINGS_LONG_AGO),
    hs("companies", "9", name="Nine", domain="nine.example.org", country="US"),
]


@pytest.fixture
def rows(mapping):
    core = plan_records(mapping, RECORDS, TODAY)
    return numbers.tally_rows(core.reconciled, core.views, TODAY)


def store_like_counts(rows):
    """What the state DB's GROUP BY queries give, done by hand over the rows."""
    stage_counts: dict[tuple[str, str | None], int] = {}
    for row in rows:
        if row.kind == "person" and row.counted:
            stage_counts[row.system, row.stage] = stage_counts.get((row.system, row.stage), 0) + 1
    entities = {"person": {}, "organization": {}}
    for row in rows:
        if row.ref == row.entity:
            key = (row.entity_stage, row.fit, row.priority, row.triggers)
            entities[row.kind][key] = entities[row.kind].get(key, 0) + 1
    return ([(s, st, n) for (s, st), n in stage_counts.items()],
            [(*key, n) for key, n in entities["person"].items()],
            [(*key, n) for key, n in entities["organization"].items()])


def test_each_record_is_tallied_with_its_own_stage_and_its_entitys_values(rows):
    by_ref = {row.ref: row for row in rows}
    assert set(by_ref) == {"hubspot:contacts:1", "hubspot:contacts:2", "salesforce:Contact:003A",
                           "salesforce:Lead:00Q1", "salesforce:Lead:00Q2",
                           "salesforce:Account:001X", "hubspot:companies:9"}
    a = [by_ref[r] for r in ("hubspot:contacts:1", "salesforce:Contact:003A",
                             "salesforce:Lead:00Q2")]
    assert [r.stage for r in a] == ["lead", "sql", None]  # the converted lead names none
    assert [r.counted for r in a] == [True, True, False]
    assert {r.entity for r in a} == {a[0].entity}  # one person
    assert {(r.entity_stage, r.fit, r.priority) for r in a} == {("sql", True, "trigger_fit")}
    account = by_ref["salesforce:Account:001X"]
    assert (account.fit, account.priority, account.triggers) == (True, "trigger_fit", "funding")
    assert by_ref["hubspot:companies:9"].fit is False


def test_totals_are_counted_as_by_hand(rows):
    stage_counts, people, orgs = store_like_counts(rows)
    systems = numbers.system_totals(stage_counts, [("lead", "sql", 1)])
    assert systems["funnel"] == {"hubspot": {"lead": 1, "customer": 1},
                                 "salesforce": {"sql": 1, "mql": 1}}
    entities = numbers.entity_totals(people, orgs)
    assert entities["people"] == {"total": 3,
                                  "reconciled": {"sql": 1, "customer": 1, "mql": 1},
                                  "priority": {"trigger_fit": 1, "nonfit_lead": 2}}
    assert entities["organizations"] == {"total": 2, "fit": 1, "not_fit": 1, "unknown_fit": 0,
                                         "triggers": {"funding": 1},
                                         "priority": {"trigger_fit": 1, "other": 1}}


def test_funnel_lists_every_stage_in_funnel_order_per_side():
    shown = numbers.funnel({"funnel": {"hubspot": {"lead": 2, "none": 1}}},
                           {"funnel": {"hubspot": {"sql": 2, "none": 1},
                                       "salesforce": {"mql": 1}}},
                           None, {"sql": 2})
    assert shown["stages"] == ["subscriber", "lead", "mql", "sql", "opportunity", "customer",
                               "evangelist", "other", "disqualified", "none"]
    assert shown["before"]["hubspot"]["lead"] == 2 and shown["before"]["hubspot"]["sql"] == 0
    assert shown["before"]["salesforce"] == dict.fromkeys(shown["stages"], 0)
    assert shown["before"]["reconciled"] is None  # no run before: unknown, not zero
    assert shown["after"]["reconciled"]["sql"] == 2
    assert list(shown["after"]["hubspot"]) == shown["stages"]
    assert numbers.funnel(None, None, None, None) == {"stages": shown["stages"],
                                                      "before": None, "after": None}


def test_agreement_matrix_totals_and_diagonal():
    cells = [["lead", "lead", 3], ["lead", "sql", 2], ["none", "disqualified", 1],
             ["customer", "customer", 4]]
    matrix = numbers.agreement(cells)
    stages = matrix["stages"]
    assert (matrix["linked_people"], matrix["agreeing"]) == (10, 7)
    assert sum(map(sum, matrix["matrix"])) == 10
    assert matrix["matrix"][stages.index("lead")][stages.index("sql")] == 2
    assert matrix["matrix"][stages.index("none")][stages.index("disqualified")] == 1
    assert sum(matrix["matrix"][i][i] for i in range(len(stages))) == 7
    assert numbers.agreement(None) is None


def change(record: str, field: str, before, after, step: int = 0, *, system="hubspot",
           obj="contacts") -> AuditChange:
    return AuditChange(system, obj, record, field, before, after, step)


def test_changes_count_a_two_step_move_once_and_mark_downgrades_and_clears(mapping):
    changes = [
        change("1", "lifecyclestage", "customer", "", 0),  # HubSpot's backward move: clear...
        change("1", "lifecyclestage", "", "lead", 1),  # ...then set: one downgrade
        change("2", "lifecyclestage", "lead", "salesqualifiedlead"),
        change("3", "lifecyclestage", "57129482", "customer"),  # custom stage (sql) -> up
        change("4", "crmsync_priority", "trigger_fit", "fit"),  # a trigger expired: down
        change("5", "crmsync_trigger_type", "funding", None, obj="companies"),  # cleared
        change("00Q1", "Status", "Working - Contacted", "Closed - Not Converted",
               system="salesforce", obj="Lead"),  # mql -> disqualified: off the ladder
    ]
    summary = numbers.change_summary(changes, _ranker(mapping))
    assert (summary["changes"], summary["downgrades"], summary["clears"]) == (6, 3, 1)
    by_field = {(f["system"], f["object"], f["field"]): f for f in summary["by_field"]}
    assert by_field["hubspot", "contacts", "lifecyclestage"] == {
        "system": "hubspot", "object": "contacts", "field": "lifecyclestage", "changes": 3,
        "downgrades": 1, "clears": 0}
    moves = {(t["field"], t["before"], t["after"]): t for t in summary["transitions"]}
    assert moves["lifecyclestage", "customer", "lead"]["downgrade"] is True
    assert moves["lifecyclestage", "57129482", "customer"]["downgrade"] is False
    assert moves["crmsync_priority", "trigger_fit", "fit"]["downgrade"] is True
    assert moves["crmsync_trigger_type", "funding", "(empty)"]["clear"] is True
    assert moves["Status", "Working - Contacted", "Closed - Not Converted"]["downgrade"] is True


def test_rule_location_reads_the_place_crmsync_writes_after_a_rule():
    reason = ("unknown Status value 'Nurturing': not in picklists.salesforce.Lead.Status "
              "(default.yaml:78) (lists 'Open - Not Contacted' ...); add it to the mapping")
    assert numbers.rule_location(reason) == {"rule": "picklists.salesforce.Lead.Status",
                                             "file": "default.yaml", "line": "78"}
    assert numbers.rule_location("triggers.funding.sources[1] (my-map.yml:198)") == {
        "rule": "triggers.funding.sources[1]", "file": "my-map.yml", "line": "198"}
    assert numbers.rule_location("record has no id") is None


def reject(ref: str, stage: str, field: str | None, reason: str, code: str | None = None):
    return SimpleNamespace(ref=ref, stage=stage, field=field or "", reason=reason, code=code)


def test_stuck_groups_rejects_by_cause_with_the_mapping_line_to_fix(mapping):
    unknown = ("unknown Status value 'Nurturing': not in picklists.salesforce.Lead.Status "
               "(default.yaml:78) (lists ...); add it to the mapping")
    rejects = [reject(f"salesforce:Lead:00Q{i}", "read", "Status", unknown) for i in range(3)]
    rejects.append(reject("hubspot:contacts:7", "write", "crmsync_priority",
                          "INVALID_OPTION: value not allowed", "INVALID_OPTION"))
    rejects.append(reject("hubspot:companies:8", "read", "recent_funding_date",
                          "recent_funding_date is not a date: 'soon'"))
    rejects.append(reject("hubspot:deals:9", "read", None, "record has no id"))
    causes = numbers.stuck_causes(rejects, lambda *cause: _fix_for(mapping, *cause))
    assert [c["records"] for c in causes] == [3, 1, 1, 1]
    first = causes[0]
    assert first["examples"] == ["salesforce:Lead:00Q0", "salesforce:Lead:00Q1",
                                 "salesforce:Lead:00Q2"]
    assert first["fix"] == {"rule": "picklists.salesforce.Lead.Status", "file": "default.yaml",
                            "line": "78"}
    fixes = {c["field"]: c["fix"] for c in causes}
    assert fixes["crmsync_priority"]["rule"] == "write_back.hubspot.contacts.crmsync_priority"
    assert fixes["recent_funding_date"]["rule"].startswith("triggers.funding.sources[")
    assert fixes[None] is None  # nothing in the mapping is to blame


def test_history_rows_per_run_oldest_first():
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    runs = [
        SimpleNamespace(id=2, kind="sync", status="rejects", dry_run=False, started_at=start,
                        ended_at=start + timedelta(seconds=1.5),
                        counts={"read": {"hubspot.contacts": 4, "salesforce.Lead": 6},
                                "applied": 3},
                        api_calls={"hubspot": {"calls": 7, "daily_used": 2500,
                                               "daily_allocation": 250_000},
                                   "salesforce": {"calls": 5, "daily_used": None,
                                                  "daily_allocation": None}}),
        SimpleNamespace(id=1, kind="backfill", status="ok", dry_run=True, started_at=start,
                        ended_at=None, counts={}, api_calls={}),
    ]
    rows = numbers.history(runs)
    assert [r["run_id"] for r in rows] == [1, 2]
    assert rows[1] == {"run_id": 2, "kind": "sync", "status": "rejects", "dry_run": False,
                       "started_at": start.isoformat(), "duration_seconds": 1.5,
                       "records_read": 10, "changes_written": 3,
                       "api_calls": {"hubspot": 7, "salesforce": 5},
                       "budget_share": {"hubspot": 0.01, "salesforce": None}}
    assert rows[0]["duration_seconds"] is None  # never finished
