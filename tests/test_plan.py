from __future__ import annotations

from dataclasses import replace

import pytest

from connector.plan import same_value
from tests.helpers import changes_to, hs, run_core, sf


def allowing_downgrades(mapping, winner="hubspot"):
    rule = replace(mapping.precedence["person.stage"], winner=winner, allow_downgrade=True)
    return replace(mapping, precedence={**mapping.precedence, "person.stage": rule})


def test_no_change_where_values_already_agree(mapping, today):
    _, plan, _ = run_core(mapping, [
        hs("contacts", "1", email="a@x.io", lifecyclestage="marketingqualifiedlead",
           crmsync_priority="nonfit_lead"),
        sf("Contact", "0031", Email="A@X.io", Lifecycle_Stage__c="MQL", Priority__c="nonfit_lead"),
    ], today)
    assert plan.changes == []


def test_forward_move_is_one_change_with_rule_and_reason(mapping, today):
    _, plan, _ = run_core(mapping, [
        hs("contacts", "1", email="a@x.io", lifecyclestage="lead"),
        sf("Contact", "0031", Email="a@x.io", Lifecycle_Stage__c="SQL"),
    ], today)
    [change] = [c for c in plan.changes if c.field == "lifecyclestage"]
    assert (change.before, change.after, change.step) == ("lead", "salesqualifiedlead", 0)
    assert change.rule.startswith("write_back.hubspot.contacts.lifecyclestage (default.yaml:")
    assert "salesforce:Contact:0031 says sql" in change.reason


def test_backward_move_blocked_without_allow_downgrade(mapping, today):
    hubspot_wins = replace(mapping, precedence={
        **mapping.precedence,
        "person.stage": replace(mapping.precedence["person.stage"], winner="hubspot")})
    _, plan, _ = run_core(hubspot_wins, [
        hs("contacts", "1", email="a@x.io", lifecyclestage="lead"),
        sf("Contact", "0031", Email="a@x.io", Lifecycle_Stage__c="SQL"),
    ], today)
    assert ("Lifecycle_Stage__c", 0) not in changes_to(plan, "salesforce:Contact:0031")


def test_hubspot_backward_move_is_clear_then_set(mapping, today):
    _, plan, _ = run_core(allowing_downgrades(mapping, winner="salesforce"), [
        hs("contacts", "1", email="a@x.io", lifecyclestage="customer"),
        sf("Contact", "0031", Email="a@x.io", Lifecycle_Stage__c="MQL"),
    ], today)
    assert changes_to(plan, "hubspot:contacts:1")[("lifecyclestage", 0)] == ("customer", "")
    assert changes_to(plan, "hubspot:contacts:1")[("lifecyclestage", 1)] == (
        "", "marketingqualifiedlead")
    steps = [c.step for c in plan.changes if c.field == "lifecyclestage"]
    assert steps == [0, 1]


def test_moving_off_other_onto_the_ladder_is_clear_then_set_in_hubspot(mapping, today):
    """`other` is last in HubSpot's order, so reaching `lead` from it is backward there."""
    _, plan, _ = run_core(mapping, [
        hs("contacts", "1", email="a@x.io", lifecyclestage="other"),
        sf("Lead", "00Q1", Email="a@x.io", Status="Open - Not Contacted"),
    ], today)
    assert changes_to(plan, "hubspot:contacts:1")[("lifecyclestage", 1)] == ("", "lead")


def test_converted_leads_are_never_targets(mapping, today):
    _, plan, _ = run_core(mapping, [
        sf("Lead", "00Q1", Email="a@x.io", IsConverted=True, ConvertedContactId="0031",
           Status="Closed - Converted"),
        sf("Contact", "0031", Email="a@x.io", Lifecycle_Stage__c="Lead"),
        hs("contacts", "1", email="a@x.io", lifecyclestage="customer"),
    ], today)
    assert changes_to(plan, "salesforce:Lead:00Q1") == {}
    assert changes_to(plan, "salesforce:Contact:0031")[("Lifecycle_Stage__c", 0)] == (
        "Lead", "Customer")


