"""The Salesforce adapter's Bulk API 2.0 writes against the sandbox (real HTTPS, the real
simple-salesforce session): per-record outcomes as the collections path gives them, the job's
id handed over before its data goes up, stalls, failed jobs, garbled answers, and what a job
costs in calls."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from connector.exceptions import BulkJobPending, ConfigurationError
from connector.sandbox import Sandbox
from connector.sandbox import salesforce as sandbox_salesforce
from connector.systems.base import RecordUpdate, WriteResult
from connector.systems.salesforce import SalesforceAdapter
from connector.systems.salesforce_bulk import JobInfo, _next_pause, job_csv

from .helpers import FAST_LIMITS, salesforce_for

BULK = {"salesforce_bulk_poll_seconds": 0.05, "salesforce_bulk_min_records": 1}
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # both orgs of a pair on one clock


class Hooks:
    """Records what the adapter tells about its jobs, and what the sandbox had seen then."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.jobs: list[tuple[str, int, int]] = []
        self.requests_at_creation: list[int] = []
        self.states: list[str] = []

    def created(self, job_id: str, records: int, step: int) -> None:
        self.jobs.append((job_id, records, step))
        self.requests_at_creation.append(
            self.sb.counters()["requests"].get("salesforce.bulk_ingest", 0))

    def seen(self, info: JobInfo) -> None:
        self.states.append(info.state)


def people(leads: int, contacts: int, *, shared: int = 0) -> dict[str, Any]:
    """`leads` Leads and `contacts` Contacts, the first `shared` of each with one e-mail."""
    lead_rows = [{"LastName": f"Lead {n}", "Company": "Polder B.V.",
                  "Status": "Open - Not Contacted", "Email": f"lead{n}@polder.nl"}
                 for n in range(leads)]
    contact_rows = [{"LastName": f"Contact {n}",
                     "Email": f"LEAD{n}@polder.nl" if n < shared else f"contact{n}@polder.nl"}
                    for n in range(contacts)]
    return {"salesforce": {"Lead": lead_rows, "Contact": contact_rows}}


@pytest.fixture
def pair() -> Iterator[tuple[Sandbox, Sandbox]]:
    """Two identical orgs: 12 Leads (the first 3 with a Contact of the same e-mail), one of
    them converted and one deleted, and 5 Contacts."""
    with Sandbox(fixture=people(12, 5, shared=3), now=NOW, **FAST_LIMITS) as one, \
            Sandbox(fixture=people(12, 5, shared=3), now=NOW, **FAST_LIMITS) as two:
        for sb in (one, two):
            leads = ids(sb, "Lead")
            contact = ids(sb, "Contact")[4]
            sb.update_salesforce("Lead", leads[10], {"IsConverted": True,
                                                     "ConvertedContactId": contact,
                                                     "Status": "Closed - Converted"})
            sb.delete_salesforce("Lead", leads[11])
        yield one, two


def ids(sb: Sandbox, sobject: str) -> list[str]:
    return sorted(r["Id"] for r in sb.salesforce_records(sobject))


def lead_updates(sb: Sandbox) -> list[RecordUpdate]:
    leads = ids(sb, "Lead")
    updates = [RecordUpdate(i, {"Priority__c": "fit", "ICP_Fit__c": True}) for i in leads]
    updates[5] = RecordUpdate(leads[5], {"Priority__c": "urgent"})  # not a picklist value
    updates[6] = RecordUpdate(leads[6], {"Priority__c": None, "ICP_Fit__c": False})
    return updates


def outcome(results: list[WriteResult]) -> list[tuple[str, str, str | None]]:
    return [(r.record_id, r.status, r.code) for r in results]


def stored(sb: Sandbox, sobject: str) -> dict[str, dict[str, Any]]:
    return {r["Id"]: {k: v for k, v in r.items() if k not in ("SystemModstamp",
                                                               "LastModifiedDate")}
            for r in sb.salesforce_records(sobject)}


def bulk_write(adapter: SalesforceAdapter, sb: Sandbox, sobject: str,
               updates: list[RecordUpdate]) -> tuple[list[WriteResult], Hooks]:
    hooks = Hooks(sb)
    return adapter.bulk.write(sobject, updates, hooks), hooks


# ---- the same outcomes as sObject Collections ----------------------------------------------


