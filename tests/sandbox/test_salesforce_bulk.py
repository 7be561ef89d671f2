"""The emulated org's Bulk API 2.0 (ingest and query jobs), over HTTPS with a real session,
as a client sees it: job states moving on their own, CSV in and out, per-record failures with
the same rules as sObject Collections, the documented limits, and every request counted."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.sandbox import Sandbox
from connector.sandbox import salesforce_bulk as bulk_module
from tests.sandbox.clients import NOW, salesforce_session

TERMINAL = {"JobComplete", "Failed", "Aborted"}


class BulkClient:
    """Bare Bulk API 2.0 requests with a client-credentials token (no SDK in between)."""

    def __init__(self, sb: Sandbox) -> None:
        self.session: requests.Session = salesforce_session(sb)
        token = sb.salesforce_token(self.session)
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.base = f"{sb.salesforce_instance_url}/services/data/v59.0/jobs"

    def create(self, sobject: str, **extra: Any) -> dict[str, Any]:
        answer = self.session.post(f"{self.base}/ingest",
                                   json={"object": sobject, "operation": "update", **extra})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def upload(self, job_id: str, text: str) -> requests.Response:
        return self.session.put(f"{self.base}/ingest/{job_id}/batches", data=text.encode(),
                                headers={"Content-Type": "text/csv"})

    def state(self, job_id: str, state: str) -> requests.Response:
        return self.session.patch(f"{self.base}/ingest/{job_id}", json={"state": state})

    def info(self, job_id: str) -> dict[str, Any]:
        return self.session.get(f"{self.base}/ingest/{job_id}").json()

    def wait(self, job_id: str, seconds: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            info = self.info(job_id)
            if info["state"] in TERMINAL:
                return info
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} did not finish: {info}")

    def results(self, job_id: str, kind: str) -> list[dict[str, str]]:
        answer = self.session.get(f"{self.base}/ingest/{job_id}/{kind}")
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(answer.text, newline="")))

    def run(self, sobject: str, text: str) -> tuple[str, dict[str, Any]]:
        job = self.create(sobject)
        assert self.upload(job["id"], text).status_code == 201
        assert self.state(job["id"], "UploadComplete").status_code == 200
        return job["id"], self.wait(job["id"])


@pytest.fixture
def org() -> Iterator[Sandbox]:
    with Sandbox(now=NOW) as sb:
        yield sb


def _lead(sb: Sandbox, email: str, **fields: Any) -> dict[str, Any]:
    return sb.create_salesforce("Lead", {"LastName": "Jansen", "Company": "Polder B.V.",
                                         "Status": "Open - Not Contacted", "Email": email,
                                         **fields})


def _contact(sb: Sandbox, email: str, **fields: Any) -> dict[str, Any]:
    return sb.create_salesforce("Contact", {"LastName": "Jansen", "Email": email, **fields})


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# ---- a job's life ---------------------------------------------------------------------------


def test_a_job_goes_from_open_through_in_progress_to_complete_on_its_own(org: Sandbox) -> None:
    contacts = [_contact(org, f"p{n}@polder.nl") for n in range(450)]
    org.set_bulk_processing(chunk_seconds=0.05)
    client = BulkClient(org)
    job = client.create("Contact")
    assert job["state"] == "Open" and job["id"].startswith("750")
    assert job["contentUrl"].endswith(f"/jobs/ingest/{job['id']}/batches")
    text = _csv(["Id", "Lifecycle_Stage__c"], [[c["Id"], "SQL"] for c in contacts])
    assert client.upload(job["id"], text).status_code == 201
    assert client.info(job["id"])["state"] == "Open"  # nothing happens before UploadComplete
    closed = client.state(job["id"], "UploadComplete").json()
    assert closed["state"] == "UploadComplete"
    seen, polls = set(), 1
    while (info := client.info(job["id"]))["state"] not in TERMINAL:
        seen.add((info["state"], info["numberRecordsProcessed"]))
        polls += 1
        time.sleep(0.01)
    assert ("InProgress", 200) in seen  # processed chunk by chunk while the client polls
    assert info["state"] == "JobComplete"
    assert info["numberRecordsProcessed"] == 450 and info["numberRecordsFailed"] == 0
    saved = client.results(job["id"], "successfulResults")
    assert sorted(r["sf__Id"] for r in saved) == sorted(c["Id"] for c in contacts)
    assert {r["sf__Created"] for r in saved} == {"false"}
    assert {r["Lifecycle_Stage__c"] for r in saved} == {"SQL"}
    assert client.results(job["id"], "failedResults") == []
    assert client.results(job["id"], "unprocessedrecords") == []
    assert {org.salesforce_record("Contact", c["Id"])["Lifecycle_Stage__c"]
            for c in contacts} == {"SQL"}
    counters = org.counters()
    assert counters["records_written"]["salesforce.bulk_ingest"] == 450
    # create, upload, info, UploadComplete, the polls, three results
    assert counters["requests"]["salesforce.bulk_ingest"] == 4 + polls + 3


def test_every_bulk_request_counts_against_the_daily_allocation(org: Sandbox) -> None:
    contact = _contact(org, "anna@polder.nl")
    client = BulkClient(org)
    job = client.create("Contact")
    before = _usage(client, job["id"])
    client.upload(job["id"], _csv(["Id", "Priority__c"], [[contact["Id"], "fit"]]))
    after = _usage(client, job["id"])
    assert after == before + 2  # the upload and this GET


def _usage(client: BulkClient, job_id: str) -> int:
    answer = client.session.get(f"{client.base}/ingest/{job_id}")
    return int(answer.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])


def test_a_request_without_a_session_is_refused(org: Sandbox) -> None:
    session = salesforce_session(org)
    answer = session.post(f"{org.salesforce_instance_url}/services/data/v59.0/jobs/ingest",
                          json={"object": "Lead", "operation": "update"})
    assert answer.status_code == 401
    assert answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"


# ---- per-record results, with the collections path's rules ---------------------------------


def test_failed_records_carry_sf_id_and_the_error_the_collections_path_gives(
        org: Sandbox) -> None:
    good = _lead(org, "good@polder.nl")
    bad_value = _lead(org, "bad@polder.nl")
    contact = _contact(org, "conv@polder.nl")
    converted = _lead(org, "old@polder.nl", IsConverted=True, ConvertedContactId=contact["Id"],
                      Status="Closed - Converted")
    gone = _lead(org, "gone@polder.nl")
    org.delete_salesforce("Lead", gone["Id"])
    client = BulkClient(org)
    job_id, info = client.run("Lead", _csv(["Id", "Priority__c"], [
        [good["Id"], "fit"], [bad_value["Id"], "urgent"], [converted["Id"], "fit"],
        [gone["Id"], "fit"], ["00QDn0000099999ZZZ", "fit"]]))
    assert info["state"] == "JobComplete"
    assert info["numberRecordsProcessed"] == 5 and info["numberRecordsFailed"] == 4
    assert [r["sf__Id"] for r in client.results(job_id, "successfulResults")] == [good["Id"]]
    failed = {r["Id"]: r for r in client.results(job_id, "failedResults")}
    code = {record_id: row["sf__Error"].split(":")[0] for record_id, row in failed.items()}
    assert code == {bad_value["Id"]: "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    converted["Id"]: "CANNOT_UPDATE_CONVERTED_LEAD",
                    gone["Id"]: "ENTITY_IS_DELETED",
                    "00QDn0000099999ZZZ": "INVALID_CROSS_REFERENCE_KEY"}
    assert failed[bad_value["Id"]]["sf__Id"] == bad_value["Id"]
    assert failed[bad_value["Id"]]["sf__Error"].endswith(":Priority__c --")
    assert failed[bad_value["Id"]]["Priority__c"] == "urgent"  # the uploaded columns follow
    assert org.salesforce_record("Lead", good["Id"])["Priority__c"] == "fit"
    assert org.salesforce_record("Lead", bad_value["Id"])["Priority__c"] is None


def test_an_empty_value_leaves_the_field_and_na_sets_it_to_null(org: Sandbox) -> None:
    account = org.create_salesforce("Account", {"Name": "Polder", "Priority__c": "fit",
                                                "Buying_Signal_Type__c": "funding",
                                                "ICP_Fit__c": True})
    client = BulkClient(org)
    _, info = client.run("Account", _csv(
        ["Id", "Priority__c", "Buying_Signal_Type__c", "ICP_Fit__c", "Buying_Signal_Date__c"],
        [[account["Id"], "", "#N/A", "false", "2026-11-20"]]))
    assert info["state"] == "JobComplete" and info["numberRecordsFailed"] == 0
    stored = org.salesforce_record("Account", account["Id"])
    assert stored["Priority__c"] == "fit"
    assert stored["Buying_Signal_Type__c"] is None
    assert stored["ICP_Fit__c"] is False
    assert stored["Buying_Signal_Date__c"] == "2026-11-20"


def test_a_mistyped_value_fails_its_record_only(org: Sandbox) -> None:
    accounts = [org.create_salesforce("Account", {"Name": f"Org {n}"}) for n in range(2)]
    client = BulkClient(org)
    job_id, info = client.run("Account", _csv(["Id", "ICP_Fit__c"], [
        [accounts[0]["Id"], "maybe"], [accounts[1]["Id"], "true"]]))
    assert info["numberRecordsFailed"] == 1
    failed = client.results(job_id, "failedResults")
    assert failed[0]["sf__Error"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:")
    assert org.salesforce_record("Account", accounts[1]["Id"])["ICP_Fit__c"] is True


def test_duplicate_rules_fail_bulk_updates_whatever_the_header_says(org: Sandbox) -> None:
    lead = _lead(org, "anna@polder.nl")
    _contact(org, "ANNA@polder.nl")
    alone = _lead(org, "solo@polder.nl")
    client = BulkClient(org)
    client.session.headers["Sforce-Duplicate-Rule-Header"] = "allowSave=true"
    job_id, info = client.run("Lead", _csv(["Id", "Priority__c"],
                                           [[lead["Id"], "fit"], [alone["Id"], "fit"]]))
    assert info["numberRecordsFailed"] == 1
    failed = client.results(job_id, "failedResults")
    assert failed[0]["sf__Id"] == lead["Id"]
    assert failed[0]["sf__Error"].startswith("DUPLICATES_DETECTED:Use one of these records?")
    assert org.salesforce_record("Lead", lead["Id"])["Priority__c"] is None
    assert org.salesforce_record("Lead", alone["Id"])["Priority__c"] == "fit"


def test_an_email_a_job_moved_away_in_an_earlier_chunk_no_longer_alerts(org: Sandbox) -> None:
    first = _lead(org, "same@polder.nl")
    second = _lead(org, "same@polder.nl")
    fillers = [_lead(org, f"p{n}@polder.nl") for n in range(199)]
    client = BulkClient(org)
    rows = [[first["Id"], "new@polder.nl", ""], *([f["Id"], "", "fit"] for f in fillers),
            [second["Id"], "", "fit"]]  # `second` is in the second chunk of 200
    _, info = client.run("Lead", _csv(["Id", "Email", "Priority__c"], rows))
    assert info["numberRecordsProcessed"] == 201 and info["numberRecordsFailed"] == 0
    assert org.salesforce_record("Lead", second["Id"])["Priority__c"] == "fit"
    _, alone = client.run("Lead", _csv(["Id", "Email"], [[second["Id"], "new@polder.nl"]]))
    assert alone["numberRecordsFailed"] == 1  # now `first` holds that address


def test_automation_too_heavy_for_a_chunk_of_200_fails_that_chunk_only() -> None:
    with Sandbox(now=NOW, salesforce_automation_max_batch=150) as sb:
        contacts = [_contact(sb, f"p{n}@polder.nl") for n in range(250)]
        client = BulkClient(sb)
        job_id, info = client.run("Contact", _csv(["Id", "Priority__c"],
                                                  [[c["Id"], "fit"] for c in contacts]))
        assert info["state"] == "JobComplete"
        assert info["numberRecordsProcessed"] == 250 and info["numberRecordsFailed"] == 200
        errors = {r["sf__Error"].split(":")[0] for r in client.results(job_id, "failedResults")}
        assert errors == {"CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"}
        assert len(client.results(job_id, "successfulResults")) == 50


def test_an_injected_row_lock_fails_a_record_of_a_job() -> None:
    with Sandbox(now=NOW, faults="salesforce.bulk_ingest:lock=1.0") as sb:
        contact = _contact(sb, "anna@polder.nl")
        client = BulkClient(sb)
        job_id, _ = client.run("Contact", _csv(["Id", "Priority__c"], [[contact["Id"], "fit"]]))
        failed = client.results(job_id, "failedResults")
        assert failed[0]["sf__Error"].startswith("UNABLE_TO_LOCK_ROW:")


# ---- whole-job failures and limits ----------------------------------------------------------


def test_an_unknown_column_fails_the_whole_job_and_writes_nothing(org: Sandbox) -> None:
    lead = _lead(org, "anna@polder.nl")
    client = BulkClient(org)
    _, info = client.run("Lead", _csv(["Id", "Priority__c", "Score__c"],
                                      [[lead["Id"], "fit", "3"]]))
    assert info["state"] == "Failed"
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Score__c"
    assert info["numberRecordsProcessed"] == 0
    assert org.salesforce_record("Lead", lead["Id"])["Priority__c"] is None


def test_crlf_data_in_a_job_declared_lf_fails_it(org: Sandbox) -> None:
    lead = _lead(org, "anna@polder.nl")
    client = BulkClient(org)
    _, info = client.run("Lead", f"Id,Priority__c\r\n{lead['Id']},fit\r\n")
    assert info["state"] == "Failed" and "line endings" in info["errorMessage"]
    job = client.create("Lead", lineEnding="CRLF")
    client.upload(job["id"], f"Id,Priority__c\r\n{lead['Id']},fit\r\n")
    client.state(job["id"], "UploadComplete")
    assert client.wait(job["id"])["state"] == "JobComplete"


def test_an_upload_over_150_mb_of_base64_is_refused(org: Sandbox,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_module, "MAX_UPLOAD_BASE64_BYTES", 1_000)  # 150 MB, scaled down
    client = BulkClient(org)
    job = client.create("Lead")
    refused = client.upload(job["id"], "Id,Priority__c\n" + "00QDn0000000001AAA,fit\n" * 40)
    assert refused.status_code == 400 and "150 MB" in refused.json()[0]["message"]
    assert client.upload(job["id"], "Id,Priority__c\n" + "00QDn0000000001AAA,fit\n" * 20
                         ).status_code == 201


def test_past_the_daily_record_limit_the_job_fails_and_the_rest_is_unprocessed() -> None:
    with Sandbox(now=NOW, salesforce_bulk_daily_records=250) as sb:
        contacts = [_contact(sb, f"p{n}@polder.nl") for n in range(300)]
        client = BulkClient(sb)
        job_id, info = client.run("Contact", _csv(["Id", "Priority__c"],
                                                  [[c["Id"], "fit"] for c in contacts]))
        assert info["state"] == "Failed" and "daily limit" in info["errorMessage"]
        assert info["numberRecordsProcessed"] == 250
        unprocessed = client.results(job_id, "unprocessedrecords")
        assert [r["Id"] for r in unprocessed] == [c["Id"] for c in contacts[250:]]
        assert sb.salesforce_record("Contact", contacts[299]["Id"])["Priority__c"] is None


def test_an_aborted_job_stops_and_keeps_what_it_saved(org: Sandbox) -> None:
    contacts = [_contact(org, f"p{n}@polder.nl") for n in range(600)]
    client = BulkClient(org)
    never = client.create("Contact")
    client.upload(never["id"], _csv(["Id", "Priority__c"], [[contacts[0]["Id"], "other"]]))
    assert client.state(never["id"], "Aborted").json()["state"] == "Aborted"
    assert client.state(never["id"], "UploadComplete").status_code == 409
    org.set_bulk_processing(chunk_seconds=0.2)
    job = client.create("Contact")
    client.upload(job["id"], _csv(["Id", "Priority__c"], [[c["Id"], "fit"] for c in contacts]))
    client.state(job["id"], "UploadComplete")
    while client.info(job["id"])["numberRecordsProcessed"] < 200:
        time.sleep(0.01)
    assert client.state(job["id"], "Aborted").json()["state"] == "Aborted"
    time.sleep(0.3)
    info = client.info(job["id"])
    assert info["state"] == "Aborted" and 200 <= info["numberRecordsProcessed"] < 600
    saved = len(client.results(job["id"], "successfulResults"))
    assert saved == info["numberRecordsProcessed"]
    assert len(client.results(job["id"], "unprocessedrecords")) == 600 - saved
    assert org.salesforce_record("Contact", contacts[0]["Id"])["Priority__c"] == "fit"


def test_a_paused_queue_holds_a_job_until_resumed(org: Sandbox) -> None:
    contact = _contact(org, "anna@polder.nl")
    org.set_bulk_processing(paused=True)
    client = BulkClient(org)
    job = client.create("Contact")
    client.upload(job["id"], _csv(["Id", "Priority__c"], [[contact["Id"], "fit"]]))
    client.state(job["id"], "UploadComplete")
    time.sleep(0.3)
    assert client.info(job["id"])["state"] == "UploadComplete"
    org.set_bulk_processing(paused=False)
    assert client.wait(job["id"])["state"] == "JobComplete"


def test_limits_count_bulk_batches_and_query_jobs(org: Sandbox) -> None:
    contacts = [_contact(org, f"p{n}@polder.nl") for n in range(3)]
    client = BulkClient(org)
    client.run("Contact", _csv(["Id", "Priority__c"], [[c["Id"], "fit"] for c in contacts]))
    client.session.post(f"{client.base}/query", json={"operation": "query",
                                                      "query": "SELECT Id FROM Contact"})
    limits = client.session.get(f"{org.salesforce_instance_url}/services/data/v59.0/limits"
                                ).json()
    assert limits["DailyBulkApiBatches"] == {"Max": 15_000, "Remaining": 14_999}
    assert limits["DailyBulkV2QueryJobs"] == {"Max": 10_000, "Remaining": 9_999}


def test_only_update_jobs_of_known_objects_are_taken(org: Sandbox) -> None:
    client = BulkClient(org)
    unknown = client.session.post(f"{client.base}/ingest",
                                  json={"object": "Widget__c", "operation": "update"})
    assert unknown.status_code == 400 and unknown.json()[0]["errorCode"] == "INVALIDJOB"
    insert = client.session.post(f"{client.base}/ingest",
                                 json={"object": "Lead", "operation": "insert"})
    assert insert.status_code == 400
    assert client.session.get(f"{client.base}/ingest/750Dn0000009999AAA").status_code == 404


# ---- query jobs -----------------------------------------------------------------------------


def test_a_query_job_pages_its_csv_with_sforce_locator(org: Sandbox) -> None:
    contacts = [_contact(org, f"p{n}@polder.nl", ICP_Fit__c=n % 2 == 0) for n in range(25)]
    client = BulkClient(org)
    org.set_bulk_processing(paused=True)
    job = client.session.post(f"{client.base}/query", json={
        "operation": "query", "query": "SELECT Id, Email, ICP_Fit__c, Priority__c FROM Contact "
                                       "ORDER BY Email"}).json()
    early = client.session.get(f"{client.base}/query/{job['id']}/results")
    assert early.status_code == 400 and early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
    org.set_bulk_processing(paused=False)
    while client.session.get(f"{client.base}/query/{job['id']}").json()["state"] != \
            "JobComplete":
        time.sleep(0.01)
    rows, locator, pages = [], None, 0
    while locator != "null":
        params = {"maxRecords": 10, **({"locator": locator} if locator else {})}
        page = client.session.get(f"{client.base}/query/{job['id']}/results", params=params)
        assert page.status_code == 200
        got = list(csv.DictReader(io.StringIO(page.text, newline="")))
        assert int(page.headers["Sforce-NumberOfRecords"]) == len(got)
        rows += got
        locator = page.headers["Sforce-Locator"]
        pages += 1
    assert pages == 3
    by_email = {c["Email"]: c for c in contacts}
    assert [r["Email"] for r in rows] == sorted(by_email)
    first = rows[0]
    assert first["Id"] == by_email[first["Email"]]["Id"]
    assert first["ICP_Fit__c"] in ("true", "false") and first["Priority__c"] == ""
    assert org.counters()["records_returned"]["salesforce.bulk_query"] == 25


def test_query_all_jobs_include_deleted_records(org: Sandbox) -> None:
    kept, gone = _contact(org, "kept@polder.nl"), _contact(org, "gone@polder.nl")
    org.delete_salesforce("Contact", gone["Id"])
    client = BulkClient(org)
    found = {}
    for operation in ("query", "queryAll"):
        job = client.session.post(f"{client.base}/query", json={
            "operation": operation, "query": "SELECT Id, IsDeleted FROM Contact"}).json()
        while client.session.get(f"{client.base}/query/{job['id']}").json()["state"] != \
                "JobComplete":
            time.sleep(0.01)
        page = client.session.get(f"{client.base}/query/{job['id']}/results")
        found[operation] = {r["Id"]: r["IsDeleted"]
                            for r in csv.DictReader(io.StringIO(page.text, newline=""))}
    assert found["query"] == {kept["Id"]: "false"}
    assert found["queryAll"] == {kept["Id"]: "false", gone["Id"]: "true"}


def test_a_malformed_query_is_refused_when_the_job_is_created(org: Sandbox) -> None:
    client = BulkClient(org)
    answer = client.session.post(f"{client.base}/query", json={
        "operation": "query", "query": "SELECT Id FROM Contact WHERE Email = 'a' OR Id = 'b'"})
    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == "MALFORMED_QUERY"
