"""Bulk API 2.0 in the emulated org: ingest jobs (operation `update`) and query jobs.

Routes, under `/services/data/vXX.X/` (registered in salesforce.py, counted as the endpoints
`salesforce.bulk_ingest` and `salesforce.bulk_query`, and against the daily API allocation like
every other request: "Each HTTP request counts as one call for the purposes of calculating
usage limits", Bulk API Developer Guide, Bulk API Limits):

    POST  jobs/ingest                           create a job; it is Open
    PUT   jobs/ingest/{id}/batches              the job's CSV data: 201 Created, no body
    PATCH jobs/ingest/{id}                      {"state": "UploadComplete"} or {"state": "Aborted"}
    GET   jobs/ingest/{id}                      job info: state, numberRecordsProcessed, ...
    GET   jobs/ingest/{id}/successfulResults    CSV: sf__Id, sf__Created, the uploaded columns
    GET   jobs/ingest/{id}/failedResults        CSV: sf__Id, sf__Error, the uploaded columns
    GET   jobs/ingest/{id}/unprocessedrecords   CSV: the uploaded columns of rows not processed
    POST  jobs/query                            {"operation": "query" | "queryAll", "query": SOQL}
    GET   jobs/query/{id}                       job info
    GET   jobs/query/{id}/results               one CSV page (?maxRecords=N, ?locator=L);
                                                headers Sforce-Locator and Sforce-NumberOfRecords

What the Bulk API 2.0 Developer Guide says, and the sandbox does:

- Job states (Job States): "Open: An ingest job was created and is open for data uploads",
  "UploadComplete: All job data has been uploaded and the job is ready to be processed",
  "InProgress: The job is being processed", then JobComplete, Failed or Aborted. Upload
  Complete: "This request is required for every Bulk API 2.0 ingest job. If you don't make
  this request, processing of your data does not start." Jobs are processed asynchronously: a
  worker thread takes a job `BulkControl.queue_seconds` after UploadComplete and processes it
  chunk by chunk while clients poll; `Sandbox.set_bulk_processing(paused=True)` stalls it.
- CSV (Prepare CSV Files): "The first row in a CSV file lists the field names", UTF-8,
  COMMA delimiter by default, `lineEnding` LF (default) or CRLF as the job declares; "If
  you're updating a record, any fields that aren't defined in the CSV file are ignored"; an
  empty value leaves the field as it is, and `#N/A` sets it to null ("項目の値が空である場合、
  レコードの更新時にはその項目は無視されます。値を null に設定するには、項目値 #N/A を使用します",
  the guide's Prepare CSV Files, Japanese edition; the English one says the same).
- Upload Job Data: "A request can provide CSV data that does not in total exceed 150 MB of
  base64 encoded content"; larger uploads are refused. The sandbox takes one upload per job
  (crmsync sends one).
- Results (Get Job Successful / Failed / Unprocessed Record Results): successful rows carry
  `sf__Id` and `sf__Created`, failed rows `sf__Id` ("Available in API version 53 and later")
  and `sf__Error` ("Error code and message"; written here as Salesforce writes it,
  `STATUS_CODE:message:fields --`), unprocessed rows only the uploaded columns. "The order
  of records in the response is not guaranteed to match the ordering of records in the
  original job data."
- Processing (Understanding Bulk API 2.0 Ingest, Bulk API Limits): one internal batch per
  10,000 records, counted in `/limits` `DailyBulkApiBatches` (shared with Bulk API 1.0);
  records are saved in chunks of 200 ("In API version 21.0 and later, the chunk size is 200
  records"), each chunk one transaction for the org's triggers and flows; at most
  `salesforce_bulk_daily_records` records a day, and past it "the remaining data isn't
  processed. The ingest job is marked as having failed."
- Per record, the same rules as sObject Collections (salesforce.py `_check_update`):
  restricted picklists, converted leads, deleted and unknown ids, read-only and mistyped
  fields. Duplicate rules alert on every Lead and Contact update with a duplicate, and a
  Bulk job cannot acknowledge the alert: the Sforce-Duplicate-Rule-Header is a REST and SOAP
  header, and Bulk jobs do not honour it (simple-salesforce/simple-salesforce#628: "i tried
  add 'Sforce-Duplicate-Rule-Header': "allowSave=true" into my header but it's not working").
  Automation too heavy for a chunk fails every record of it, as a too-large collection.
- Query jobs (Bulk API 2.0 Query, Get Results for a Query Job): created UploadComplete,
  processed asynchronously (`DailyBulkV2QueryJobs` counts them); results are CSV pages of
  at most `maxRecords` rows, each answer's `Sforce-Locator` header naming the next page, "If
  there are no more results, the value is the string null"; `Sforce-NumberOfRecords` is the
  page's row count. Results of a job that is not JobComplete answer JOB_NOT_COMPLETE.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connector.sandbox._http import Request, Response
from connector.sandbox.schema import SALESFORCE_FIELDS, SalesforceField
from connector.sandbox.soql import SoqlError, parse_soql
from connector.sandbox.store import sf_datetime

if TYPE_CHECKING:
    from connector.sandbox._state import SandboxState

__all__ = ["BULK_CHUNK", "INGEST_ENDPOINT", "QUERY_ENDPOINT", "BulkApi"]

INGEST_ENDPOINT = "salesforce.bulk_ingest"
QUERY_ENDPOINT = "salesforce.bulk_query"
OPEN, UPLOAD_COMPLETE, IN_PROGRESS = "Open", "UploadComplete", "InProgress"
JOB_COMPLETE, FAILED, ABORTED = "JobComplete", "Failed", "Aborted"
TERMINAL = frozenset({JOB_COMPLETE, FAILED, ABORTED})
MAX_UPLOAD_BASE64_BYTES = 150 * 1024 * 1024
BULK_CHUNK = 200  # records a transaction (API 21.0 and later)
RECORDS_PER_BATCH = 10_000  # records an internal batch (DailyBulkApiBatches)
# Operations a real ingest job takes; the sandbox emulates `update`, the one crmsync sends.
DOCUMENTED_OPERATIONS = frozenset({"insert", "update", "upsert", "delete", "hardDelete"})
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
DEFAULT_QUERY_PAGE = 50_000  # rows a results page holds without ?maxRecords (sandbox's choice)
NULL_VALUE = "#N/A"
CREATED_BY = "005Dn000000sbxAPIA"


class BulkError(Exception):
    """An error answer in Salesforce's shape (`[{"errorCode", "message"}]`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        body = json.dumps([{"errorCode": self.code, "message": self.message}]).encode()
        return Response(status=self.status, body=body)


