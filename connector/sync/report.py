"""What a run tells its caller: the report, its status and exit code, and progress calls."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypedDict

from connector.exceptions import ConfigurationError, RunPaused, RunStoppedEarly

if TYPE_CHECKING:
    from connector.mapping import Mapping
    from connector.model import LifecycleStage
    from connector.reconcile import Duplicate
    from connector.state import ChangeSpool

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_REJECTS", "EXIT_STOPPED",
           "REPORT_CHANGE_ROWS", "ChangeSummary", "DuplicateRow", "Progress", "RejectCause",
           "RejectRow", "RunReport", "RunStatus", "Transition", "change_flags",
           "group_rejects", "split_reason"]

EXIT_OK, EXIT_REJECTS, EXIT_CONFIG, EXIT_STOPPED, EXIT_FAILED = 0, 1, 2, 3, 4
REPORT_CHANGE_ROWS = 10_000  # rows a report lists; the audit log and plan files hold them all


class RunStatus(StrEnum):
    """How a run ended. A `str`, so reports, JSON and the runs table hold the bare word."""

    RUNNING = "running"
    OK = "ok"
    REJECTS = "rejects"  # records or writes were refused, or writes left for a retry
    CONFIG_ERROR = "config_error"
    STOPPED = "stopped"  # the lock was held or lost, or Ctrl-C/SIGTERM: rerun to continue
    PAUSED = "paused"  # an admin paused crmsync (`crmsync pause`): nothing (more) written
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # set by the state store on a run killed mid-way, never here

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES.get(self, EXIT_FAILED)

    @classmethod
    def of(cls, exc: BaseException) -> RunStatus:
        """The status a run ends with when `exc` stops it: decided by how one recovers."""
        if isinstance(exc, RunPaused):
            return cls.PAUSED
        if isinstance(exc, RunStoppedEarly | KeyboardInterrupt):
            return cls.STOPPED
        if isinstance(exc, ConfigurationError):
            return cls.CONFIG_ERROR
        return cls.FAILED  # API, state DB (sqlite3 too) and unexpected errors


_EXIT_CODES = {RunStatus.OK: EXIT_OK, RunStatus.REJECTS: EXIT_REJECTS,
               RunStatus.CONFIG_ERROR: EXIT_CONFIG, RunStatus.STOPPED: EXIT_STOPPED,
               RunStatus.PAUSED: EXIT_OK}


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


# ---- rejects, grouped by cause ---------------------------------------------------------------

FIX_MARK = " -> "  # a reject's reason is "CAUSE -> FIX" when crmsync knows the fix


def split_reason(reason: str) -> tuple[str, str | None]:
    """(cause, fix) of a reject's reason. The cause names no record, so the records one
    mistake rejects share it (150 leads with the status 'Nurturing'); the fix is where to act,
    such as the mapping line to add the value at. The fix is crmsync's own text and never
    holds the mark, so the last mark splits them even when a CRM value in the cause has one."""
    cause, mark, fix = reason.rpartition(FIX_MARK)
    return (cause, fix) if mark else (reason, None)


class RejectCause(TypedDict):
    """The records one cause rejected (or, in a rollback, left as they are)."""

    stage: str
    field: str | None
    cause: str
    fix: str | None
    count: int
    records: list[str]


def group_rejects(rows: Iterable[RejectRow | dict[str, Any]]) -> list[RejectCause]:
    """Rejects grouped by stage, field and cause, the largest group first: what an admin
    fixes is a cause, not a record."""
    groups: dict[tuple[str, str | None, str, str | None], RejectCause] = {}
    for row in rows:
        cause, fix = split_reason(row["reason"])
        key = (row["stage"], row.get("field") or None, cause, fix)
        group = groups.get(key)
        if group is None:
            group = groups[key] = RejectCause(stage=key[0], field=key[1], cause=cause, fix=fix,
                                              count=0, records=[])
        group["count"] += 1
        group["records"].append(row["record"])
    return sorted(groups.values(), key=lambda g: (-g["count"], g["stage"], g["cause"]))


# ---- what a run changed, summed up ----------------------------------------------------------

DOWNGRADE, CLEAR, PRIORITY = "downgrade", "clear", "priority"  # the flags a transition carries
SUMMARY_TRANSITIONS = 1_000  # transitions a summary lists (trigger dates can make many)


class Transition(TypedDict):
    """How many changes moved one field from one value to another, with one outcome."""

    system: str
    object_type: str
    field: str
    before: Any
    after: Any
    status: str
    changes: int
    flags: list[str]
    steps: int  # 2: HubSpot's forward-only lifecycle stage, cleared and then set


class ChangeSummary(TypedDict):
    """A run's changes counted by system, object, field, outcome and transition, and how
    many a person should look at twice: stage downgrades, cleared values, priority moves."""

    changes: int  # field value changes: a clear-then-set counts once, as the move it makes
    records: int
    two_step: int  # changes made in two steps (two requests each)
    by_system: dict[str, int]
    by_object: dict[str, int]
    by_field: dict[str, int]
    by_status: dict[str, int]
    flagged: dict[str, int]
    transitions: list[Transition]
    transitions_not_listed: int


def change_flags(mapping: Mapping | None, system: str, object_type: str, field_name: str,
                 before: Any, after: Any) -> list[str]:
    """What a person should notice about one value change: a lifecycle stage moving back
    (or off the ladder), a value cleared, a priority moving from one value to another (a
    first priority, on a record that had none, is no surprise)."""
    flags = []
    rule = _write_rule(mapping, system, object_type, field_name)
    if rule is not None and rule.source == "person.stage":
        old = _stage(mapping, rule, before)
        new = _stage(mapping, rule, after)
        if new is not None and new.is_downgrade_from(old):
            flags.append(DOWNGRADE)
    if _empty(after) and not _empty(before):
        flags.append(CLEAR)
    if rule is not None and rule.source.endswith(".priority") and not _empty(before):
        flags.append(PRIORITY)
    return flags


def _write_rule(mapping: Mapping | None, system: str, object_type: str, field_name: str):
    if mapping is None:
        return None
    return next((r for r in mapping.write_back.get((system, object_type), ())
                 if r.field == field_name), None)


def _stage(mapping: Mapping, rule: Any, value: Any) -> LifecycleStage | None:
    """The canonical stage a written system value stands for: the field's own picklist
    when the mapping reads it, else the write rule's reverse map read backwards."""
    from connector.model import LifecycleStage  # noqa: PLC0415 - keep this module light

    if _empty(value):
        return None
    text = str(value).strip()
    field_map = mapping.field_map(rule.system, rule.object, rule.field)
    meaning = field_map.values.get(text) if field_map is not None else None
    if meaning is not None and meaning.stage is not None:
        return meaning.stage
    for canonical, written in (rule.values or {}).items():
        if written is not None and str(written) == text:
            try:
                return LifecycleStage(canonical)
            except ValueError:
                return None
    return None


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def summarise(rows: Iterable[tuple[Any, ...]], records: int,
              mapping: Mapping | None) -> ChangeSummary:
    """A ChangeSummary from `ChangeSpool.transitions` rows (system, object, field, before,
    after, status, changes, steps). Empty values (None, "") count as one: both show as ∅."""
    merged: dict[tuple, Transition] = {}
    for system, object_type, field_name, before, after, status, count, steps in rows:
        key = (system, object_type, field_name, _key(before), _key(after), status, steps)
        if key in merged:
            merged[key]["changes"] += count
            continue
        merged[key] = Transition(
            system=system, object_type=object_type, field=field_name,
            before=None if _empty(before) else before, after=None if _empty(after) else after,
            status=status, changes=count,
            flags=change_flags(mapping, system, object_type, field_name, before, after),
            steps=steps)
    ordered = sorted(merged.values(), key=lambda t: (t["system"], t["object_type"], t["field"],
                                                     -t["changes"], _key(t["before"]),
                                                     _key(t["after"]), t["status"]))
    summary = ChangeSummary(changes=0, records=records, two_step=0, by_system={}, by_object={},
                            by_field={}, by_status={},
                            flagged={DOWNGRADE: 0, CLEAR: 0, PRIORITY: 0},
                            transitions=ordered[:SUMMARY_TRANSITIONS],
                            transitions_not_listed=max(0, len(ordered) - SUMMARY_TRANSITIONS))
    for t in ordered:
        count = t["changes"]
        summary["changes"] += count
        summary["two_step"] += count if t["steps"] > 1 else 0
        for table, key in ((summary["by_system"], t["system"]),
                           (summary["by_object"], f"{t['system']}.{t['object_type']}"),
                           (summary["by_field"],
                            f"{t['system']}.{t['object_type']}.{t['field']}"),
                           (summary["by_status"], t["status"])):
            table[key] = table.get(key, 0) + count
        for flag in t["flags"]:
            summary["flagged"][flag] += count
    return summary


