"""Salesforce Bulk API 2.0 for large writes: the Salesforce adapter's second way to update.

sObject Collections cost one API call per 200 records: a first backfill of a million records
plans about a million record updates, 5,000 calls, and at five million half an org's
100,000-call daily allocation. A Bulk API 2.0 ingest job costs a handful of calls whatever its
size (create, upload, close, a few polls, the results), and its own daily limits are counted
in records and batches ("Instead of limiting the amount of data uploaded daily by the quantity
of jobs, Bulk API 2.0 uses a limit of total records uploaded", Bulk API 2.0 Developer Guide).
Salesforce's own advice: "Any data operation that includes more than 2,000 records is a good
candidate for Bulk API 2.0 ... Jobs with fewer than 2,000 records should involve 'bulkified'
synchronous calls in REST (for example, Composite)" (Limits Quick Reference, Bulk API and Bulk
API 2.0 Limits and Allocations). So the engine sends an object's writes here when it has at
least `BulkOptions.min_records` records to write in a run (README, "Large backfills").

How a job goes (Bulk API 2.0 Developer Guide, Create a Job / Upload Job Data / Upload
Complete / Get Information About an Ingest Job / Get Job Successful, Failed and Unprocessed
Record Results):

1. `POST jobs/ingest` {object, operation: update, lineEnding: LF}: the job is Open. Its id goes
   to the caller (`JobHooks.created`), which saves it in the state DB before anything is
   uploaded: from then on a rerun can find the job instead of sending the records again.
2. `PUT jobs/ingest/{id}/batches`, text/csv: a header row (`Id` and the fields written), a
   row per record; an empty value leaves a field alone and `#N/A` sets it to null, so None
   and "" are written as `#N/A` ("To set a field value to null, use a field value of #N/A",
   Prepare CSV Files). At most 100 MB of CSV a job ("upload data that does not exceed 100
   MB", for the 150 MB base64 limit); larger sets go in several jobs.
3. `PATCH jobs/ingest/{id}` {state: UploadComplete}: "If you don't make this request,
   processing of your data does not start."
4. `GET jobs/ingest/{id}` until JobComplete, Failed or Aborted, pausing 1 s, then twice as
   long each time up to `poll_seconds`. Past `max_wait_seconds` the run stops (BulkJobPending,
   exit 3): the job goes on in Salesforce, and the next run collects it.
5. successfulResults (`sf__Id`), failedResults (`sf__Id`, `sf__Error` "Error code and
   message") and, for a job that did not complete, unprocessedrecords; their counts must add
   up to the job's numberRecordsProcessed / numberRecordsFailed (a cut-off CSV is fetched
   again, never taken for fewer results).

Each record's result is what the collections path would give: applied; rejected with
Salesforce's code and message; retry-later for rows a failed or aborted job left
unprocessed. Three failures the collections path gets past are sent again through sObject
Collections, so both paths end the same: row locks and other transient codes (collections
retry them), DUPLICATES_DETECTED when `allow_save_on_duplicates` is on (Bulk jobs cannot send
the Sforce-Duplicate-Rule-Header: simple-salesforce/simple-salesforce#628), and chunks the
org's automation failed on a governor limit (Bulk saves 200 records a transaction; the
collections path halves its size).

simple-salesforce 1.12 has `sf.bulk2`, but its `update()` creates, uploads, closes and waits
in one call and aborts the job on any exception (Ctrl-C included): the job id cannot be saved
before the upload, nor a job resumed. Its one-request methods live on a private client. So the
requests go through simple-salesforce's `call_salesforce` on the adapter's own session (our CA
bundle, timeout, usage hook), each one under the adapter's guarded call: budget, retries,
classification, a refreshed session when it expires.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import requests
from simple_salesforce.util import call_salesforce

from connector.exceptions import (
    AuthenticationError,
    BulkJobPending,
    ConfigurationError,
    FatalApiError,
    RetriableApiError,
    scrub,
)
from connector.systems._writes import confirm_written, send_in_rounds, write_in_steps
from connector.systems.base import RecordUpdate, WriteResult

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

    from connector.systems.salesforce import SalesforceAdapter

__all__ = ["BulkOptions", "JobHooks", "JobInfo", "JobOutcome", "SalesforceBulk", "job_csv"]

log = logging.getLogger(__name__)

T = TypeVar("T")

OPEN, UPLOAD_COMPLETE, IN_PROGRESS = "Open", "UploadComplete", "InProgress"
JOB_COMPLETE, FAILED, ABORTED = "JobComplete", "Failed", "Aborted"
TERMINAL = frozenset({JOB_COMPLETE, FAILED, ABORTED})
MAX_CSV_BYTES = 100 * 1024 * 1024  # "upload data that does not exceed 100 MB"
RECORDS_PER_BATCH = 10_000  # "a separate batch for every 10,000 records" (DailyBulkApiBatches)
LIMITS_MAX_AGE_SECONDS = 900.0  # other integrations use the org's batches too
QUERY_SET_RECORDS = 100_000  # rows per query results request (`maxRecords`)
ENGINE_PAGE = 2_000  # records per page handed to the engine, as a REST query batch holds
NULL = "#N/A"
NOT_PROCESSED = "NOT_PROCESSED"
UNKNOWN_FIELD = "Field name not found"
DUPLICATES = "DUPLICATES_DETECTED"
# Codes the collections path retries (salesforce.py RETRIABLE_CODES), and the governor-limit
# failure of a whole transaction: sent again through sObject Collections.
GOVERNOR_FAILURE_CODE = "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
GOVERNOR_FAILURE_MARK = "LimitException"


@dataclass(frozen=True)
class BulkOptions:
    """When and how the adapter uses Bulk API 2.0 (settings `salesforce_bulk_*`)."""

    min_records: int = 2_000  # 0: never
    job_records: int = 50_000
    max_wait_seconds: float = 1_800.0
    poll_seconds: float = 30.0
    query_min_records: int = 50_000  # backfill reads of this many records: a query job


@dataclass(frozen=True)
class JobInfo:
    """A job as `GET jobs/ingest/{id}` reports it."""

    job_id: str
    state: str
    processed: int = 0
    failed: int = 0
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True)
class JobOutcome:
    """A finished job as a rerun collects it: its last state, and the records it saved."""

    info: JobInfo
    applied: frozenset[str]


class JobHooks(Protocol):
    """What the caller learns about each job of a write, as it happens."""

    def created(self, job_id: str, records: int, step: int) -> None:
        """A job was created, before its data goes up: save its id (and commit)."""
        ...

    def seen(self, info: JobInfo) -> None:
        """The job's state and counts at a poll, and once more when it finished."""
        ...


