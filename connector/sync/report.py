"""What a run tells its caller: the report, its status and exit code, and progress calls."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypedDict

from connector.exceptions import ConfigurationError, RunStoppedEarly

if TYPE_CHECKING:
    from connector.reconcile import Duplicate
    from connector.state import ChangeSpool

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_REJECTS", "EXIT_STOPPED",
           "REPORT_CHANGE_ROWS", "DuplicateRow", "Progress", "RejectRow", "RunReport",
           "RunStatus"]

EXIT_OK, EXIT_REJECTS, EXIT_CONFIG, EXIT_STOPPED, EXIT_FAILED = 0, 1, 2, 3, 4
REPORT_CHANGE_ROWS = 10_000  # rows a report lists; the audit log and plan files hold them all


class RunStatus(StrEnum):
    """How a run ended. A `str`, so reports, JSON and the runs table hold the bare word."""

    RUNNING = "running"
    OK = "ok"
    REJECTS = "rejects"  # records or writes were refused, or writes left for a retry
    CONFIG_ERROR = "config_error"
    STOPPED = "stopped"  # the lock was held or lost, or Ctrl-C/SIGTERM: rerun to continue
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # set by the state store on a run killed mid-way, never here

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES.get(self, EXIT_FAILED)

    @classmethod
    def of(cls, exc: BaseException) -> RunStatus:
        """The status a run ends with when `exc` stops it: decided by how one recovers."""
        if isinstance(exc, RunStoppedEarly | KeyboardInterrupt):
            return cls.STOPPED
        if isinstance(exc, ConfigurationError):
            return cls.CONFIG_ERROR
        return cls.FAILED  # API, state DB (sqlite3 too) and unexpected errors


_EXIT_CODES = {RunStatus.OK: EXIT_OK, RunStatus.REJECTS: EXIT_REJECTS,
               RunStatus.CONFIG_ERROR: EXIT_CONFIG, RunStatus.STOPPED: EXIT_STOPPED}


class RejectRow(TypedDict):
    """A record the run refused ("read", "write") or a field rollback left ("rollback")."""

    record: str
    stage: str
    field: str | None
    reason: str


class DuplicateRow(TypedDict):
    """Records of one system linked into one person or organisation."""

    entity: str
    system: str
    records: list[str]
    linked_by: list[str]


class Progress:
    """What the engine reports while it works; the CLI draws bars, tests record calls.

    `wants_totals` asks for one count call per object before a backfill, for an ETA; only
    progress displays set it, so scheduled runs spend no API calls on it. `status` says
    where a task stands besides its count (a Salesforce Bulk job's state: Open,
    UploadComplete, InProgress, JobComplete...).
    """

    wants_totals = False

    def start(self, key: str, total: int | None = None) -> None: ...
    def advance(self, key: str, count: int) -> None: ...
    def finish(self, key: str) -> None: ...
    def note(self, message: str) -> None: ...
    def status(self, key: str, text: str) -> None: ...


@dataclass
class RunReport:
    """What a run did; `exit_code` tells a scheduler what happened."""

    kind: str
    dry_run: bool
    run_id: int | None = None
    status: RunStatus = RunStatus.RUNNING
    started_at: str = ""
    ended_at: str = ""
    duration_seconds: float = 0.0
    read: dict[str, int] = field(default_factory=dict)
    rejected_records: int = 0
    planned: int = 0
    applied: int = 0
    write_rejected: int = 0
    retry_later: int = 0
    skipped: int = 0
    api_calls: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    plan_scope: str = ""
    records_planned: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    changes_not_listed: int = 0
    rejects: list[RejectRow] = field(default_factory=list)
    deleted: int = 0  # mirrored records found deleted in their CRM this run
    merged: int = 0  # ... or merged into another record (their links moved to the survivor)
    reread_records: int = 0  # records read again right before their write (a stale read)
    reread_calls: int = 0  # the API calls that cost
    reread_changed: int = 0  # records found changed by someone since the run read them
    bulk_jobs: int = 0  # Salesforce Bulk API 2.0 jobs this run sent (README, "Large backfills")
    # intended writes of earlier runs that died before hearing the CRM's answer, resolved
    # by reading the records: "applied" (audited under that run) or "not_applied"
    intents_resolved: dict[str, int] = field(
        default_factory=lambda: {"applied": 0, "not_applied": 0})
    # groups of two or more records of one system linked into one person or organisation,
    # among the records this run planned: {entity, system, records, linked_by}, the first
    # REPORT_CHANGE_ROWS listed (`crmsync status` counts every group known)
    duplicate_groups: int = 0
    duplicates: list[DuplicateRow] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES.get(self.status, EXIT_FAILED)

    @property
    def succeeded(self) -> bool:
        """Whether the run went through, perhaps with records refused (logged at INFO)."""
        return self.status in (RunStatus.OK, RunStatus.REJECTS)

    def counts(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "rejected_records": self.rejected_records,
            "planned": self.planned,
            "applied": self.applied,
            "write_rejected": self.write_rejected,
            "retry_later": self.retry_later,
            "skipped": self.skipped,
            "plan_scope": self.plan_scope,
            "records_planned": self.records_planned,
            "deleted": self.deleted,
            "merged": self.merged,
            "reread_records": self.reread_records,
            "reread_calls": self.reread_calls,
            "reread_changed": self.reread_changed,
            "intents_resolved": self.intents_resolved,
            "bulk_jobs": self.bulk_jobs,
            "duplicate_groups": self.duplicate_groups,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}

    def settle(self) -> None:
        """The status of a run that went to its end: "rejects" (exit 1) when records or
        writes were refused or left for a retry, else "ok"."""
        if self.retry_later:
            self.message = (f"{self.retry_later} write(s) pending retry: the next run "
                            "tries them again")
        failed = self.rejected_records or self.write_rejected or self.retry_later
        self.status = RunStatus.REJECTS if failed else RunStatus.OK

    def stop(self, exc: BaseException, message: str) -> None:
        """End the run with the status `exc` calls for (`RunStatus.of`)."""
        self.status, self.message = RunStatus.of(exc), message

    def add_problem(self, problem: str) -> None:
        """A failure while ending the run: it fails, and says why after what it said."""
        self.status = RunStatus.FAILED
        self.message = "; ".join(filter(None, [self.message, problem]))

    def list_changes(self, spool: ChangeSpool, *, sent_only: bool) -> None:
        """The report lists the first changes in plan order; a backfill can plan millions."""
        self.changes = spool.report_rows(REPORT_CHANGE_ROWS, sent_only=sent_only)
        listed_from = spool.sent() if sent_only else spool.count
        self.changes_not_listed = listed_from - len(self.changes)

    def list_duplicates(self, found: list[Duplicate]) -> None:
        """Count the duplicate groups planned, and list the first, ordered by record."""
        found.sort(key=lambda d: (d.records[0], d.entity))
        self.duplicate_groups = len(found)
        self.duplicates = [
            DuplicateRow(entity=d.entity, system=d.system, records=list(d.records),
                         linked_by=list(d.linked_by)) for d in found[:REPORT_CHANGE_ROWS]]