@dataclass
class _IngestJob:
    id: str
    sobject: str
    version: str
    line_ending: str
    created: str
    state: str = OPEN
    modified: str = ""
    data: bytes | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    done: int = 0  # rows processed, in upload order
    successes: list[tuple[int, str]] = field(default_factory=list)  # (row, record id)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (row, id, sf__Error)
    error_message: str | None = None
    started: float = 0.0
    finished: float = 0.0


@dataclass
class _QueryJob:
    id: str
    operation: str
    query: str
    version: str
    line_ending: str
    created: str
    state: str = UPLOAD_COMPLETE
    modified: str = ""
    header: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # rendered CSV rows, line ending included
    error_message: str | None = None


class BulkApi:
    """The org's Bulk API 2.0: its jobs, and the worker threads that process them."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._ingest: dict[str, _IngestJob] = {}
        self._queries: dict[str, _QueryJob] = {}
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def handle(self, name: str, request: Request, args: dict[str, str | None],
               version: str) -> Response:
        """Answer one Bulk API route (the names salesforce.py registers)."""
        handlers: dict[str, Callable[[], Response]] = {
            "bulk_create": lambda: self.create_ingest(request, version),
            "bulk_upload": lambda: self.upload(str(args["job"]), request),
            "bulk_state": lambda: self.set_state(str(args["job"]), request),
            "bulk_info": lambda: _json(200, self._info(self._job(str(args["job"])))),
            "bulk_results": lambda: self.results(str(args["job"]), str(args["results"])),
            "bulk_query_create": lambda: self.create_query(request, version),
            "bulk_query_info": lambda: _json(200, self._query_info(
                self._query(str(args["job"])))),
            "bulk_query_results": lambda: self.query_results(str(args["job"]), request),
        }
        try:
            return handlers[name]()
        except BulkError as error:
            return error.response()

    # ---- ingest ---------------------------------------------------------------------------

    def create_ingest(self, request: Request, version: str) -> Response:
        body = _json_body(request)
        sobject = body.get("object")
        if sobject not in SALESFORCE_FIELDS:
            raise BulkError(400, "INVALIDJOB", f"InvalidJob : Unable to find object: {sobject}")
        operation = body.get("operation")
        if operation not in DOCUMENTED_OPERATIONS:
            raise BulkError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        if operation != "update":
            raise BulkError(400, "FEATURENOTENABLED", f"the sandbox emulates the update "
                            f"operation only, not {operation}")
        self._check_format(body)
        now = self._now()
        job = _IngestJob(id=self._new_id(), sobject=sobject, version=version,
                         line_ending=body.get("lineEnding") or "LF", created=now, modified=now)
        with self._lock:
            self._ingest[job.id] = job
        return _json(200, self._info(job))

    def upload(self, job_id: str, request: Request) -> Response:
        job = self._job(job_id)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type.lower() != "text/csv":
            raise BulkError(400, "INVALIDCONTENTTYPE", f"job data must be text/csv, not "
                            f"{content_type or 'none'}")
        if len(base64.b64encode(request.body)) > MAX_UPLOAD_BASE64_BYTES:
            raise BulkError(400, "INVALIDBATCH", "InvalidBatch : the upload exceeds 150 MB of "
                            "base64-encoded content; upload at most 100 MB of CSV per job")
        with self._lock:
            if job.state != OPEN:
                raise BulkError(409, "INVALIDJOBSTATE", f"job {job_id} is {job.state}, not Open")
            if job.data is not None:
                raise BulkError(409, "INVALIDJOBSTATE", f"job {job_id} has its data already "
                                "(the sandbox takes one upload per job)")
            job.data = request.body
            job.modified = self._now()
        return Response(status=201, body=b"", content_type="text/plain")

    def set_state(self, job_id: str, request: Request) -> Response:
        job = self._job(job_id)
        wanted = _json_body(request).get("state")
        with self._lock:
            if wanted == UPLOAD_COMPLETE:
                if job.state != OPEN:
                    raise BulkError(409, "INVALIDJOBSTATE",
                                    f"job {job_id} is {job.state}, not Open")
                job.state = UPLOAD_COMPLETE
            elif wanted == ABORTED:
                if job.state in TERMINAL:
                    raise BulkError(409, "INVALIDJOBSTATE",
                                    f"job {job_id} is {job.state}: it cannot be aborted")
                job.state = ABORTED
                job.finished = time.monotonic()
            else:
                raise BulkError(400, "INVALIDJOBSTATE", f"a job's state can be set to "
                                f"UploadComplete or Aborted, not {wanted}")
            job.modified = self._now()
        if wanted == UPLOAD_COMPLETE:
            threading.Thread(target=self._process, args=(job,), daemon=True,
                             name=f"bulk-{job.id}").start()
        return _json(200, self._info(job))

    def results(self, job_id: str, kind: str) -> Response:
        """A job's per-record results so far, as CSV."""
        job = self._job(job_id)
        with self._lock:
            header, rows = job.header, job.rows
            if kind == "successfulResults":
                columns = ["sf__Id", "sf__Created", *header]
                out = [[record_id, "false", *rows[i]] for i, record_id in job.successes]
            elif kind == "failedResults":
                columns = ["sf__Id", "sf__Error", *header]
                out = [[record_id, error, *rows[i]] for i, record_id, error in job.failures]
            else:
                columns = header
                out = [] if job.state == JOB_COMPLETE else rows[job.done:]
        self.state.counters.returned(INGEST_ENDPOINT, len(out))
        return _csv(columns if columns else [], out)

    # ---- ingest processing (the org's queue) ----------------------------------------------

    def _process(self, job: _IngestJob) -> None:
        """Take the job after the queue delay, check its data, then save it chunk by chunk."""
        control = self.state.salesforce_bulk
        time.sleep(control.queue_seconds)
        control.wait_while_paused()
        with self._lock:
            if job.state != UPLOAD_COMPLETE:
                return  # aborted meanwhile
            job.state, job.started = IN_PROGRESS, time.monotonic()
            job.modified = self._now()
        problem = self._parse(job)
        if problem is not None:
            self._end(job, FAILED, problem)
            return
        control.count_batches(max(1, -(-len(job.rows) // RECORDS_PER_BATCH)))
        people: dict[str, list[tuple[str, str]]] | None = None
        limit = self.state.limits.salesforce_bulk_daily_records
        for start in range(0, len(job.rows), BULK_CHUNK):
            control.wait_while_paused()
            if job.state == ABORTED:
                return
            chunk = job.rows[start:start + BULK_CHUNK]
            granted = control.take_records(len(chunk), limit)
            if granted:
                people = self._save_chunk(job, start, chunk[:granted], people)
            if granted < len(chunk):
                self._end(job, FAILED, f"Exceeded the daily limit of {limit:,} Bulk API 2.0 "
                          "records; the remaining data was not processed")
                return
            if control.chunk_seconds:
                time.sleep(control.chunk_seconds)
        self._end(job, JOB_COMPLETE, None)

    def _end(self, job: _IngestJob, state: str, message: str | None) -> None:
        with self._lock:
            if job.state == ABORTED:
                return
            job.state, job.error_message = state, message
            job.finished = time.monotonic()
            job.modified = self._now()

    def _parse(self, job: _IngestJob) -> str | None:
        """Read the uploaded CSV into the job's header and rows; a problem makes the job fail
        as a whole (an InvalidBatch in Salesforce), with nothing processed."""
        if not job.data:
            return "InvalidBatch : the job has no data (nothing was uploaded)"
        try:
            text = job.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"InvalidBatch : the data is not UTF-8 (byte {exc.start})"
        declared = LINE_ENDINGS[job.line_ending]
        other = "\r\n" if declared == "\n" else None
        if other and other in text:
            return "InvalidBatch : the data has CRLF line endings but the job declares LF"
        if declared == "\r\n" and re.search(r"(?<!\r)\n", text):
            return "InvalidBatch : the data has LF line endings but the job declares CRLF"
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows or not rows[0]:
            return "InvalidBatch : the data has no header row"
        header, body = rows[0], rows[1:]
        fields = SALESFORCE_FIELDS[job.sobject]
        for name in header:
            if name not in fields:
                return f"InvalidBatch : Field name not found : {name}"
        if "Id" not in header:
            return "InvalidBatch : an update needs the Id column"
        for number, row in enumerate(body, start=2):
            if len(row) != len(header):
                return (f"InvalidBatch : row {number} has {len(row)} values for "
                        f"{len(header)} columns")
        with self._lock:
            job.header, job.rows = header, body
        return None

    def _save_chunk(self, job: _IngestJob, start: int, chunk: list[list[str]],
                    people: dict[str, list[tuple[str, str]]] | None
                    ) -> dict[str, list[tuple[str, str]]] | None:
        """Validate and save one chunk of 200 as one transaction, as sObject Collections would
        (salesforce.py's `_check_update`), then duplicate rules and automation."""
        from connector.sandbox import salesforce as rest  # noqa: PLC0415 - import cycle

        plan = self.state.fault_plan
        locked = [a or b for a, b in zip(
            plan.record_faults(INGEST_ENDPOINT, "lock", len(chunk)),
            plan.record_faults(INGEST_ENDPOINT, "partial", len(chunk)), strict=True,
        )] if plan else [False] * len(chunk)
        rules = self.state.salesforce_writes
        data = self.state.dataset
        items = [_item(job.sobject, job.header, row) for row in chunk]
        with data.lock:
            checked = [rest._check_update(data, item, locked[i])
                       for i, item in enumerate(items)]
            if rules.duplicate_rule and job.sobject in rest.DUPLICATE_RULE_OBJECTS:
                people = people if people is not None else rest._people_by_email(data)
                checked = _with_alerts(job.sobject, items, checked, people)
            saving = sum(1 for _, _, errors in checked if not errors)
            over_limit = rules.automation_max_batch is not None and saving and \
                len(items) > rules.automation_max_batch
            moment = data.clock.now()
            successes, failures = [], []
            for offset, ((record_id, target, errors), item) in enumerate(
                    zip(checked, items, strict=True)):
                row = start + offset
                problems = rest._governor_failure(item)["errors"] if over_limit else errors
                if problems:
                    failures.append((row, record_id or "", _sf_error(problems[0])))
                    continue
                before = target.get("Email")
                rest._apply(data, target, item, moment)
                if people is not None and "Email" in item:
                    _move_email(people, job.sobject, target["Id"], before, target.get("Email"))
                successes.append((row, target["Id"]))
        self.state.counters.written(INGEST_ENDPOINT, len(successes))
        with self._lock:
            job.successes += successes
            job.failures += failures
            job.done = start + len(chunk)
            job.modified = self._now()
        return people

    # ---- query jobs -----------------------------------------------------------------------

    def create_query(self, request: Request, version: str) -> Response:
        body = _json_body(request)
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise BulkError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        text = body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise BulkError(400, "INVALIDJOB", "InvalidJob : a query job needs a query")
        try:
            parsed = parse_soql(text)
        except SoqlError as exc:
            raise BulkError(400, exc.code, str(exc)) from None
        if parsed.count:
            raise BulkError(400, "INVALIDJOB", "InvalidJob : COUNT() is not supported in a "
                            "Bulk API 2.0 query")
        self._check_format(body)
        self.state.salesforce_bulk.count_query_job()
        now = self._now()
        job = _QueryJob(id=self._new_id(), operation=operation, query=text, version=version,
                        line_ending=body.get("lineEnding") or "LF", created=now, modified=now)
        with self._lock:
            self._queries[job.id] = job
        threading.Thread(target=self._run_query, args=(job, parsed), daemon=True,
                         name=f"bulk-query-{job.id}").start()
        return _json(200, self._query_info(job))

    def _run_query(self, job: _QueryJob, parsed: Any) -> None:
        control = self.state.salesforce_bulk
        time.sleep(control.queue_seconds)
        control.wait_while_paused()
        with self._lock:
            if job.state != UPLOAD_COMPLETE:
                return
            job.state, job.modified = IN_PROGRESS, self._now()
        include_deleted = job.operation == "queryAll"
        data = self.state.dataset
        ending = LINE_ENDINGS[job.line_ending]
        with data.lock:
            records = [r for r in data.salesforce[parsed.sobject].values()
                       if (include_deleted or not r["IsDeleted"]) and parsed.matches(r)]
            records = parsed.sort(records)
            if parsed.limit is not None:
                records = records[: parsed.limit]
            lines = [_csv_line([_text(r.get(name)) for name in parsed.fields], ending)
                     for r in records]
        with self._lock:
            if job.state == ABORTED:
                return
            job.header, job.lines = list(parsed.fields), lines
            job.state, job.modified = JOB_COMPLETE, self._now()

    def query_results(self, job_id: str, request: Request) -> Response:
        job = self._query(job_id)
        if job.state != JOB_COMPLETE:
            raise BulkError(400, "JOB_NOT_COMPLETE", "can only download query results of "
                            f"successfully completed bulk job; current state: {job.state}")
        start = _offset(request.param("locator"))
        size = _max_records(request.param("maxRecords"))
        page = job.lines[start:start + size]
        end = start + len(page)
        locator = _locator(end) if end < len(job.lines) else "null"
        body = _csv_line(job.header, LINE_ENDINGS[job.line_ending]) + "".join(page)
        self.state.counters.returned(QUERY_ENDPOINT, len(page))
        return Response(status=200, body=body.encode("utf-8"),
                        content_type="text/csv; charset=UTF-8",
                        headers=[("Sforce-Locator", locator),
                                 ("Sforce-NumberOfRecords", str(len(page)))])

    # ---- plumbing -------------------------------------------------------------------------

    def _check_format(self, body: dict[str, Any]) -> None:
        if (body.get("contentType") or "CSV") != "CSV":
            raise BulkError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
        if (body.get("lineEnding") or "LF") not in LINE_ENDINGS:
            raise BulkError(400, "INVALIDJOB", "InvalidJob : lineEnding must be LF or CRLF")
        if (body.get("columnDelimiter") or "COMMA") != "COMMA":
            raise BulkError(400, "FEATURENOTENABLED",
                            "the sandbox emulates the COMMA column delimiter only")

    def _job(self, job_id: str) -> _IngestJob:
        with self._lock:
            job = self._ingest.get(job_id) or self._ingest.get(_full(job_id, self._ingest))
        if job is None:
            raise BulkError(404, "NOT_FOUND", f"no ingest job {job_id}")
        return job

    def _query(self, job_id: str) -> _QueryJob:
        with self._lock:
            job = self._queries.get(job_id) or self._queries.get(_full(job_id, self._queries))
        if job is None:
            raise BulkError(404, "NOT_FOUND", f"no query job {job_id}")
        return job

    def _new_id(self) -> str:
        return f"750Dn{next(self._numbers):010d}AAA"

    def _now(self) -> str:
        return sf_datetime(self.state.dataset.clock.now())

    def _info(self, job: _IngestJob) -> dict[str, Any]:
        with self._lock:
            elapsed = int(((job.finished or time.monotonic()) - job.started) * 1000) \
                if job.started else 0
            info: dict[str, Any] = {
                "id": job.id, "operation": "update", "object": job.sobject,
                "createdById": CREATED_BY, "createdDate": job.created,
                "systemModstamp": job.modified, "state": job.state,
                "concurrencyMode": "Parallel", "contentType": "CSV",
                "apiVersion": float(job.version), "jobType": "V2Ingest",
                "lineEnding": job.line_ending, "columnDelimiter": "COMMA",
                "numberRecordsProcessed": job.done, "numberRecordsFailed": len(job.failures),
                "retries": 0, "totalProcessingTime": elapsed,
                "apiActiveProcessingTime": elapsed, "apexProcessingTime": 0,
            }
            if job.state == OPEN:
                info["contentUrl"] = f"services/data/v{job.version}/jobs/ingest/{job.id}/batches"
            if job.error_message:
                info["errorMessage"] = job.error_message
        return info

    def _query_info(self, job: _QueryJob) -> dict[str, Any]:
        with self._lock:
            info: dict[str, Any] = {
                "id": job.id, "operation": job.operation, "object": _object_of(job.query),
                "createdById": CREATED_BY, "createdDate": job.created,
                "systemModstamp": job.modified, "state": job.state,
                "concurrencyMode": "Parallel", "contentType": "CSV",
                "apiVersion": float(job.version), "jobType": "V2Query",
                "lineEnding": job.line_ending, "columnDelimiter": "COMMA",
                "numberRecordsProcessed": len(job.lines), "retries": 0,
                "totalProcessingTime": 0,
            }
            if job.error_message:
                info["errorMessage"] = job.error_message
        return info


# ---- values ---------------------------------------------------------------------------------


def _item(sobject: str, header: list[str], row: list[str]) -> dict[str, Any]:
    """One CSV row as the record body `_check_update` takes: empty values left out (ignored on
    update), `#N/A` as null, other values typed by the field's describe type."""
    fields = SALESFORCE_FIELDS[sobject]
    item: dict[str, Any] = {"attributes": {"type": sobject}}
    for name, text in zip(header, row, strict=True):
        if text == "":
            continue
        item[name] = None if text == NULL_VALUE else _typed(fields[name], text)
    return item


def _typed(spec: SalesforceField, text: str) -> Any:
    """A CSV value as the field's type; text that is no such value stays text, and fails the
    record's type check as a wrong JSON value would."""
    if spec.type == "boolean":
        lowered = text.strip().lower()
        return {"true": True, "false": False, "1": True, "0": False}.get(lowered, text)
    if spec.type == "int" and re.fullmatch(r"-?\d+", text):
        return int(text)
    if spec.type in ("double", "currency"):
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _text(value: Any) -> str:
    """A stored value as a Bulk query writes it: null as an empty value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sf_error(error: dict[str, Any]) -> str:
    """A per-record error as failedResults' sf__Error holds it: `CODE:message:fields --`."""
    fields = ",".join(error.get("fields") or [])
    return f"{error['statusCode']}:{error['message']}:{fields} --"


def _with_alerts(sobject: str, items: list[dict[str, Any]],
                 checked: list[tuple[str | None, dict[str, Any] | None, list[dict[str, Any]]]],
                 people: dict[str, list[tuple[str, str]]]
                 ) -> list[tuple[str | None, dict[str, Any] | None, list[dict[str, Any]]]]:
    """DUPLICATES_DETECTED for each valid update whose e-mail another live Lead or Contact
    has (`people`: the job's index, kept current as the job changes e-mails)."""
    from connector.sandbox import salesforce as rest  # noqa: PLC0415 - import cycle

    alerted = []
    for (record_id, target, errors), item in zip(checked, items, strict=True):
        if errors or target is None:
            alerted.append((record_id, target, errors))
            continue
        email = item["Email"] if "Email" in item else target.get("Email")
        matches = [m for m in people.get(rest._email_key(email), ()) if m[1] != record_id]
        alerted.append((record_id, target,
                        [rest._duplicates_detected(sobject, matches)] if matches else errors))
    return alerted


def _move_email(people: dict[str, list[tuple[str, str]]], sobject: str, record_id: str,
                before: Any, after: Any) -> None:
    from connector.sandbox import salesforce as rest  # noqa: PLC0415 - import cycle

    old, new = rest._email_key(before), rest._email_key(after)
    if old == new:
        return
    if old:
        people[old] = [m for m in people.get(old, []) if m[1] != record_id]
    if new:
        people.setdefault(new, []).append((sobject, record_id))


# ---- CSV and JSON answers -------------------------------------------------------------------


def _csv_line(values: list[str], ending: str) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=ending).writerow(values)
    return out.getvalue()


def _csv(columns: list[str], rows: list[list[str]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return Response(status=200, body=out.getvalue().encode("utf-8"),
                    content_type="text/csv; charset=UTF-8")


def _json(status: int, payload: Any) -> Response:
    return Response(status=status, body=json.dumps(payload, separators=(",", ":")).encode())


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"null")
    except ValueError as exc:
        raise BulkError(400, "JSON_PARSER_ERROR", str(exc)) from None
    if not isinstance(body, dict):
        raise BulkError(400, "JSON_PARSER_ERROR", "expected a JSON object")
    return body


def _locator(offset: int) -> str:
    """An opaque locator ("a pseudo-random string such as MTAwMDA", the guide's example
    being base64 of the offset)."""
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str | None) -> int:
    if not locator:
        return 0
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.b64decode(padded.encode(), validate=True).decode())
    except (ValueError, UnicodeDecodeError):
        raise BulkError(400, "INVALID_LOCATOR", f"invalid locator {locator}") from None


def _max_records(text: str | None) -> int:
    if text is None:
        return DEFAULT_QUERY_PAGE
    if not text.isdigit() or int(text) < 1:
        raise BulkError(400, "INVALID_MAX_RECORDS", f"maxRecords must be a positive number, "
                        f"not {text}")
    return int(text)


def _full(job_id: str, jobs: dict[str, Any]) -> str:
    """A 15-character job id in its 18-character form, when one matches."""
    return next((k for k in jobs if k[:15] == job_id[:15]), job_id)


def _object_of(query: str) -> str:
    match = re.search(r"\bfrom\s+(\w+)", query, re.IGNORECASE)
    return match.group(1) if match else ""