def test_tilde_in_reverse_map_never_writes(mapping, today):
    _, plan, _ = run_core(mapping, [
        hs("contacts", "1", email="a@x.io", lifecyclestage="salesqualifiedlead"),
        sf("Lead", "00Q1", Email="a@x.io", Status="Working - Contacted"),
    ], today)
    assert ("Status", 0) not in changes_to(plan, "salesforce:Lead:00Q1")  # sql: ~


def test_only_listed_fields_are_written(mapping, today):
    _, plan, _ = run_core(mapping, [
        hs("contacts", "1", email="a@x.io", lifecyclestage="lead", hs_lead_status="NEW"),
        sf("Contact", "0031", Email="a@x.io", Lifecycle_Stage__c="Customer"),
        sf("Opportunity", "0061", ContactId="0031", StageName="Closed Won"),
    ], today)
    listed = {(system, obj, f) for (system, obj), rules in mapping.write_back.items()
              for f in (r.field for r in rules)}
    assert plan.changes
    assert {(c.system.value, c.object_type, c.field) for c in plan.changes} <= listed


def test_trigger_flags_and_expiry(mapping, today):
    _, plan, _ = run_core(mapping, [
        sf("Account", "A1", Funding_Announced_Date__c="2026-10-01", Buying_Signal__c=False),
        sf("Account", "A2", Funding_Announced_Date__c="2024-01-01", Buying_Signal__c=True,
           Buying_Signal_Type__c="funding", Buying_Signal_Date__c="2024-01-01"),
    ], today)
    fresh = changes_to(plan, "salesforce:Account:A1")
    assert fresh[("Buying_Signal__c", 0)] == (False, True)
    assert fresh[("Buying_Signal_Type__c", 0)] == (None, "funding")
    assert fresh[("Buying_Signal_Date__c", 0)] == (None, "2026-10-01")
    expired = changes_to(plan, "salesforce:Account:A2")
    assert expired[("Buying_Signal__c", 0)] == (True, False)
    assert expired[("Buying_Signal_Type__c", 0)] == ("funding", None)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [(None, "", True), (True, "true", True), ("True", True, True), (5.0, "5", True),
     ("2026-01-01", "2026-01-01", True), ("lead", "Lead", False), (False, None, False)],
)
def test_same_value_compares_as_the_crm_stores(a, b, same):
    assert same_value(a, b) is same


def test_localised_value_that_already_means_the_stage_is_kept(mapping, today):
    _, plan, _ = run_core(mapping, [
        sf("Lead", "00Q1", Email="a@x.io", Status="Liidi"),
        hs("contacts", "1", email="a@x.io", lifecyclestage="lead"),
    ], today)
    assert ("Status", 0) not in changes_to(plan, "salesforce:Lead:00Q1")


def test_plan_lists_changes_in_record_then_field_order(mapping, today):
    """make_plan visits records in plan order instead of sorting its changes afterwards."""
    _, plan, _ = run_core(mapping, [
        sf("Contact", "0032", Email="b@x.io", Lifecycle_Stage__c="MQL"),
        hs("contacts", "9", email="b@x.io", lifecyclestage="customer"),
        hs("contacts", "10", email="a@x.io", lifecyclestage="lead"),
        sf("Lead", "00Q1", Email="a@x.io", Status="Working - Contacted"),
        sf("Account", "0015", Funding_Announced_Date__c="2026-10-01"),
        hs("companies", "5", salesforceaccountid="0015", domain="a.io"),
    ], today)
    order = [(c.system, c.object_type, c.record_id, c.field, c.step) for c in plan.changes]
    assert len({(c.system, c.object_type) for c in plan.changes}) >= 4
    assert order == sorted(order)