class SalesforceBulk:
    """Bulk API 2.0 ingest jobs for one SalesforceAdapter (its session, budget and retries)."""

    def __init__(self, adapter: SalesforceAdapter, options: BulkOptions) -> None:
        self.adapter = adapter
        self.options = options
        self._batches_left: int | None = None
        self._batches_read_at = 0.0
        self._types: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"SalesforceBulk(min_records={self.options.min_records})"

    # --- when ------------------------------------------------------------------------------

    def worth_it(self, records: int) -> bool:
        """Whether `records` updates of one object go through Bulk jobs: at least
        `min_records` of them, and the org's daily Bulk batches (`/limits`
        DailyBulkApiBatches, shared with Bulk API 1.0: read at most every
        `LIMITS_MAX_AGE_SECONDS`) have room for them. Without room, collections are used and
        a WARNING says why."""
        if not self.options.min_records or records < self.options.min_records:
            return False
        needed = -(-records // RECORDS_PER_BATCH) + 1  # and the job's "parent" batch
        left = self._bulk_batches_left()
        if left is not None and left < needed:
            log.warning("salesforce: the org has %s Bulk API batches left today, %s records "
                        "need %s; writing through sObject Collections instead", left, records,
                        needed)
            return False
        if self._batches_left is not None:
            self._batches_left -= needed
        return True

    def _bulk_batches_left(self) -> int | None:
        if self._batches_left is None or \
                time.monotonic() - self._batches_read_at > LIMITS_MAX_AGE_SECONDS:
            self._batches_read_at = time.monotonic()
            try:
                limits = self.adapter._call("limits", lambda sf: sf.restful("limits"))
            except AuthenticationError:
                raise
            except (FatalApiError, RetriableApiError) as error:
                # /limits wants "View Setup and Configuration"; without it, Bulk goes ahead
                # and a job past the org's batches fails, leaving its records for a retry
                log.info("salesforce: /limits could not be read (%s); Bulk batches left "
                         "unknown", error)
                return None
            remaining = ((limits or {}).get("DailyBulkApiBatches") or {}).get("Remaining")
            self._batches_left = remaining if isinstance(remaining, int) else None
        return self._batches_left

    # --- writing ---------------------------------------------------------------------------

    def write(self, object_type: str, updates: Sequence[RecordUpdate], hooks: JobHooks, *,
              confirm_fields: Collection[str] = ()) -> list[WriteResult]:
        """`updates` through ingest jobs (a job per step and per 100 MB of CSV), one result per
        update in input order, the same as the collections path would give; `confirm_fields`
        are read back as there. Raises what stops a run: BulkJobPending (a job did not finish
        in time), a ConfigurationError (a field the org does not know), authentication and
        budget errors."""
        results = write_in_steps(updates, lambda step: self._write_step(object_type, step,
                                                                         hooks))
        if not confirm_fields:
            return results
        from connector.systems.salesforce import _same_value  # noqa: PLC0415 - import cycle

        return confirm_written(updates, results, confirm_fields,
                               lambda ids, names: self.adapter._read_back(object_type, ids,
                                                                          names),
                               _same_value)

    def _write_step(self, object_type: str, updates: list[RecordUpdate],
                    hooks: JobHooks) -> list[WriteResult]:
        results: list[WriteResult] = []
        for part, data in _jobs_under(updates, MAX_CSV_BYTES):
            results += self._write_job(object_type, part, data, hooks)
        return results

    def _write_job(self, object_type: str, updates: list[RecordUpdate], data: bytes,
                   hooks: JobHooks) -> list[WriteResult]:
        """One job: create (its id saved by the caller), upload, close, wait, results; then
        what the collections path would have got past goes through collections."""
        job_id = self.create(object_type)
        hooks.created(job_id, len(updates), updates[0].step)
        try:
            self._upload(job_id, data)
            self._close(job_id)
        except (RetriableApiError, FatalApiError) as error:
            self._abort_quietly(job_id)
            hooks.seen(JobInfo(job_id, ABORTED))
            log.warning("salesforce %s: Bulk job %s could not be started (%s); its %s "
                        "records are left for the next run", object_type, job_id, error,
                        len(updates))
            return [_not_sent(u, f"the Bulk job could not be started: {error}") for u in updates]
        info = self.wait(job_id, hooks.seen, records=len(updates))
        _refuse_unknown_fields(object_type, info)
        saved, failed = self._results(job_id, info)
        results = [_result(u, saved, failed, info) for u in updates]
        return self._resend_in_collections(object_type, updates, results)

    def _resend_in_collections(self, object_type: str, updates: list[RecordUpdate],
                               results: list[WriteResult]) -> list[WriteResult]:
        """Records the job failed for what the collections path gets past (row locks,
        DUPLICATES_DETECTED with allowSave on, a governor limit on a chunk of 200), sent
        again through sObject Collections with its retries and halving."""
        again = [i for i, r in enumerate(results) if self._collections_would_pass(r)]
        if not again:
            return results
        log.info("salesforce %s: %s record(s) a Bulk job failed (row locks, duplicate alerts, "
                 "automation limits) sent again through sObject Collections", object_type,
                 len(again))
        adapter, retry = self.adapter, self.adapter._retry
        answers = send_in_rounds(
            [updates[i] for i in again],
            lambda batch: adapter._send_in_collections(object_type, batch),
            batch_size=adapter.write_batch_size, rounds=retry.max_attempts, pause=retry.pause)
        merged = list(results)
        for index, answer in zip(again, answers, strict=True):
            merged[index] = answer
        return merged

    def _collections_would_pass(self, result: WriteResult) -> bool:
        from connector.systems.salesforce import RETRIABLE_CODES  # noqa: PLC0415

        if result.status == "applied" or result.code == NOT_PROCESSED:
            return False
        if result.code in RETRIABLE_CODES:
            return True
        if result.code == DUPLICATES:
            return bool(self.adapter._write_headers)
        return result.code == GOVERNOR_FAILURE_CODE and GOVERNOR_FAILURE_MARK in (
            result.message or "")

    # --- collecting a job a stopped run left -----------------------------------------------

    def collect(self, job_id: str, seen: Callable[[JobInfo], None]) -> JobOutcome | None:
        """The outcome of a job an earlier run created: a job never closed (Open) is aborted,
        so nothing of it is saved; a running one is waited for. None when Salesforce no
        longer knows the job (deleted, or older than its seven days): its records must be
        read back."""
        try:
            info = self.info(job_id)
        except FatalApiError as error:
            if error.status == 404:
                return None
            raise
        if info.state == OPEN:
            self._abort_quietly(job_id)
            info = JobInfo(job_id, ABORTED)
        elif not info.finished:
            info = self.wait(job_id, seen)
        seen(info)
        saved, _ = self._results(job_id, info) if info.processed else ({}, {})
        return JobOutcome(info, frozenset(saved.values()))

    # --- reading: query jobs ---------------------------------------------------------------

    def read(self, object_type: str, soql: str, api_version: str
             ) -> Iterator[list[dict[str, Any]]]:
        """The records of one SOQL query through a Bulk API 2.0 query job, in pages of
        `ENGINE_PAGE` records shaped as the REST query gives them (`attributes`, fields typed
        by the object's describe: CSV holds text, and null as an empty value).

        Get Results for a Query Job: each answer holds at most `maxRecords` rows and names the
        next set in `Sforce-Locator` ("null" after the last); `Sforce-NumberOfRecords` is the
        set's row count, so a set cut short is fetched again rather than taken as smaller."""
        types = self._field_types(object_type)
        body = {"operation": "query", "query": soql, "contentType": "CSV", "lineEnding": "LF",
                "columnDelimiter": "COMMA"}
        job_id = self._request("POST", "query", _job_id, json_body=body)
        info = self.wait(job_id, lambda info: None, kind="query")
        if info.state != JOB_COMPLETE:
            raise FatalApiError(f"Bulk query job {job_id} for {object_type} ended {info.state}"
                                + (f": {info.error}" if info.error else ""),
                                system="salesforce", operation="bulk", status=200,
                                code=f"QUERY_JOB_{info.state.upper()}")
        locator = ""
        while True:
            path = f"query/{job_id}/results?maxRecords={QUERY_SET_RECORDS}"
            if locator:
                path += f"&locator={locator}"
            header, rows, locator = self._request("GET", path, _query_set, accept="text/csv")
            for start in range(0, len(rows), ENGINE_PAGE):
                yield [_record(object_type, api_version, header, row, types)
                       for row in rows[start:start + ENGINE_PAGE]]
            if not locator:
                return

    def _field_types(self, object_type: str) -> dict[str, str]:
        """Each field's describe type (one describe per object and adapter)."""
        if object_type not in self._types:
            fields = self.adapter.describe_fields(object_type)
            self._types[object_type] = {name: info.type for name, info in fields.items()}
        return self._types[object_type]

    # --- the requests ----------------------------------------------------------------------

    def create(self, object_type: str) -> str:
        body = {"object": object_type, "operation": "update", "contentType": "CSV",
                "lineEnding": "LF", "columnDelimiter": "COMMA"}
        return self._request("POST", "ingest", _job_id, json_body=body)

    def info(self, job_id: str, kind: str = "ingest") -> JobInfo:
        """`GET jobs/{kind}/{id}`: an ingest or a query job's state and counts."""
        return self._request("GET", f"{kind}/{job_id}", lambda r: _job_info(job_id, r))

    def wait(self, job_id: str, seen: Callable[[JobInfo], None], kind: str = "ingest",
             records: int | None = None) -> JobInfo:
        """Poll until the job is finished; past `max_wait_seconds` raise BulkJobPending
        (exit 3). The first poll comes after 1 s. Then, once the job reports records
        processed and its size (`records`) is known, the next poll comes when the job
        should be done at the rate seen so far; until then each pause doubles. Pauses stay
        within 1 s and `poll_seconds`: a poll is an API call, a late one wastes wall time."""
        options = self.options
        pause = min(1.0, options.poll_seconds)
        began = time.monotonic()
        deadline = began + options.max_wait_seconds
        while True:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            info = self.info(job_id, kind)
            seen(info)
            if info.finished:
                return info
            now = time.monotonic()
            if now >= deadline:
                raise BulkJobPending(_still_running(info, kind, options.max_wait_seconds))
            pause = _next_pause(pause, info, records, now - began, options.poll_seconds)

    def _upload(self, job_id: str, data: bytes) -> None:
        """The job's CSV. A retry of an upload whose answer was lost (a timeout) meets a job
        that has its data already (409): that data is this one, and the job goes on."""
        try:
            self._request("PUT", f"ingest/{job_id}/batches", _nothing, data=data,
                          content_type="text/csv")
        except FatalApiError as error:
            if error.status != 409 or self.info(job_id).state != OPEN:
                raise
            log.info("salesforce: Bulk job %s already had its data (an upload answer was lost "
                     "and retried)", job_id)

    def _close(self, job_id: str) -> None:
        """UploadComplete. A retry of a close whose answer was lost meets a job no longer
        Open (409): the job's own state then says whether the close went through."""
        try:
            self._request("PATCH", f"ingest/{job_id}", _nothing,
                          json_body={"state": UPLOAD_COMPLETE})
        except FatalApiError as error:
            if error.status != 409 or self.info(job_id).state == OPEN:
                raise

    def _abort_quietly(self, job_id: str) -> None:
        try:
            self._request("PATCH", f"ingest/{job_id}", _nothing, json_body={"state": ABORTED})
        except (RetriableApiError, FatalApiError) as error:
            log.warning("salesforce: Bulk job %s could not be aborted: %s", job_id, error)

    def _results(self, job_id: str, info: JobInfo
                 ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
        """({id: id} saved, {id: (code, message)} failed), by the first 15 characters of the
        record id (its case-sensitive form; results name records in 18), checked against the
        job's counts; a CSV cut short is fetched again."""
        attempts = self.adapter._retry.max_attempts
        for attempt in range(1, attempts + 1):
            saved = self._result_rows(job_id, "successfulResults", "sf__Id")
            failed = self._result_rows(job_id, "failedResults", "sf__Error")
            if len(saved) + len(failed) == info.processed and len(failed) == info.failed:
                return ({key[:15]: key for key, _ in saved},
                        {key[:15]: _error(text) for key, text in failed})
            log.warning("salesforce: Bulk job %s results list %s saved and %s failed records, "
                        "the job says %s processed and %s failed (attempt %s of %s)", job_id,
                        len(saved), len(failed), info.processed, info.failed, attempt, attempts)
            self.adapter._retry.pause(attempt)
        raise RetriableApiError(f"the results of Bulk job {job_id} never matched its counts",
                                system="salesforce", operation="bulk", status=200,
                                code="INCOMPLETE_BULK_RESULTS")

    def _result_rows(self, job_id: str, kind: str, column: str) -> list[tuple[str, str]]:
        """(record id, `column`) per row of a results CSV (`_result_csv`)."""
        return self._request("GET", f"ingest/{job_id}/{kind}",
                             lambda r: _result_csv(r, f"{kind} of Bulk job {job_id}", column),
                             accept="text/csv")

    def _request(self, method: str, path: str, read: Callable[[requests.Response], T], *,
                 json_body: Any = None, data: bytes | None = None,
                 content_type: str = "application/json", accept: str = "application/json",
                 ) -> T:
        """One Bulk API request under the adapter's guarded call (operation "bulk"), its
        answer `read` inside it: an answer that cannot be read is retried like a 503."""

        def send(sf: Salesforce) -> T:
            headers = {**sf.headers, "Content-Type": content_type, "Accept": accept}
            body = json.dumps(json_body).encode() if json_body is not None else data
            return read(call_salesforce(sf.bulk2_url + path, method, session=sf.session,
                                        headers=headers, data=body))

        return self.adapter._call("bulk", send)


# --- pure helpers ---------------------------------------------------------------------------


def job_csv(updates: Sequence[RecordUpdate]) -> bytes:
    """An update job's CSV: `Id` and every field any update writes (sorted), LF line ends, a
    field a record does not write left empty (ignored), None and "" as `#N/A` (null)."""
    columns = sorted({name for update in updates for name in update.fields})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Id", *columns])
    for update in updates:
        writer.writerow([update.record_id, *(
            _csv_value(update.fields[name]) if name in update.fields else ""
            for name in columns)])
    return out.getvalue().encode("utf-8")


def _csv_value(value: Any) -> str:
    if value is None or value == "":
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _jobs_under(updates: list[RecordUpdate], limit: int
               ) -> Iterator[tuple[list[RecordUpdate], bytes]]:
    """`updates` with their CSV, halved until each CSV is at most `limit` bytes (a job of the
    default 50,000 records is a few MB: one part)."""
    data = job_csv(updates)
    if len(data) <= limit or len(updates) == 1:
        yield updates, data
        return
    middle = len(updates) // 2
    yield from _jobs_under(updates[:middle], limit)
    yield from _jobs_under(updates[middle:], limit)


def _result(update: RecordUpdate, saved: dict[str, str],
            failed: dict[str, tuple[str, str]], info: JobInfo) -> WriteResult:
    """One update's result from the job's results, by its id (15 or 18 characters)."""
    record_id = update.record_id
    if _find(saved, record_id) is not None:
        return WriteResult(record_id, "applied", fields=dict(update.fields), step=update.step)
    failure = _find(failed, record_id)
    if failure is not None:
        code, message = failure
        from connector.systems.salesforce import (  # noqa: PLC0415 - import cycle
            RETRIABLE_CODES,
            _duplicate_message,
        )

        if code == DUPLICATES:
            message = _duplicate_message(message, None)
        status = "retry_later" if code in RETRIABLE_CODES else "rejected"
        return WriteResult(record_id, status, code=code, message=message, step=update.step)
    why = f"Bulk job {info.job_id} ended {info.state}"
    if info.error:
        why += f": {info.error}"
    return _not_sent(update, why + "; not processed")


def _not_sent(update: RecordUpdate, message: str) -> WriteResult:
    return WriteResult(update.record_id, "retry_later", code=NOT_PROCESSED, message=message,
                       step=update.step)


def _find(results: dict[str, Any], record_id: str) -> Any:
    return results.get(record_id[:15])


def _error(text: str) -> tuple[str, str]:
    """sf__Error (`CODE:message:fields --`) as (code, message)."""
    code, _, rest = text.partition(":")
    message = rest.rsplit(":", 1)[0] if rest.rstrip().endswith("--") else rest
    return code.strip(), scrub(message.strip())


def _next_pause(pause: float, info: JobInfo, records: int | None, elapsed: float,
                longest: float) -> float:
    """How long to wait before the next poll (see `SalesforceBulk.wait`)."""
    if records and info.processed and elapsed > 0:
        left = (records - info.processed) * elapsed / info.processed
        return max(min(1.0, longest), min(left, longest))
    return min(pause * 2, longest)


def _still_running(info: JobInfo, kind: str, waited: float) -> str:
    what = "Bulk job" if kind == "ingest" else "Bulk query job"
    then = ("The job goes on in Salesforce; the next run collects its results (`crmsync "
            "status` lists open jobs)." if kind == "ingest"
            else "The next run reads the object again.")
    return (f"salesforce: {what} {info.job_id} is still {info.state} ({info.processed:,} "
            f"record(s) processed) after {waited:g} s (CRMSYNC_SALESFORCE_BULK_MAX_WAIT_SECONDS)"
            f"; stopped before sending anything else. {then}")


def _refuse_unknown_fields(object_type: str, info: JobInfo) -> None:
    """A job that failed on a column the org does not have (or hides from the integration
    user): as INVALID_FIELD on the collections path, no record can succeed in any job."""
    if info.state == FAILED and info.error and UNKNOWN_FIELD in info.error:
        raise ConfigurationError(
            f"salesforce: the {object_type} Bulk job {info.job_id} failed: {info.error}. The "
            "field does not exist or is not visible to the integration user; nothing was "
            "written. Create the field or grant the user edit access to it (field-level "
            "security), or fix the mapping; `crmsync check` lists every such field.")


def _job_id(response: requests.Response) -> str:
    job_id = _json(response, "create a job").get("id")
    if not isinstance(job_id, str) or not job_id:
        raise _unreadable("the job was created without an id in the answer")
    return job_id


def _job_info(job_id: str, response: requests.Response) -> JobInfo:
    answer = _json(response, "read the job")
    state = answer.get("state")
    if not isinstance(state, str):
        raise _unreadable("a job's information came without its state")
    error = answer.get("errorMessage")
    return JobInfo(job_id, state, int(answer.get("numberRecordsProcessed") or 0),
                   int(answer.get("numberRecordsFailed") or 0),
                   scrub(str(error)) if error else None)


def _nothing(response: requests.Response) -> None:
    """Answers with nothing to read (upload, close, abort)."""


def _result_csv(response: requests.Response, what: str, column: str) -> list[tuple[str, str]]:
    """(record id, `column`) per row of a results CSV: the id from sf__Id, else from the
    uploaded Id column. A CSV without those columns, or a row cut short, is unreadable."""
    rows = _csv_rows(response.content, what)
    header = rows[0] if rows else []
    if column not in header or ("sf__Id" not in header and "Id" not in header):
        raise _unreadable(f"{what} came without its columns")
    where = header.index(column)
    ids = [header.index(name) for name in ("sf__Id", "Id") if name in header]
    out = []
    for row in rows[1:]:
        if len(row) != len(header):
            raise _unreadable(f"{what} was cut short")
        out.append((next((row[i] for i in ids if row[i]), ""), row[where]))
    return out


def _query_set(response: requests.Response) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, next locator or "") of one query results answer; a set whose row
    count is not `Sforce-NumberOfRecords` was cut short."""
    rows = _csv_rows(response.content, "query results")
    if not rows:
        raise _unreadable("query results came without a header row")
    header, body = rows[0], rows[1:]
    expected = response.headers.get("Sforce-NumberOfRecords")
    if expected is None or not expected.isdigit() or int(expected) != len(body) or \
            any(len(row) != len(header) for row in body):
        raise _unreadable(f"query results hold {len(body)} rows, the answer says {expected}")
    locator = response.headers.get("Sforce-Locator") or "null"
    return header, body, "" if locator == "null" else locator


def _record(object_type: str, api_version: str, header: list[str], row: list[str],
            types: dict[str, str]) -> dict[str, Any]:
    """A query job's row as the REST query returns the record."""
    record: dict[str, Any] = {"attributes": {"type": object_type, "url": ""}}
    for name, text in zip(header, row, strict=True):
        record[name] = _typed(types.get(name, "string"), text)
    record["attributes"]["url"] = (f"/services/data/v{api_version}/sobjects/{object_type}/"
                                   f"{record.get('Id')}")
    return record


def _typed(kind: str, text: str) -> Any:
    """A CSV value as the JSON value the REST API gives: empty is null (Salesforce keeps no
    empty text), booleans and numbers typed by the field's describe type; an integer written
    without a fraction stays an int, as JSON's `5` does."""
    if text == "":
        return None
    if kind == "boolean":
        return text.lower() == "true"
    if kind in ("int", "double", "currency", "percent"):
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text
    return text


def _unreadable(message: str) -> RetriableApiError:
    return RetriableApiError(message, system="salesforce", operation="bulk", status=200,
                             code="UNREADABLE_ANSWER")


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise _unreadable(f"the answer to '{what}' was not a JSON object (a garbled or cut-off "
                          "answer)")
    return answer


def _csv_rows(content: bytes, kind: str) -> list[list[str]]:
    try:
        text = content.decode("utf-8")
        return list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error):
        raise _unreadable(f"{kind}: not a CSV answer (a garbled or cut-off answer)") from None
