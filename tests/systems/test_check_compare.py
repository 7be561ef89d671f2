"""`crmsync check` compares values, types and order, not only names (API review F9).

Against the sandbox through the real SDKs, with the shipped mapping or a copy of it: options
the mapping writes that the portal lacks, property types, HubSpot's lifecycle stage order and
CRM picklist values the mapping does not know.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.mapping import Mapping, load_mapping
from connector.sandbox import Sandbox
from connector.systems.check import CheckReport, check_systems
from connector.systems.factory import build_adapters

from .helpers import FAST_LIMITS, STUB_MAPPING, StubAdapter, info, settings_for


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=5, **FAST_LIMITS) as sb:
        yield sb


def _check(sb: Sandbox, mapping: Mapping | None = None) -> CheckReport:
    adapters = {adapter.system: adapter for adapter in build_adapters(settings_for(sb))}
    return check_systems(adapters, mapping or load_mapping())


def _found(report: CheckReport, what: str) -> list:
    return [f for f in report.findings if f.what == what]


def _without_values(mapping: Mapping, system: str, obj: str, field: str, *values: str):
    """A copy of the mapping whose picklist for `field` lacks `values`."""
    maps = mapping.picklists[(system, obj)]
    changed = tuple(
        replace(m, values={k: v for k, v in m.values.items() if k not in values})
        if m.field == field else m
        for m in maps
    )
    return replace(mapping, picklists={**mapping.picklists, (system, obj): changed})


def test_the_portals_lifecycle_order_is_compared_with_the_mappings(sandbox):
    """The sandbox portal (seed 001's stages) orders the two custom stages differently from
    mappings/default.yaml (API review F13): forward and backward moves are then misjudged."""
    report = _check(sandbox)
    [order] = _found(report, "lifecycle stage order")
    assert (order.system, order.object_type, order.field, order.level) == (
        "hubspot", "contacts", "lifecyclestage", "warning")
    assert "HubSpot lists '57129481' before 'lead'" in order.detail
    assert "'salesqualifiedlead' before '57129482'" in order.detail
    assert "picklists.hubspot.contacts.lifecyclestage (default.yaml:" in order.fix
    assert ("subscriber, 57129481, lead, marketingqualifiedlead, salesqualifiedlead, "
            "57129482, opportunity") in order.fix
    assert report.ok  # a warning: check still exits 0


def test_an_option_the_mapping_writes_but_the_portal_lacks_is_an_error(sandbox):
    sandbox.remove_hubspot_option("companies", "crmsync_priority", "nonfit_lead")
    report = _check(sandbox)
    [error] = report.errors
    assert (error.system, error.what, error.object_type, error.field) == (
        "hubspot", "field values", "companies", "crmsync_priority")
    assert "has no option 'nonfit_lead'" in error.detail
    assert "Settings > Data Management > Properties > companies" in error.fix


def test_a_date_property_created_as_datetime_is_an_error(sandbox):
    sandbox.retype_hubspot_property("companies", "crmsync_trigger_date", "datetime", "date")
    [error] = _check(sandbox).errors
    assert (error.what, error.field) == ("field type", "crmsync_trigger_date")
    assert "is a datetime property" in error.detail
    assert "Date picker" in error.fix


def test_a_checkbox_created_as_a_dropdown_with_other_options_is_an_error(sandbox):
    """An enumeration with Yes/No values, not true/false: every write would be refused."""
    sandbox.remove_hubspot_option("contacts", "crmsync_icp_fit", "false")
    [error] = _check(sandbox).errors
    assert (error.what, error.field) == ("field values", "crmsync_icp_fit")
    assert "has no option 'false'" in error.detail


def test_crm_values_the_mapping_does_not_know_are_listed_per_field(sandbox):
    mapping = _without_values(load_mapping(), "salesforce", "Lead", "Status",
                              "Working - Contacted", "Liidi")
    mapping = _without_values(mapping, "hubspot", "contacts", "hs_lead_status", "CONNECTED")
    mapping = _without_values(mapping, "salesforce", "Opportunity", "StageName", "Prospecting")
    report = _check(sandbox, mapping)
    unknown = {(f.system, f.object_type, f.field): f for f in _found(report, "unknown values")}
    assert set(unknown) == {("salesforce", "Lead", "Status"),
                            ("hubspot", "contacts", "hs_lead_status")}
    status = unknown["salesforce", "Lead", "Status"]
    assert status.level == "warning"
    assert "'Working - Contacted', 'Liidi'" in status.detail
    assert "rejected" in status.detail
    assert "picklists.salesforce.Lead.Status (default.yaml:" in status.fix
    assert "'CONNECTED'" in unknown["hubspot", "contacts", "hs_lead_status"].detail


def test_the_shipped_mapping_against_the_sandbox_has_no_other_findings(sandbox):
    report = _check(sandbox)
    assert not report.errors
    assert [f.what for f in report.findings if f.level == "warning"] == [
        "lifecycle stage order"]


def test_check_without_a_compiled_mapping_compares_names_only():
    """Stub mappings (only fields read and written) still work: nothing to compare."""
    adapters = {"hubspot": StubAdapter(
        "hubspot", {"contacts": {n: info(n) for n in ("email", "lifecyclestage", "icp_fit")}})}
    report = check_systems(adapters, STUB_MAPPING)
    assert report.ok and not _found(report, "lifecycle stage order")


def test_cli_check_shows_the_order_warning_and_exits_0(sandbox_env):
    result = CliRunner().invoke(app, ["check", "--json"])
    report = json.loads(result.stdout)
    warnings = [f for f in report["findings"] if f["level"] == "warning"]
    assert [f["what"] for f in warnings] == ["lifecycle stage order"]
    assert result.exit_code == 0
