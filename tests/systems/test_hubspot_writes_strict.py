"""HubSpot writes and budgets against a sandbox as strict as the real API (real SDK, HTTPS).

- A validation failure refuses the whole batch (400). A configuration error (a property or an
  option the portal lacks, a read-only property) stops the run; a value only some records
  carry rejects just those, at a cost of a call or two, never bisection.
- The portal's daily limit is shared by every private app: stop before our share is used.
- Search is outside the 10-second window, and the window follows X-HubSpot-RateLimit-Max.
- A token without a scope is a configuration error naming the scope.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.exceptions import BudgetExhausted, ConfigurationError
from connector.mapping import load_mapping
from connector.sandbox import Sandbox
from connector.state import StateStore
from connector.sync import Engine
from connector.systems.base import RecordUpdate
from connector.systems.check import check_systems
from connector.systems.factory import build_adapters
from connector.systems.hubspot import HubSpotAdapter, HubSpotLimits

from .helpers import FAST_LIMITS, hubspot_for, settings_for

EVERY_SCOPE = {
    f"crm.{kind}.{object_type}.{access}"
    for kind in ("objects", "schemas")
    for object_type in ("contacts", "companies", "deals")
    for access in ("read", "write")
}


def _contacts(sb: Sandbox, count: int) -> list[str]:
    ids = sorted((r["id"] for r in sb.hubspot_records("contacts") if not r["archived"]), key=int)
    assert len(ids) >= count
    return ids[:count]


def _calls(sb: Sandbox, endpoint: str) -> int:
    return sb.counters()["requests"].get(endpoint, 0)


def _priorities(ids: list[str]) -> list[RecordUpdate]:
    values = ("trigger_fit", "fit", "nonfit_lead", "other")
    return [RecordUpdate(i, {"crmsync_priority": values[n % 4]}) for n, i in enumerate(ids)]


# ---- 1. whole-batch 400s ---------------------------------------------------------------------


def test_one_invalid_value_rejects_that_record_in_two_calls(small_sandbox: Sandbox) -> None:
    ids = _contacts(small_sandbox, 100)
    updates = [RecordUpdate(i, {"associatedcompanyid": "12"}) for i in ids]
    updates[37] = RecordUpdate(ids[37], {"associatedcompanyid": "twelve"})
    results = hubspot_for(small_sandbox).write("contacts", updates)
    assert [r.status for r in results] == ["applied"] * 37 + ["rejected"] + ["applied"] * 62
    assert results[37].code == "INVALID_NUMBER"
    assert "twelve" in (results[37].message or "")
    # Bisection spent 13 calls here; dropping the input that carries the value costs 2.
    assert _calls(small_sandbox, "hubspot.batch_update") == 2
    assert small_sandbox.hubspot_record("contacts", ids[0])["properties"][
        "associatedcompanyid"] == "12"


def test_several_invalid_values_cost_a_call_each_not_bisection(small_sandbox: Sandbox) -> None:
    ids = _contacts(small_sandbox, 100)
    bad = {5: "five", 50: "fifty", 51: "fifty", 90: "ninety"}
    updates = [RecordUpdate(i, {"associatedcompanyid": bad.get(n, "7")})
               for n, i in enumerate(ids)]
    results = hubspot_for(small_sandbox).write("contacts", updates)
    rejected = [n for n, r in enumerate(results) if r.status == "rejected"]
    assert rejected == sorted(bad)
    assert {r.status for n, r in enumerate(results) if n not in bad} == {"applied"}
    # The sandbox names only the first failing input's value, the harder case: one call per
    # distinct bad value, plus the one that succeeds (bisection: about 40).
    assert _calls(small_sandbox, "hubspot.batch_update") == 4


def test_an_option_missing_from_the_portal_stops_the_run(small_sandbox: Sandbox) -> None:
    small_sandbox.remove_hubspot_option("contacts", "crmsync_priority", "trigger_fit")
    hubspot = hubspot_for(small_sandbox)
    with pytest.raises(ConfigurationError) as caught:
        hubspot.write("contacts", _priorities(_contacts(small_sandbox, 300)))
    message = str(caught.value)
    for part in ("contacts", "crmsync_priority", "trigger_fit", "crmsync check"):
        assert part in message
    # One refused batch and one look at the property; no bisection, no further batches.
    assert _calls(small_sandbox, "hubspot.batch_update") == 1
    assert _calls(small_sandbox, "hubspot.properties") == 1


def test_a_missing_property_stops_the_run(small_sandbox: Sandbox) -> None:
    small_sandbox.remove_hubspot_property("contacts", "crmsync_icp_fit")
    ids = _contacts(small_sandbox, 200)
    with pytest.raises(ConfigurationError, match="crmsync_icp_fit") as caught:
        hubspot_for(small_sandbox).write(
            "contacts", [RecordUpdate(i, {"crmsync_icp_fit": "true"}) for i in ids])
    assert "does not exist" in str(caught.value) and "crmsync check" in str(caught.value)
    assert _calls(small_sandbox, "hubspot.batch_update") == 1


def test_a_read_only_property_stops_the_run(small_sandbox: Sandbox) -> None:
    ids = _contacts(small_sandbox, 10)
    with pytest.raises(ConfigurationError, match=r"read-only|read only") as caught:
        hubspot_for(small_sandbox).write(
            "contacts", [RecordUpdate(i, {"createdate": "0"}) for i in ids])
    assert "contacts" in str(caught.value) and "createdate" in str(caught.value)
    assert _calls(small_sandbox, "hubspot.batch_update") == 1


def test_a_sync_with_a_missing_option_exits_2(tmp_path: Path) -> None:
    with Sandbox(seed=30, **FAST_LIMITS) as sb:
        sb.remove_hubspot_option("contacts", "crmsync_priority", "fit")
        settings = settings_for(sb, state_path=tmp_path / "state.db")
        with StateStore(tmp_path / "state.db") as store:
            report = Engine(store, load_mapping(), build_adapters(settings)).backfill()
        assert report.exit_code == 2, report.message
        assert "contacts.crmsync_priority has no option 'fit'" in (report.message or "")
        assert "crmsync check" in (report.message or "")


# ---- 2. the daily budget ---------------------------------------------------------------------


def test_the_run_stops_before_its_share_of_the_portal_daily_limit() -> None:
    with Sandbox(seed=30, hubspot_daily_limit=1_000, hubspot_daily_used=480,
                 **FAST_LIMITS) as sb:
        hubspot = hubspot_for(sb, hubspot_max_daily_share=0.5)
        one = _contacts(sb, 1)
        with pytest.raises(BudgetExhausted, match="CRMSYNC_HUBSPOT_MAX_DAILY_SHARE"):
            for _ in range(100):
                hubspot.read_by_ids("contacts", one, [])
        ours = sb.counters()["total_requests"]
        assert 480 + ours <= 500
        assert ours >= 15  # it did not stop early either
        usage = hubspot.usage()
        assert usage.daily_allocation == 1_000
        assert usage.daily_used is not None and usage.daily_used <= 500


def test_a_sync_near_the_daily_share_exits_3(tmp_path: Path) -> None:
    with Sandbox(seed=30, hubspot_daily_limit=1_000, hubspot_daily_used=495,
                 **FAST_LIMITS) as sb:
        settings = settings_for(sb, state_path=tmp_path / "state.db")
        with StateStore(tmp_path / "state.db") as store:
            report = Engine(store, load_mapping(), build_adapters(settings)).backfill()
        assert report.exit_code == 3, report.message
        assert "CRMSYNC_HUBSPOT_MAX_DAILY_SHARE" in (report.message or "")
        hubspot_calls = sum(n for e, n in sb.counters()["requests"].items()
                            if e.startswith("hubspot."))
        assert 495 + hubspot_calls <= 500


# ---- 3. rate windows -------------------------------------------------------------------------


def test_searches_are_free_and_the_window_follows_ratelimit_max() -> None:
    """A Pro portal (190 per window): more than 100 calls fit in one window alongside
    searches, without waiting and without a 429."""
    with Sandbox(seed=30, hubspot_requests_per_window=190, hubspot_window_seconds=3.0,
                 search_requests_per_second=1000) as sb:
        hubspot = HubSpotAdapter(sb.hubspot_access_token, sb.hubspot_base_url,
                                 ca_bundle=sb.ca_path,
                                 limits=HubSpotLimits(window_seconds=3.0, search_per_second=1000))
        for _ in range(40):
            hubspot.count("contacts")
        one = _contacts(sb, 1)
        for _ in range(160):
            hubspot.read_by_ids("contacts", one, [])
        assert hubspot.usage().rate_wait_seconds == 0
        statuses = sb.counters()["statuses"]
        assert not any("429" in by_status for by_status in statuses.values())
        assert statuses["hubspot.batch_read"] == {"200": 160}


def test_the_window_keeps_a_share_for_other_integrations() -> None:
    """Against a 10-request window we use 90% of it: the 10th call within a window waits
    (a client using the whole window would send it at once)."""
    with Sandbox(seed=30, hubspot_requests_per_window=10, hubspot_window_seconds=1.0,
                 search_requests_per_second=1000) as sb:
        hubspot = HubSpotAdapter(sb.hubspot_access_token, sb.hubspot_base_url,
                                 ca_bundle=sb.ca_path,
                                 limits=HubSpotLimits(window_seconds=1.0))
        one = _contacts(sb, 1)
        for _ in range(10):
            hubspot.read_by_ids("contacts", one, [])
        assert hubspot.usage().rate_wait_seconds > 0
        statuses = sb.counters()["statuses"]
        assert not any("429" in by_status for by_status in statuses.values())


# ---- 4. scopes -------------------------------------------------------------------------------


def test_a_write_without_the_write_scope_is_a_configuration_error() -> None:
    with Sandbox(seed=30, hubspot_scopes=EVERY_SCOPE - {"crm.objects.contacts.write"},
                 **FAST_LIMITS) as sb:
        ids = _contacts(sb, 3)
        with pytest.raises(ConfigurationError, match=r"crm\.objects\.contacts\.write") as caught:
            hubspot_for(sb).write("contacts", [RecordUpdate(i, {"firstname": "X"}) for i in ids])
        assert "scope" in str(caught.value)
        assert sb.counters()["requests"]["hubspot.batch_update"] == 1


def test_check_reports_missing_scopes_not_connectivity() -> None:
    with Sandbox(seed=30, hubspot_scopes=EVERY_SCOPE - {"crm.schemas.companies.read"},
                 **FAST_LIMITS) as sb:
        report = check_systems({"hubspot": hubspot_for(sb)}, load_mapping())
        errors = report.errors
        assert [(f.what, f.object_type) for f in errors] == [("scopes", "companies")]
        assert "crm.schemas.companies.read" in errors[0].detail
        assert "Private Apps" in errors[0].fix
        assert ("hubspot", "connectivity and authentication") in {
            (f.system, f.what) for f in report.findings if f.level == "ok"}


# ---- 5. the bench's claim, at a small size -----------------------------------------------------


def test_misconfigured_bench_now_meets_the_target_and_bisection_did_not(tmp_path: Path) -> None:
    from bench.misconfigured import measure_misconfigured  # noqa: PLC0415

    rows = {(r.scenario, r.algorithm): r for r in measure_misconfigured(tmp_path, contacts=1_000)}
    assert rows["no errors", "now"].update_calls == 10
    for scenario in ("option missing", "1% invalid"):
        assert rows[scenario, "now"].meets_target, rows[scenario, "now"]
        assert not rows[scenario, "bisection (before)"].meets_target
    assert rows["option missing", "now"].outcome.startswith("stopped")
    assert rows["1% invalid", "now"].rejected == 10
    assert rows["1% invalid", "now"].applied == 990
    assert (tmp_path / "misconfigured.md").read_text().startswith("| scenario |")
