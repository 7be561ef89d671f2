"""Pre-flight: a run that would write checks the fields it writes before its first write.

Against the sandbox through the real SDKs: a portal or org that lacks a field, an option or
the right type stops the run with exit 2 and every problem named, before any write request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from connector.catalog import CATALOG, FieldAdmin
from connector.mapping import Mapping, load_mapping
from connector.preflight import write_problems
from connector.sandbox import Sandbox
from connector.state import StateStore
from connector.sync import Engine
from connector.systems.base import FieldInfo
from connector.systems.factory import build_adapters
from tests.systems.helpers import FAST_LIMITS, settings_for

WRITES = ("hubspot.batch_update", "salesforce.composite", "salesforce.sobject")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=30, **FAST_LIMITS) as sb:
        yield sb


def _backfill(sb: Sandbox, tmp_path: Path, mapping: Mapping | None = None, *,
              dry_run: bool = False):
    settings = settings_for(sb, state_path=tmp_path / "state.db")
    with StateStore(tmp_path / "state.db") as store:
        return Engine(store, mapping or load_mapping(), build_adapters(settings)).backfill(
            dry_run=dry_run)


def _requests(sb: Sandbox, *endpoints: str) -> int:
    counted = sb.counters()["requests"]
    return sum(counted.get(endpoint, 0) for endpoint in endpoints)


def _with_rule(mapping: Mapping, system: str, obj: str, name: str, **changes) -> Mapping:
    """A copy of the mapping with one write-back rule changed (the sandbox stays as it is)."""
    rules = mapping.write_back[(system, obj)]
    assert any(r.field == name for r in rules)
    changed = tuple(replace(r, **changes) if r.field == name else r for r in rules)
    return replace(mapping, write_back={**mapping.write_back, (system, obj): changed})


# ---- the engine refuses before the first write -------------------------------------------------


def test_a_missing_hubspot_option_stops_the_run_before_any_write(sandbox, tmp_path):
    sandbox.remove_hubspot_option("contacts", "crmsync_priority", "trigger_fit")
    report = _backfill(sandbox, tmp_path)
    assert report.exit_code == 2, report.message
    message = report.message or ""
    assert "hubspot contacts.crmsync_priority has no option 'trigger_fit'" in message
    assert "fit, nonfit_lead, other" in message  # the options it does have
    assert "crmsync check" in message
    # Before: the first batch went out and HubSpot refused it whole (400).
    assert _requests(sandbox, *WRITES) == 0
    # One properties call per HubSpot object the run writes (contacts, companies), no more.
    assert _requests(sandbox, "hubspot.properties") == 2


def test_a_dry_run_refuses_the_same_way(sandbox, tmp_path):
    sandbox.remove_hubspot_option("contacts", "crmsync_priority", "trigger_fit")
    report = _backfill(sandbox, tmp_path, dry_run=True)
    assert report.exit_code == 2, report.message
    assert "crmsync_priority has no option 'trigger_fit'" in (report.message or "")


def test_every_problem_is_named_at_once(sandbox, tmp_path):
    sandbox.remove_hubspot_property("companies", "crmsync_trigger_active")
    sandbox.remove_hubspot_option("contacts", "lifecyclestage", "evangelist")
    sandbox.retype_hubspot_property("companies", "crmsync_trigger_date", "datetime", "date")
    report = _backfill(sandbox, tmp_path)
    assert report.exit_code == 2, report.message
    message = report.message or ""
    assert "hubspot companies.crmsync_trigger_active does not exist" in message
    assert "hubspot contacts.lifecyclestage has no option 'evangelist'" in message
    assert "hubspot companies.crmsync_trigger_date is a datetime property" in message
    assert _requests(sandbox, *WRITES) == 0


def test_a_checkbox_recreated_as_text_is_refused(sandbox, tmp_path):
    """A true/false rule aimed at a text property: HubSpot would store the words, and
    nothing reading a checkbox would see them. Before: the run wrote them (exit 0)."""
    sandbox.retype_hubspot_property("contacts", "crmsync_icp_fit", "string", "text")
    report = _backfill(sandbox, tmp_path)
    assert report.exit_code == 2, report.message
    assert "hubspot contacts.crmsync_icp_fit is a string property" in (report.message or "")
    assert _requests(sandbox, *WRITES) == 0


def test_a_salesforce_value_missing_from_the_picklist_stops_the_run(sandbox, tmp_path):
    """Before: every Contact moving to opportunity was rejected one by one (exit 1)."""
    mapping = load_mapping()
    stage_rule = next(r for r in mapping.write_back[("salesforce", "Contact")]
                      if r.field == "Lifecycle_Stage__c")
    values = {**stage_rule.values, "opportunity": "Nurture"}
    report = _backfill(sandbox, tmp_path, _with_rule(mapping, "salesforce", "Contact",
                                                     "Lifecycle_Stage__c", values=values))
    assert report.exit_code == 2, report.message
    message = report.message or ""
    assert "salesforce Contact.Lifecycle_Stage__c has no option 'Nurture'" in message
    assert "Object Manager > Contact" in message
    assert _requests(sandbox, *WRITES) == 0


def test_a_salesforce_field_the_run_cannot_edit_stops_the_run(sandbox, tmp_path):
    """A write_back field that is not updateable (as without field-level Edit access).
    Before: each Account write was rejected on its own (exit 1). (A field that does not exist
    at all already fails the read before, with INVALID_FIELD.)"""
    mapping = _with_rule(load_mapping(), "salesforce", "Account", "Buying_Signal_Date__c",
                         field="LastModifiedDate")
    report = _backfill(sandbox, tmp_path, mapping)
    assert report.exit_code == 2, report.message
    message = report.message or ""
    assert "salesforce Account.LastModifiedDate is read-only" in message
    assert "salesforce Account.LastModifiedDate is a datetime field" in message
    assert _requests(sandbox, *WRITES) == 0


def test_a_run_with_nothing_to_write_describes_nothing(sandbox, tmp_path):
    settings = settings_for(sandbox, state_path=tmp_path / "state.db")
    with StateStore(tmp_path / "state.db") as store:
        engine = Engine(store, load_mapping(), build_adapters(settings))
        assert engine.backfill().exit_code == 0
        described = _requests(sandbox, "hubspot.properties", "salesforce.describe")
        assert described > 0
        again = engine.sync()
    assert again.exit_code == 0 and again.applied == 0
    assert _requests(sandbox, "hubspot.properties", "salesforce.describe") == described


# ---- the problems themselves (pure) ------------------------------------------------------------


def _field(name: str, type_: str, options: tuple[str, ...] = (), writable: bool = True):
    return FieldInfo(name, name, type_, writable, options)


HUBSPOT_COMPANIES = {
    "crmsync_icp_fit": _field("crmsync_icp_fit", "bool", ("true", "false")),
    "crmsync_trigger_active": _field("crmsync_trigger_active", "enumeration",
                                     ("true", "false")),
    "crmsync_trigger_type": _field("crmsync_trigger_type", "string"),
    "crmsync_trigger_date": _field("crmsync_trigger_date", "date"),
    "crmsync_priority": _field("crmsync_priority", "enumeration",
                               ("trigger_fit", "fit", "nonfit_lead", "other")),
}


def test_a_portal_as_the_mapping_expects_has_no_problems():
    assert write_problems(load_mapping(), "hubspot", "companies", HUBSPOT_COMPANIES) == []


def test_types_are_compared_not_only_names():
    described = {
        **HUBSPOT_COMPANIES,
        "crmsync_trigger_date": _field("crmsync_trigger_date", "datetime"),
        "crmsync_icp_fit": _field("crmsync_icp_fit", "number"),
        "crmsync_priority": _field("crmsync_priority", "date"),
    }
    problems = write_problems(load_mapping(), "hubspot", "companies", described)
    assert {(p.field, p.kind) for p in problems} == {
        ("crmsync_trigger_date", "type"), ("crmsync_icp_fit", "type"),
        ("crmsync_priority", "type")}
    date_problem = next(p for p in problems if p.field == "crmsync_trigger_date")
    assert "datetime" in date_problem.detail and "Date picker" in date_problem.fix


def test_a_trigger_type_picklist_must_list_every_trigger():
    described = {**HUBSPOT_COMPANIES, "crmsync_trigger_type": _field(
        "crmsync_trigger_type", "enumeration", ("funding", "expansion"))}
    [problem] = write_problems(load_mapping(), "hubspot", "companies", described)
    assert problem.kind == "option"
    assert "'new_executive'" in problem.detail and "'cost_savings'" in problem.detail


def test_salesforce_checkbox_rules_need_a_checkbox():
    mapping = load_mapping()
    account = {
        "ICP_Fit__c": _field("ICP_Fit__c", "boolean"),
        "Buying_Signal__c": _field("Buying_Signal__c", "string"),
        "Buying_Signal_Type__c": _field("Buying_Signal_Type__c", "string"),
        "Buying_Signal_Date__c": _field("Buying_Signal_Date__c", "date"),
        "Priority__c": _field("Priority__c", "picklist", ("fit", "other")),
    }
    problems = write_problems(mapping, "salesforce", "Account", account)
    assert {(p.field, p.kind) for p in problems} == {
        ("Buying_Signal__c", "type"), ("Priority__c", "option")}
    priority = next(p for p in problems if p.field == "Priority__c")
    assert "'trigger_fit'" in priority.detail and "'nonfit_lead'" in priority.detail


def test_a_read_only_field_is_a_problem():
    described = {**HUBSPOT_COMPANIES, "crmsync_trigger_type": _field(
        "crmsync_trigger_type", "string", writable=False)}
    [problem] = write_problems(load_mapping(), "hubspot", "companies", described)
    assert (problem.field, problem.kind) == ("crmsync_trigger_type", "read-only")


# ---- a third CRM: its catalog entry alone gives pre-flight its words ---------------------------


class _ThirdFields(FieldAdmin):
    """A made-up CRM that calls fields attributes and keeps them under one menu."""

    noun = "attribute"
    date_types = frozenset({"day"})
    flag_types = frozenset({"yes_no"})
    not_text_types = frozenset({"day", "yes_no"})
    wanted: ClassVar[dict[str, str]] = {
        "date": "a Day attribute", "flag": "a Yes/No attribute", "text": "a Text attribute"}

    def create_fix(self, object_type: str, name: str) -> str:
        return f"add the attribute '{name}' under Third > {object_type} > Attributes"

    def writable_fix(self, object_type: str, name: str) -> str:
        return f"unlock {object_type}.{name} under Third > Locks"

    def add_options(self, object_type: str, field: str, named: str) -> str:
        return f"add {named} under Third > {object_type} > {field} > Choices"

    def fields_page(self, object_type: str) -> str:
        return f"Third ({object_type} > Attributes)"


def test_a_third_crm_needs_only_its_catalog_entry(monkeypatch):
    """Pre-flight asks the catalog how a CRM names, types and fixes a field, so a new CRM
    brings its own words instead of getting another CRM's menus."""
    monkeypatch.setitem(CATALOG, "third", SimpleNamespace(admin=_ThirdFields()))
    rule = next(r for r in load_mapping().write_rules("hubspot", "companies")
                if r.source == "organization.trigger_date")
    since = replace(rule, system="third", object="orgs", field="since", rule="rule A")
    fit = replace(since, field="fit", source="organization.fit", rule="rule B")
    tier = replace(since, field="tier", source="organization.priority", values=None,
                   rule="rule C")
    mapping = replace(load_mapping(), write_back={("third", "orgs"): (since, fit, tier)})
    described = {"since": _field("since", "text", writable=False),
                 "tier": _field("tier", "text", ("fit",))}
    assert [str(p) for p in write_problems(mapping, "third", "orgs", described)] == [
        "third orgs.fit does not exist (rule B writes it); add the attribute 'fit' under "
        "Third > orgs > Attributes",
        "third orgs.since is read-only (rule A writes it); unlock orgs.since under Third > Locks",
        "third orgs.since is a text attribute, but rule A writes calendar dates (YYYY-MM-DD); "
        "point rule A at a Day attribute: create one in Third (orgs > Attributes)",
        "third orgs.tier has no options 'trigger_fit', 'nonfit_lead', 'other' (its options: "
        "fit), which rule C writes; add them under Third > orgs > tier > Choices, or change "
        "the values of rule C",
    ]