def _key(value: Any) -> str:
    """A value as the summary tells values apart: empty is one, "5" and 5 are one."""
    return "" if _empty(value) else str(value)


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
    would_apply: int = 0  # a dry run's changes the CRM would have been sent (none is applied)
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
    # every change of the run (not only those listed) counted by field and transition
    summary: ChangeSummary | None = None
    # the guard that stopped the run before it wrote (connector/sync/guards.py), or None
    refused_by: str | None = None

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
            "would_apply": self.would_apply,
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
        return {**asdict(self), "exit_code": self.exit_code,
                "reject_causes": group_rejects(self.rejects)}

    def settle(self) -> None:
        """The status of a run that went to its end: "rejects" (exit 1) when records or
        writes were refused or left for a retry, else "ok"."""
        if self.retry_later:
            self.message = "; ".join(filter(None, [
                f"{self.retry_later} write(s) pending retry: the next run tries them again",
                self.message]))
        failed = self.rejected_records or self.write_rejected or self.retry_later
        self.status = RunStatus.REJECTS if failed else RunStatus.OK

    def stop(self, exc: BaseException, message: str) -> None:
        """End the run with the status `exc` calls for (`RunStatus.of`)."""
        self.status, self.message = RunStatus.of(exc), message

    def add_problem(self, problem: str) -> None:
        """A failure while ending the run: it fails, and says why after what it said."""
        self.status = RunStatus.FAILED
        self.message = "; ".join(filter(None, [self.message, problem]))

    def list_changes(self, spool: ChangeSpool, *, sent_only: bool,
                     mapping: Mapping | None = None) -> None:
        """The report lists the first changes in plan order (a backfill can plan millions),
        and sums up every one (`summarise`): `mapping` tells a stage downgrade and a priority
        from other fields. A dry run's changes "would apply": none was applied."""
        rows = spool.report_rows(REPORT_CHANGE_ROWS, sent_only=sent_only)
        listed_from = spool.sent() if sent_only else spool.count
        self.changes_not_listed = listed_from - len(rows)
        self.changes = [self._as_run(row) for row in rows]
        self.summarise(spool, mapping, sent_only=sent_only)

    def summarise(self, spool: ChangeSpool, mapping: Mapping | None, *,
                  sent_only: bool) -> None:
        """`summary`: the spool's changes counted by system, object, field, transition and
        outcome, with downgrades, clears and priority moves flagged."""
        rows = [(*row[:5], self._status(row[5]), *row[6:])
                for row in spool.transitions(sent_only=sent_only)]
        self.summary = summarise(rows, spool.records(sent_only=sent_only), mapping)

    def _status(self, status: str) -> str:
        return "would_apply" if self.dry_run and status == "applied" else status

    def _as_run(self, row: dict[str, Any]) -> dict[str, Any]:
        status = self._status(row["status"])
        return row if status == row["status"] else {**row, "status": status}

    def list_duplicates(self, found: list[Duplicate]) -> None:
        """Count the duplicate groups planned, and list the first, ordered by record."""
        found.sort(key=lambda d: (d.records[0], d.entity))
        self.duplicate_groups = len(found)
        self.duplicates = [
            DuplicateRow(entity=d.entity, system=d.system, records=list(d.records),
                         linked_by=list(d.linked_by)) for d in found[:REPORT_CHANGE_ROWS]]