@pytest.mark.parametrize("allow_save", [True, False])
def test_a_bulk_write_gives_the_outcomes_and_state_collections_give(
        pair: tuple[Sandbox, Sandbox], allow_save: bool) -> None:
    collections_org, bulk_org = pair
    settings = {**BULK, "salesforce_allow_save_on_duplicates": allow_save}
    by_collections = salesforce_for(collections_org, **settings).write(
        "Lead", lead_updates(collections_org))
    by_bulk, hooks = bulk_write(salesforce_for(bulk_org, **settings), bulk_org, "Lead",
                                lead_updates(bulk_org))
    assert outcome(by_bulk) == outcome(by_collections)
    codes = {code for _, status, code in outcome(by_bulk) if status != "applied"}
    assert codes == ({"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "CANNOT_UPDATE_CONVERTED_LEAD",
                      "ENTITY_IS_DELETED"} | (set() if allow_save else {"DUPLICATES_DETECTED"}))
    assert stored(bulk_org, "Lead") == stored(collections_org, "Lead")
    assert len(hooks.jobs) == 1 and hooks.states[-1] == "JobComplete"
    rejected = next(r for r in by_bulk if r.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert rejected.message == "Priority: bad value for restricted picklist field: urgent"


def test_duplicate_alerts_a_job_cannot_pass_go_again_through_collections_with_allow_save(
        pair: tuple[Sandbox, Sandbox]) -> None:
    _, org = pair
    adapter = salesforce_for(org, **BULK)
    results, _ = bulk_write(adapter, org, "Lead", lead_updates(org))
    assert [r.status for r in results[:3]] == ["applied"] * 3  # the three with duplicates
    counters = org.counters()
    assert counters["requests"]["salesforce.composite"] == 1  # those three, in one request
    assert counters["records_written"]["salesforce.composite"] == 3


def test_without_allow_save_a_duplicate_is_rejected_naming_the_setting(
        pair: tuple[Sandbox, Sandbox]) -> None:
    _, org = pair
    adapter = salesforce_for(org, **BULK, salesforce_allow_save_on_duplicates=False)
    results, _ = bulk_write(adapter, org, "Lead", lead_updates(org))
    assert (results[0].status, results[0].code) == ("rejected", "DUPLICATES_DETECTED")
    assert results[0].message is not None
    assert results[0].message.startswith("Use one of these records?")
    assert "CRMSYNC_SALESFORCE_ALLOW_SAVE_ON_DUPLICATES" in results[0].message
    assert org.counters()["requests"].get("salesforce.composite", 0) == 0


def test_chunks_the_orgs_automation_fails_go_again_in_smaller_collections() -> None:
    with Sandbox(fixture=people(0, 260), salesforce_automation_max_batch=120,
                 now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK)
        contacts = ids(org, "Contact")
        results, _ = bulk_write(adapter, org, "Contact",
                                [RecordUpdate(i, {"Lifecycle_Stage__c": "SQL"}) for i in contacts])
        assert {r.status for r in results} == {"applied"}
        assert {r["Lifecycle_Stage__c"] for r in org.salesforce_records("Contact")} == {"SQL"}
        written = org.counters()["records_written"]
        assert written["salesforce.bulk_ingest"] == 60  # the second chunk of 200 fit
        assert written["salesforce.composite"] == 200  # the first went again, halved
        assert adapter.write_batch_size == 100


def test_the_job_id_is_handed_over_before_any_data_goes_up(pair: tuple[Sandbox, Sandbox]
                                                          ) -> None:
    _, org = pair
    results, hooks = bulk_write(salesforce_for(org, **BULK), org, "Lead", lead_updates(org))
    assert hooks.requests_at_creation == [1]  # only the create had reached the org
    (job_id, records, step), = hooks.jobs
    assert job_id.startswith("750") and records == len(results) and step == 0
    assert hooks.states[0] in {"UploadComplete", "InProgress", "JobComplete"}


def test_a_job_costs_a_handful_of_calls_whatever_its_size() -> None:
    with Sandbox(fixture=people(0, 2_000), now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK)
        org.set_bulk_processing(queue_seconds=0.0)
        updates = [RecordUpdate(i, {"Priority__c": "fit"}) for i in ids(org, "Contact")]
        results, hooks = bulk_write(adapter, org, "Contact", updates)
        assert {r.status for r in results} == {"applied"}
        calls = adapter.usage().by_operation
        polls = len(hooks.states)
        # create, upload, close, the polls, successful and failed results
        assert calls["bulk"] == 3 + polls + 2
        assert org.counters()["requests"]["salesforce.bulk_ingest"] == calls["bulk"]
        assert calls["bulk"] < len(updates) / 200  # collections: one call per 200


# ---- jobs that do not end well -------------------------------------------------------------


def test_a_job_that_does_not_finish_in_time_stops_the_write_resumably() -> None:
    with Sandbox(fixture=people(0, 50), now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK, salesforce_bulk_max_wait_seconds=0.3)
        org.set_bulk_processing(paused=True)
        updates = [RecordUpdate(i, {"Priority__c": "fit"}) for i in ids(org, "Contact")]
        hooks = Hooks(org)
        with pytest.raises(BulkJobPending, match="is still UploadComplete") as stopped:
            adapter.bulk.write("Contact", updates, hooks)
        assert "the next run collects its results" in str(stopped.value)
        (job_id, _, _), = hooks.jobs
        org.set_bulk_processing(paused=False)
        seen: list[str] = []
        collected = adapter.bulk.collect(job_id, lambda info: seen.append(info.state))
        assert collected is not None
        assert collected.info.state == "JobComplete" and seen[-1] == "JobComplete"
        assert set(collected.applied) == {u.record_id for u in updates}


def test_collecting_a_job_never_closed_aborts_it_so_it_never_runs() -> None:
    with Sandbox(fixture=people(0, 3), now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK)
        job_id = adapter.bulk.create("Contact")
        adapter.bulk._upload(job_id, job_csv([RecordUpdate(i, {"Priority__c": "fit"})
                                              for i in ids(org, "Contact")]))
        collected = adapter.bulk.collect(job_id, lambda info: None)
        assert collected is not None
        assert collected.info.state == "Aborted" and collected.applied == frozenset()
        assert adapter.bulk.info(job_id).state == "Aborted"
        assert {r["Priority__c"] for r in org.salesforce_records("Contact")} == {None}


def test_a_job_salesforce_no_longer_knows_is_collected_as_unknown() -> None:
    with Sandbox(fixture=people(0, 1), now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK)
        assert adapter.bulk.collect("750Dn0000000999AAA", lambda info: None) is None


def test_records_a_failed_job_left_unprocessed_are_retry_later() -> None:
    with Sandbox(fixture=people(0, 300), salesforce_bulk_daily_records=250,
                 now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK)
        updates = [RecordUpdate(i, {"Priority__c": "fit"}) for i in ids(org, "Contact")]
        results, hooks = bulk_write(adapter, org, "Contact", updates)
        assert hooks.states[-1] == "Failed"
        assert [r.status for r in results].count("applied") == 250
        left = [r for r in results if r.status != "applied"]
        assert len(left) == 50 and {(r.status, r.code) for r in left} == {
            ("retry_later", "NOT_PROCESSED")}
        assert "daily limit" in (left[0].message or "")


def test_a_column_the_org_does_not_have_stops_the_write_as_a_configuration_error() -> None:
    with Sandbox(fixture=people(2, 0), now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK)
        updates = [RecordUpdate(i, {"Score__c": 3}) for i in ids(org, "Lead")]
        with pytest.raises(ConfigurationError, match="Field name not found : Score__c"):
            bulk_write(adapter, org, "Lead", updates)


def test_garbled_and_dropped_answers_are_retried_and_change_no_outcome() -> None:
    faults = ("salesforce.bulk_ingest:truncated=0.15, salesforce.bulk_ingest:html=0.1, "
              "salesforce.bulk_ingest:drop=0.1, salesforce.bulk_ingest:503=0.1, seed=4")
    with Sandbox(fixture=people(0, 120), faults=faults, now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK)
        contacts = ids(org, "Contact")
        updates = [RecordUpdate(i, {"Priority__c": "fit"}) for i in contacts]
        updates[7] = RecordUpdate(contacts[7], {"Priority__c": "urgent"})
        results, _ = bulk_write(adapter, org, "Contact", updates)
        assert [r.status for r in results] == ["rejected" if n == 7 else "applied"
                                               for n in range(120)]
        assert adapter.usage().retries > 0
        assert sum(org.counters()["faults"]["salesforce.bulk_ingest"].values()) > 0


# ---- when, and what goes up ----------------------------------------------------------------


def test_bulk_is_worth_it_from_the_threshold_and_only_with_batches_left(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(fixture=people(1, 0), now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, salesforce_bulk_min_records=2_000)
        assert not adapter.bulk.worth_it(1_999)
        assert adapter.bulk.worth_it(2_000)
        assert adapter.usage().by_operation == {"token": 1, "limits": 1}
        assert not salesforce_for(org, salesforce_bulk_min_records=0).bulk.worth_it(10**6)
        monkeypatch.setattr(sandbox_salesforce, "_OTHER_LIMITS",
                            (("DailyBulkApiBatches", 2), ("DailyBulkV2QueryJobs", 10)))
        short = salesforce_for(org, salesforce_bulk_min_records=2_000)
        assert short.bulk.worth_it(5_000)  # one batch and the parent
        assert not short.bulk.worth_it(15_000)  # two more: the org has none left


def test_the_job_csv_nulls_with_na_and_leaves_fields_a_record_does_not_write() -> None:
    text = job_csv([RecordUpdate("001A", {"Name": "Polder, B.V.", "ICP_Fit__c": True}),
                    RecordUpdate("001B", {"Buying_Signal_Date__c": date(2026, 11, 20),
                                          "Name": None, "ICP_Fit__c": ""})]).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [["Id", "Buying_Signal_Date__c", "ICP_Fit__c", "Name"],
                    ["001A", "", "true", "Polder, B.V."],
                    ["001B", "2026-11-20", "#N/A", "#N/A"]]
    assert "\r" not in text


# ---- backfill reads through a query job ----------------------------------------------------


def test_a_small_object_is_read_in_query_batches_at_no_extra_call() -> None:
    with Sandbox(fixture=people(0, 300), now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, salesforce_bulk_query_min_records=1)
        records = [r for page in adapter.read_all("Contact", ["Email"]) for r in page.records]
        assert len(records) == 300
        assert adapter.usage().by_operation == {"token": 1, "query": 1}  # done in one batch


def test_below_the_threshold_a_read_stays_in_query_batches() -> None:
    with Sandbox(fixture=people(0, 300), now=NOW, salesforce_query_batch=200,
                 **FAST_LIMITS) as org:
        adapter = salesforce_for(org, salesforce_bulk_query_min_records=301)
        assert sum(len(p.records) for p in adapter.read_all("Contact", ["Email"])) == 300
        assert adapter.usage().by_operation == {"token": 1, "query": 2}


def test_a_backfill_read_through_a_query_job_gives_what_query_batches_give() -> None:
    with Sandbox(seed=120, now=NOW, salesforce_query_batch=50, **FAST_LIMITS) as org:
        fields = ["Email", "ICP_Fit__c", "NumberOfEmployees", "AnnualRevenue", "Priority__c",
                  "Funding_Announced_Date__c", "StageName", "Amount", "IsConverted"]
        for sobject in ("Account", "Contact", "Lead", "Opportunity"):
            wanted = [f for f in fields if f in _describe(org, sobject)]
            by_rest = salesforce_for(org).read_all(sobject, wanted)
            bulk = salesforce_for(org, salesforce_bulk_query_min_records=10)
            by_job = bulk.read_all(sobject, wanted)
            rest_records = {r["Id"]: r for page in by_rest for r in page.records}
            job_pages = list(by_job)
            job_records = {r["Id"]: r for page in job_pages for r in page.records}
            assert job_records == rest_records, sobject
            assert all(len(page.records) <= 2_000 for page in job_pages)
            calls = bulk.usage().by_operation
            assert len(rest_records) > 50, sobject  # more than one query batch
            # the first query batch (its totalSize chose the job), then the job
            assert calls["bulk"] >= 3 and calls["query"] == 1, sobject


def _describe(org: Sandbox, sobject: str) -> set[str]:
    return set(salesforce_for(org).describe_fields(sobject))


def test_a_query_results_set_cut_short_is_fetched_again() -> None:
    with Sandbox(fixture=people(0, 300), now=NOW, faults="salesforce.bulk_query:truncated=0.3, "
                 "seed=2", salesforce_query_batch=200, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK, salesforce_bulk_query_min_records=1)
        records = [r for page in adapter.read_all("Contact", ["Email"]) for r in page.records]
        assert sorted(r["Email"] for r in records) == sorted(
            r["Email"] for r in org.salesforce_records("Contact"))  # each once
        assert org.counters()["records_returned"]["salesforce.bulk_query"] >= 300
        assert sum(org.counters()["faults"]["salesforce.bulk_query"].values()) > 0


def test_a_query_job_that_does_not_finish_in_time_stops_the_read_resumably() -> None:
    with Sandbox(fixture=people(0, 500), now=NOW, salesforce_query_batch=200,
                 **FAST_LIMITS) as org:
        org.set_bulk_processing(paused=True)
        adapter = salesforce_for(org, **BULK, salesforce_bulk_query_min_records=1,
                                 salesforce_bulk_max_wait_seconds=0.2)
        with pytest.raises(BulkJobPending, match=r"Bulk query job .* is still UploadComplete"
                           ) as stopped:
            list(adapter.read_all("Contact", ["Email"]))
        assert "The next run reads the object again." in str(stopped.value)


@pytest.mark.parametrize("late", [2, 3], ids=["upload", "UploadComplete"])
def test_an_answer_that_came_too_late_is_not_sent_twice_nor_given_up(late: int) -> None:
    with Sandbox(fixture=people(0, 20), now=NOW, **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK, http_timeout_seconds=0.5)
        # the org makes the request, then answers after the client stopped waiting
        org.after_request("salesforce.bulk_ingest", late, lambda: time.sleep(1.0))
        updates = [RecordUpdate(i, {"Priority__c": "fit"}) for i in ids(org, "Contact")]
        results, hooks = bulk_write(adapter, org, "Contact", updates)
        assert {r.status for r in results} == {"applied"}
        assert len(hooks.jobs) == 1 and adapter.usage().retries >= 1
        assert org.counters()["records_written"]["salesforce.bulk_ingest"] == 20


def test_polls_double_until_a_job_shows_progress_then_come_when_it_should_be_done() -> None:
    queued = JobInfo("750A", "UploadComplete")
    assert [_next_pause(p, queued, 4_000, 3.0, 30.0) for p in (1.0, 8.0, 20.0)] == [
        2.0, 16.0, 30.0]
    quarter = JobInfo("750A", "InProgress", processed=1_000)
    assert _next_pause(1.0, quarter, 4_000, 10.0, 60.0) == 30.0  # 3,000 left at 100/s
    assert _next_pause(1.0, quarter, 4_000, 10.0, 20.0) == 20.0  # never past poll_seconds
    almost = JobInfo("750A", "InProgress", processed=3_999)
    assert _next_pause(4.0, almost, 4_000, 10.0, 30.0) == 1.0  # never under a second
    assert _next_pause(2.0, quarter, None, 10.0, 30.0) == 4.0  # a query job: size unknown


def test_results_name_records_by_18_characters_and_updates_may_use_15() -> None:
    from connector.systems.salesforce_bulk import _result  # noqa: PLC0415 - one private helper

    info = JobInfo("750A", "JobComplete", processed=2, failed=1)
    saved = {"003Dn0000000001": "003Dn0000000001AAA"}
    failed = {"003Dn0000000002": ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Priority: bad")}
    applied = _result(RecordUpdate("003Dn0000000001", {"Priority__c": "fit"}), saved, failed,
                      info)
    rejected = _result(RecordUpdate("003Dn0000000002AAA", {"Priority__c": "x"}), saved, failed,
                       info)
    missing = _result(RecordUpdate("003Dn0000000003AAA", {"Priority__c": "x"}), saved, failed,
                      info)
    assert (applied.status, rejected.status, rejected.code) == (
        "applied", "rejected", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert (missing.status, missing.code) == ("retry_later", "NOT_PROCESSED")


def test_a_user_who_may_not_read_limits_still_gets_bulk_writes() -> None:
    with Sandbox(fixture=people(1, 0), now=NOW, faults="salesforce.limits:500=1.0",
                 **FAST_LIMITS) as org:
        adapter = salesforce_for(org, **BULK, retry_max_attempts=2)
        assert adapter.bulk.worth_it(5_000)
        assert org.counters()["requests"]["salesforce.limits"] == 2  # tried, retried, gave up
