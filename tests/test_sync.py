"""The engine's guarantees, each checked against the sandbox through the real SDKs."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from connector.mapping import load_mapping
from connector.sandbox import Sandbox
from connector.settings import Settings
from connector.state import StateStore
from connector.sync import Engine, PlanDocument, parse_objects
from connector.sync.read import read_everything
from connector.systems.factory import build_adapters
from tests.helpers import FAST_RETRIES, engine_for, hold_lock, linked_early_contact, written

SEED = 40


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=SEED) as sb:
        yield sb


@pytest.fixture
def engine(sandbox, state_location) -> Iterator[Engine]:
    """An engine on each state store backend (tests/state_backends.py)."""
    with engine_for(sandbox, state_location) as built:
        yield built


def test_backfill_writes_then_a_second_sync_writes_nothing(engine, sandbox):
    backfill = engine.backfill()
    assert backfill.status == "ok", backfill.message
    assert backfill.applied == backfill.planned > 0
    assert sum(backfill.read.values()) > 4 * SEED
    before = written(sandbox)
    again = engine.sync()
    assert (again.status, again.planned, again.applied) == ("ok", 0, 0)
    assert written(sandbox) == before


def test_no_echo_after_a_sync_that_wrote(engine, sandbox):
    engine.backfill()
    contact = linked_early_contact(sandbox)
    sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "salesqualifiedlead"})
    first = engine.sync()
    assert first.applied > 0
    echo = engine.sync()
    assert echo.read["hubspot.contacts"] > 0  # our own writes are read back...
    assert (echo.planned, echo.applied) == (0, 0)  # ...and change nothing


def test_dry_run_plans_exactly_what_the_real_run_does_and_writes_nothing(engine, sandbox):
    before = written(sandbox)
    dry = engine.sync(dry_run=True)
    assert written(sandbox) == before
    assert dry.dry_run and dry.would_apply == dry.planned > 0 and dry.applied == 0
    assert engine.store.journal.applied_count() == 0
    real = engine.sync()

    def key(rows):
        return sorted((r["system"], r["record_id"], r["field"], r["step"], str(r["after"]))
                      for r in rows)

    assert key(real.changes) == key(dry.changes)


def test_a_second_concurrent_run_refuses_and_writes_nothing(sandbox, state_location):
    state = state_location
    StateStore(state).close()
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=hold_lock, args=(state, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        sandbox.reset_counters()
        with engine_for(sandbox, state) as engine:
            report = engine.sync()
        assert (report.status, report.exit_code) == ("stopped", 3)
        assert "holds the lock" in report.message and "wrote nothing" in report.message
        assert sandbox.counters()["total_requests"] == 0
    finally:
        release.set()
        holder.join(30)


def test_a_bad_record_is_rejected_and_retried_the_rest_goes_on(engine, sandbox):
    engine.backfill()
    lead = next(r for r in sandbox.salesforce_records("Lead") if not r.get("IsConverted"))
    sandbox.update_salesforce("Lead", lead["Id"], {"Status": "Nurturing"})
    account = sandbox.salesforce_records("Account")[0]
    sandbox.update_salesforce("Account", account["Id"],
                              {"Funding_Announced_Date__c": date.today().isoformat()})
    report = engine.sync()
    assert (report.status, report.exit_code) == ("rejects", 1)
    [reject] = engine.store.ledger.open()
    assert reject.ref == f"salesforce:Lead:{lead['Id']}"
    assert "unknown Lead.Status 'Nurturing'" in reject.reason
    assert any(c["record_id"] == account["Id"] and c["status"] == "applied"
               for c in report.changes)
    sandbox.update_salesforce("Lead", lead["Id"], {"Status": "Working - Contacted"})
    fixed = engine.sync()
    assert fixed.status == "ok"
    assert engine.store.ledger.open() == []


def _mapping_writing_values_salesforce_refuses():
    """Contact stages written as 'SQL (x)' etc.: readable by the mapping, not in the picklist."""
    mapping = load_mapping()
    rules = mapping.write_back[("salesforce", "Contact")]
    stage_rule = next(r for r in rules if r.field == "Lifecycle_Stage__c")
    bad_values = {k: f"{v} (x)" for k, v in stage_rule.values.items() if v}
    forward = mapping.picklists[("salesforce", "Contact")][0]
    readable = {**forward.values, **{f"{v} (x)": forward.values[v]
                                     for v in stage_rule.values.values() if v}}
    return replace(
        mapping,
        picklists={**mapping.picklists,
                   ("salesforce", "Contact"): (replace(forward, values=readable),)},
        write_back={**mapping.write_back, ("salesforce", "Contact"): tuple(
            replace(r, values=bad_values) if r is stage_rule else r for r in rules)},
    )


class _ValuesOnTheFieldOnly:
    """The Salesforce adapter, its describe listing the '(x)' values as active on the field:
    as in an org where they are on the field but not in the records' record type, which
    Salesforce refuses record by record (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST; Gearset,
    "Data deployments and picklist errors"). Pre-flight checks the field, so they pass it."""

    def __init__(self, adapter, extra: tuple[str, ...]) -> None:
        self._adapter, self._extra = adapter, extra

    def __getattr__(self, name):
        return getattr(self._adapter, name)

    def describe_fields(self, object_type):
        fields = self._adapter.describe_fields(object_type)
        stage = fields.get("Lifecycle_Stage__c")
        if object_type == "Contact" and stage is not None:
            fields["Lifecycle_Stage__c"] = replace(stage, options=stage.options + self._extra)
        return fields


def test_write_rejections_are_ledgered_with_the_system_code(sandbox, tmp_path):
    mapping = _mapping_writing_values_salesforce_refuses()
    with engine_for(sandbox, tmp_path / "s.db", mapping=mapping) as engine:
        extra = tuple(v for r in mapping.write_back[("salesforce", "Contact")]
                      for v in (r.values or {}).values() if v)
        engine.adapters["salesforce"] = _ValuesOnTheFieldOnly(engine.adapters["salesforce"],
                                                              extra)
        report = engine.backfill()
        ledger = [r for r in engine.store.ledger.open() if r.stage == "write"]
    rejected = [c for c in report.changes if c["status"] == "rejected"]
    assert rejected and (report.status, report.exit_code) == ("rejects", 1)
    assert {c["code"] for c in rejected} == {"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"}
    # Salesforce refuses a record whole: its other fields in the same update go with it
    for rid in {c["record_id"] for c in rejected}:
        assert any(c["record_id"] == rid and str(c["after"]).endswith(" (x)") for c in rejected)
    assert {r.ref for r in ledger} == {f"salesforce:Contact:{c['record_id']}" for c in rejected}
    assert any(c["status"] == "applied" for c in report.changes)  # the rest went on


def test_plan_then_apply_and_apply_refuses_a_stale_plan(engine, sandbox):
    report, document = engine.plan()
    assert report.status == "ok" and document.changes
    assert engine.store.journal.applied_count() == 0
    restored = PlanDocument.from_json(document.to_json())
    applied = engine.apply(restored)
    assert applied.applied == len(document.changes)

    contact = linked_early_contact(sandbox)
    sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "salesqualifiedlead"})
    _, second = engine.plan()
    target = next(c for c in second.changes if c.system.value == "salesforce")
    obj, rid, name = target.object_type, target.record_id, target.field
    sandbox.update_salesforce(obj, rid, {name: _other_value(target)})
    before = written(sandbox)
    refused = engine.apply(second)
    assert (refused.status, refused.exit_code) == ("config_error", 2)
    assert f"salesforce:{obj}:{rid} {name} is now" in refused.message
    assert written(sandbox) == before


def _other_value(change):
    """A value a user might type that differs from what the plan expected."""
    return {"Lifecycle_Stage__c": "Evangelist", "Status": "Working - Contacted"}.get(
        change.field, "changed by a user")


def test_rollback_restores_before_values_and_skips_fields_changed_since(engine, sandbox):
    engine.backfill()
    trigger_fields = ("Funding_Announced_Date__c", "New_Executive_Date__c", "Expansion_Date__c",
                      "Cost_Savings_Announced_Date__c")
    accounts = [a for a in sandbox.salesforce_records("Account")
                if not any(a.get(f) for f in trigger_fields)][:2]
    for account in accounts:
        sandbox.update_salesforce("Account", account["Id"],
                                  {"Funding_Announced_Date__c": date.today().isoformat()})
    run = engine.sync()
    assert run.applied > 0
    first, second = (a["Id"] for a in accounts)
    assert sandbox.salesforce_record("Account", first)["Buying_Signal__c"] is True
    sandbox.update_salesforce("Account", second, {"Buying_Signal_Type__c": "hand-edited"})
    undo = engine.rollback(run.run_id)
    assert undo.status == "ok", undo.message
    assert sandbox.salesforce_record("Account", first)["Buying_Signal__c"] is False
    assert sandbox.salesforce_record("Account", first)["Buying_Signal_Type__c"] is None
    assert sandbox.salesforce_record("Account", second)["Buying_Signal_Type__c"] == "hand-edited"
    assert any(s["record"] == f"salesforce:Account:{second}" and
               s["field"] == "Buying_Signal_Type__c" for s in undo.rejects)


def test_backfill_objects_filter(engine):
    report = engine.backfill(objects=parse_objects("hubspot.contacts,Lead"))
    assert set(report.read) == {"hubspot.contacts", "salesforce.Lead"}
    with pytest.raises(Exception, match="unknown object 'leeds'"):
        parse_objects("leeds")


class RecordingProgress:
    """Records what the engine reports, as a progress display would receive it."""

    wants_totals = True

    def __init__(self) -> None:
        self.started: dict[str, int | None] = {}
        self.advanced: dict[str, int] = {}

    def start(self, key, total=None):
        self.started[key] = total

    def advance(self, key, count):
        self.advanced[key] = self.advanced.get(key, 0) + count

    def finish(self, key): ...

    def note(self, message): ...


def test_backfill_gives_progress_totals_that_match_what_is_read(engine):
    engine.progress = RecordingProgress()
    report = engine.backfill()
    assert engine.progress.started == report.read  # the total announced == records read
    assert engine.progress.advanced == report.read


def test_no_totals_are_fetched_when_nobody_draws_progress(engine, sandbox):
    sandbox.reset_counters()
    engine.backfill()
    requests = sandbox.counters()["requests"]
    assert requests.get("hubspot.search", 0) == 0  # HubSpot backfill uses the list API only


def test_a_plan_made_with_another_mapping_is_refused(engine, sandbox, tmp_path):
    _, document = engine.plan()
    lead_status = engine.mapping.picklists[("salesforce", "Lead")][0]
    edited = replace(lead_status, values={**lead_status.values, "Extra": lead_status.values[
        "Open - Not Contacted"]})
    engine.mapping = replace(engine.mapping, picklists={**engine.mapping.picklists,
                                                        ("salesforce", "Lead"): (edited,)})
    before = written(sandbox)
    refused = engine.apply(document)
    assert (refused.status, refused.exit_code) == ("config_error", 2)
    assert "different mapping" in refused.message
    assert written(sandbox) == before


def test_plan_fingerprint_is_stable_across_processes(tmp_path):
    code = ("from connector.mapping import load_mapping; from connector.sync import "
            "mapping_fingerprint as f; print(f(load_mapping()))")
    prints = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin"},
                             cwd=Path(__file__).parents[1]).stdout for seed in (1, 2)}
    assert len(prints) == 1


def test_prefetched_pages_arrive_in_order_and_an_error_after_the_pages_before_it():
    from connector.sync import _prefetched  # noqa: PLC0415

    def pages():
        yield "page 1"
        yield "page 2"
        raise RuntimeError("page 3 failed")

    got = []
    with pytest.raises(RuntimeError, match="page 3 failed"):
        for page in _prefetched(pages(), 2):
            got.append(page)
    assert got == ["page 1", "page 2"]


def test_a_caller_that_stops_early_closes_the_pages_it_left():
    import threading  # noqa: PLC0415

    from connector.sync import _prefetched  # noqa: PLC0415

    closed = threading.Event()

    def pages():
        try:
            yield from range(1_000)
        finally:
            closed.set()

    for page in _prefetched(pages(), 2):
        if page == 3:
            break
    assert closed.wait(5)


def test_read_everything_reads_what_a_backfill_reads_with_the_same_requests(sandbox, tmp_path):
    """The adapters-only read (the benchmark's, over adapters as `build_adapters` gives them)
    asks the CRMs for what a backfill asks for: the same objects, records and requests, so
    timing it times the same reads."""
    with engine_for(sandbox, tmp_path / "state.db") as engine:
        before = sandbox.counters()["requests"]
        backfill = engine.backfill(dry_run=True)
        by_backfill = _requests_since(before, sandbox.counters()["requests"])
    settings = Settings.from_env_map(sandbox.settings_env(), state_path=tmp_path / "unused.db",
                                     **FAST_RETRIES)
    before = sandbox.counters()["requests"]
    read = read_everything(build_adapters(settings), load_mapping())
    by_read_everything = _requests_since(before, sandbox.counters()["requests"])
    assert backfill.status == "ok", backfill.message
    assert read == backfill.read
    # Beyond the reads, the backfill described the fields it would write (pre-flight).
    assert by_read_everything == {name: count for name, count in by_backfill.items()
                                  if name not in ("hubspot.properties", "salesforce.describe")}


def _requests_since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after
            if after[name] != before.get(name, 0)}
