"""What `crmsync fields` derives from a mapping: every field, custom or standard, its type and
the exact options; the HubSpot scopes; whether an existing field fits.

Expected values are written out from mappings/default.yaml by hand (its write_back reverse
maps, triggers and picklists), not computed."""

from __future__ import annotations

import pytest

from connector.catalog import HUBSPOT_FIELD_CREATION_SCOPES, HUBSPOT_SCOPES
from connector.fields import fields_needed, hubspot_plan, hubspot_scopes, problems_with
from connector.mapping import Mapping
from connector.systems.base import FieldInfo
from tests.fields_data import HUBSPOT_CUSTOM, SALESFORCE_CUSTOM, mapping_variant


def _custom(mapping: Mapping, system: str) -> dict:
    return {(n.object, n.name): (n.type_text, [o.value for o in n.options])
            for n in fields_needed(mapping) if n.system == system and n.custom}


def _need(mapping: Mapping, system: str, obj: str, name: str):
    return next(n for n in fields_needed(mapping)
                if (n.system, n.object, n.name) == (system, obj, name))


def test_every_custom_field_of_the_shipped_mapping_with_its_type_and_options(mapping) -> None:
    assert _custom(mapping, "hubspot") == HUBSPOT_CUSTOM
    assert _custom(mapping, "salesforce") == SALESFORCE_CUSTOM


def test_read_only_fields_are_marked_read_and_written_ones_write(mapping) -> None:
    assert _need(mapping, "hubspot", "companies", "recent_funding_date").access == "read"
    assert _need(mapping, "salesforce", "Account", "Priority__c").access == "read, write"


@pytest.mark.parametrize(("system", "obj", "name"), [
    ("hubspot", "contacts", "lifecyclestage"), ("hubspot", "contacts", "email"),
    ("hubspot", "contacts", "salesforceleadid"), ("hubspot", "companies", "industry"),
    ("hubspot", "deals", "dealstage"), ("salesforce", "Lead", "Status"),
    ("salesforce", "Account", "Type"), ("salesforce", "Opportunity", "IsWon"),
    ("salesforce", "Account", "BillingCountry"),
])
def test_standard_fields_are_listed_as_standard(mapping, system, obj, name) -> None:
    assert _need(mapping, system, obj, name).custom is False


def test_a_standard_picklist_lists_what_is_written_apart_from_what_is_only_read(mapping) -> None:
    status = _need(mapping, "salesforce", "Lead", "Status")
    assert [(o.value, o.written) for o in status.options] == [
        ("Open - Not Contacted", True), ("Working - Contacted", True),
        ("Closed - Not Converted", True), ("Closed - Converted", False)]
    # the nl/no/fi label packs' values are ways to read an org's values, not options to add
    assert "Liidi" not in {o.value for o in status.options}


def test_a_flag_written_as_words_needs_a_dropdown_with_those_words(tmp_path) -> None:
    mine = mapping_variant(tmp_path, (
        '      crmsync_icp_fit: {from: person.fit, values: {"true": "true", "false": "false"}}\n'
        "      crmsync_priority: {from: person.priority}\n",
        '      crmsync_fit_label: {from: person.fit, values: {"true": "Fit", "false": "No fit"}}\n'
        "      crmsync_priority: {from: person.priority}\n"))
    need = _need(mine, "hubspot", "contacts", "crmsync_fit_label")
    assert (need.type_text, [o.value for o in need.options]) == (
        "enumeration/select", ["Fit", "No fit"])


def test_scopes_follow_what_the_mapping_writes(tmp_path, mapping) -> None:
    assert hubspot_scopes(mapping) == (list(HUBSPOT_SCOPES), list(HUBSPOT_FIELD_CREATION_SCOPES))
    companies_block = (
        "    companies:\n"
        '      crmsync_icp_fit: {from: organization.fit, values: {"true": "true", "false": '
        '"false"}}\n'
        '      crmsync_trigger_active: {from: organization.trigger_active, values: {"true": '
        '"true", "false": "false"}}\n'
        "      crmsync_trigger_type: {from: organization.trigger_type}\n"
        "      crmsync_trigger_date: {from: organization.trigger_date}\n"
        "      crmsync_priority: {from: organization.priority}\n")
    mine = mapping_variant(tmp_path, (companies_block, ""))
    needed, creation = hubspot_scopes(mine)
    assert "crm.objects.companies.write" not in needed
    assert "crm.objects.companies.read" in needed  # still read, for linking and the ICP
    # the trigger date properties it reads are still custom, so creating them needs the scope
    assert creation == ["crm.schemas.contacts.write", "crm.schemas.companies.write"]


@pytest.mark.parametrize(("obj", "name", "info", "problem"), [
    ("companies", "crmsync_trigger_date", FieldInfo("x", "x", "datetime"), "datetime"),
    ("companies", "recent_funding_date", FieldInfo("x", "x", "string"), "string"),
    ("contacts", "crmsync_icp_fit", FieldInfo("x", "x", "string"), "string"),
    ("contacts", "crmsync_priority", FieldInfo("x", "x", "enumeration",
                                               options=("fit", "other")), "'trigger_fit'"),
    ("contacts", "crmsync_priority", FieldInfo("x", "x", "number"), "number"),
])
def test_a_field_that_cannot_serve_is_named_with_why(mapping, obj, name, info, problem) -> None:
    found = problems_with(_need(mapping, "hubspot", obj, name), info)
    assert len(found) == 1 and problem in found[0]


@pytest.mark.parametrize(("obj", "name", "info"), [
    ("contacts", "crmsync_priority", FieldInfo("x", "x", "string")),  # any text goes
    ("contacts", "crmsync_priority", FieldInfo("x", "x", "enumeration", options=(
        "other", "nonfit_lead", "fit", "trigger_fit", "extra"))),
    ("contacts", "crmsync_icp_fit", FieldInfo("x", "x", "enumeration",
                                              options=("true", "false"))),
    ("companies", "crmsync_trigger_date", FieldInfo("x", "x", "date")),
])
def test_a_field_that_serves_has_no_problem(mapping, obj, name, info) -> None:
    assert problems_with(_need(mapping, "hubspot", obj, name), info) == []


def test_the_plan_creates_what_is_missing_and_leaves_or_reports_the_rest(mapping) -> None:
    described = {
        "contacts": {"crmsync_icp_fit": FieldInfo("crmsync_icp_fit", "", "bool",
                                                  options=("true", "false"))},
        "companies": {"crmsync_trigger_date": FieldInfo("crmsync_trigger_date", "",
                                                        "datetime")},
        "deals": {},
    }
    steps = {(s.need.object, s.need.name): s.step
             for s in hubspot_plan(fields_needed(mapping), described)}
    assert steps[("contacts", "crmsync_icp_fit")] == "ok"
    assert steps[("companies", "crmsync_trigger_date")] == "wrong"
    assert steps[("contacts", "crmsync_priority")] == "create"
    assert steps[("contacts", "lifecyclestage")] == "missing-standard"
    assert sorted(k for k, v in steps.items() if v == "create") == sorted(
        set(HUBSPOT_CUSTOM) - {("contacts", "crmsync_icp_fit"),
                               ("companies", "crmsync_trigger_date")})
