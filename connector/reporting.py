"""Turn run reports, state and plans into what people read: tables on a terminal, plain lines
in a pipe or a file, or JSON for machines.

What a person reads first is what they act on: a run's report leads with its counts and a
summary of its changes by field and transition (downgrades, clears and priority moves
flagged), then a short list of the changes themselves, then its rejects grouped by cause.

A terminal gets tables and colour. Anything else (a pipe, a log file, cron's mail) gets plain
lines: one record per line, a word in front saying what the line is (`summary:`, `change:`,
`reject:`), no box drawing and no wrapping whatever the width, so `grep` finds a record's
whole line.

Everything shown comes partly from the CRMs (values, ids, server messages), so every such text
goes through `_text` before it reaches rich markup: `[/red]` in a field is a value, not a tag.
Everything printed or dumped is also scrubbed of registered secrets, as a last filter after
the adapters' own scrubbing.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connector.exceptions import scrub, scrubbed_json
from connector.state import StateStore
from connector.sync import RunReport
from connector.sync.report import (
    CLEAR,
    DOWNGRADE,
    PRIORITY,
    ChangeSummary,
    RejectCause,
    group_rejects,
    split_reason,
)

__all__ = ["CHANGES_SHOWN", "dumps", "print_changes", "print_check", "print_reject_causes",
           "print_report", "print_status", "reject_rows", "status_data", "stdout_console"]

_STATUS_COLOUR = {"ok": "green", "rejects": "yellow", "stopped": "yellow", "applied": "green",
                  "would_apply": "cyan", "planned": "cyan", "rejected": "red",
                  "retry_later": "yellow", "superseded": "yellow", "error": "red",
                  "warning": "yellow"}
CHANGES_SHOWN = 25  # changes a report lists unless asked for --all
TRANSITIONS_SHOWN = 5  # transitions per field a summary lists unless asked for --all
RECORDS_SHOWN = 3  # records named per reject cause unless asked for them all


def stdout_console() -> Console:
    """The console reports go to: stdout. On a terminal it draws tables in colour; in a pipe
    or a file it writes plain lines that never wrap (`soft_wrap`), whatever COLUMNS says."""
    console = Console(highlight=False)
    if console.is_terminal:
        return console
    return Console(highlight=False, soft_wrap=True, no_color=True)


def _text(value: Any) -> str:
    """Text from outside (a CRM value, id or message), safe inside rich markup."""
    return escape(scrub(str(value)))


def _plain(console: Console, line: str) -> None:
    """One line as it is: no markup, no highlighting, no wrapping."""
    console.print(scrub(line), markup=False, highlight=False, soft_wrap=True)


def _one_line(text: str) -> str:
    """A record's line stays one line: a multi-line detail (a CRM's message, a setting's
    "Looked in:" list) is joined with spaces."""
    return re.sub(r"\s*\n\s*", " ", text.strip())


def _status_word(status: str) -> str:
    return status.replace("_", " ")


def _coloured(status: str) -> str:
    colour = _STATUS_COLOUR.get(status, "white")
    return f"[{colour}]{_text(_status_word(status))}[/{colour}]"


# ---- a run's report ----------------------------------------------------------------------


def print_report(report: RunReport, console: Console, *, show_changes: bool = True,
                 show_all: bool = False) -> None:
    """Counts first, then the summary by field and transition, the changes (the first
    `CHANGES_SHOWN` unless `show_all`), and the rejects by cause."""
    colour = _STATUS_COLOUR.get(report.status, "red")
    mode = " (dry run: nothing written)" if report.dry_run else ""
    console.print(f"[bold]{_text(report.kind)}[/bold] run {report.run_id}: "
                  f"[{colour}]{_text(report.status)}[/{colour}]{mode} in "
                  f"{report.duration_seconds:.1f} s", soft_wrap=not console.is_terminal)
    if report.message:
        _plain(console, report.message)
    if report.read:
        _plain(console, "read: " + ", ".join(f"{key} {n}" for key, n in report.read.items()))
    _plain(console, _counts_line(report))
    if report.deleted or report.merged:
        _plain(console, f"deleted in their CRM: {report.deleted}; merged into another record: "
                        f"{report.merged}")
    if report.reread_records:
        _plain(console, f"read again before writing: {report.reread_records} record(s) in "
                        f"{report.reread_calls} call(s), {report.reread_changed} changed since "
                        "read (planned again)")
    resolved = report.intents_resolved
    if resolved.get("applied") or resolved.get("not_applied"):
        _plain(console, f"writes of interrupted runs, checked in their CRM: "
                        f"{resolved['applied']} made (now audited under their run), "
                        f"{resolved['not_applied']} not made")
    if report.duplicate_groups:
        _print_duplicates(report.duplicate_groups, report.duplicates, console)
    if report.plan_scope:
        scope = ("every mirrored record" if report.plan_scope == "all"
                 else "records changed since last planned, and those tied to them")
        _plain(console, f"planned {report.records_planned} record(s): {scope}")
    calls = ", ".join(f"{system} {usage['calls']}" for system, usage in report.api_calls.items())
    if calls:
        _plain(console, f"API calls: {calls}")
    if report.summary and report.summary["changes"]:
        print_summary(report.summary, console, show_all=show_all)
    if show_changes and report.changes:
        print_changes(report.changes, console, not_listed=report.changes_not_listed,
                      show_all=show_all)
    if report.rejects:
        print_reject_causes(group_rejects(report.rejects), console,
                            records=None if show_all else RECORDS_SHOWN)


def _counts_line(report: RunReport) -> str:
    """What became of the run's changes. A dry run's "would apply": it applied nothing."""
    outcomes = [("would apply" if report.dry_run else "applied",
                 report.would_apply if report.dry_run else report.applied),
                ("rejected", report.write_rejected), ("retry later", report.retry_later)]
    if report.kind == "plan":
        outcomes = []
    done = ", ".join(f"{word} {count}" for word, count in outcomes)
    summary = report.summary
    records = f" to {summary['records']} record(s)" if summary and summary["records"] else ""
    line = f"changes planned {report.planned}{records}" + (f": {done}" if done else "")
    line += f"; records rejected on read {report.rejected_records}"
    if report.skipped:
        line += f"; skipped {report.skipped} (changed since)"
    return line


# ---- the summary by field and transition --------------------------------------------------

_FLAG_WORDS = {DOWNGRADE: "lifecycle downgrade(s)", CLEAR: "value(s) cleared",
               PRIORITY: "priority change(s)"}


def print_summary(summary: ChangeSummary, console: Console, *, show_all: bool = False) -> None:
    """Counts by system and object, the flagged changes, then each field's transitions
    (from -> to), the largest first."""
    by_system = ", ".join(f"{s} {n}" for s, n in summary["by_system"].items())
    by_object = ", ".join(f"{o} {n}" for o, n in summary["by_object"].items())
    flagged = ", ".join(f"{n} {_FLAG_WORDS[flag]}" for flag, n in summary["flagged"].items()
                        if n)
    rows = _summary_rows(summary, show_all)
    steps = (f", {summary['two_step']} of them in two steps (cleared, then set)"
             if summary["two_step"] else "")
    counted = f"{summary['changes']} field change(s) on {summary['records']} record(s){steps}"
    if console.is_terminal:
        console.print()
        console.print(f"[bold]Summary[/bold]: {_text(counted)}; {_text(by_system)}")
        if flagged:
            console.print(f"[bold yellow]⚠ {_text(flagged)}[/bold yellow]")
        table = Table("system", "object", "field", "from", "to", "changes", "status", "note")
        for row in rows:
            table.add_row(*(_text(cell) for cell in row[:6]), _coloured(row[6])
                          if row[6] else "", f"[yellow]{_text(row[7])}[/yellow]")
        console.print(table)
        return
    _plain(console, f"summary: {counted}; by system: {by_system}; by object: {by_object}")
    if flagged:
        _plain(console, f"flagged: {flagged}")
    for system, obj, name, before, after, count, status, note in rows:
        if status:
            _plain(console, f"summary: {system} {obj} {name}: {before} -> {after}: {count} "
                            f"{_status_word(status)}" + (f" [{note}]" if note else ""))
        else:  # the rest of a field's transitions, or of the summary's
            where = f"{system} {obj} {name}: " if name else ""
            changes = f", {count} change(s)" if count else ""
            _plain(console, f"summary: {where}{before.removeprefix('... ')}{changes} ({note})")


def _summary_rows(summary: ChangeSummary, show_all: bool) -> list[tuple[str, ...]]:
    """(system, object, field, from, to, changes, status, note) rows: the first
    `TRANSITIONS_SHOWN` transitions of each field, then a row counting the rest."""
    by_field: dict[tuple[str, str, str], list[Any]] = {}
    for t in summary["transitions"]:  # each field's largest transitions come first
        by_field.setdefault((t["system"], t["object_type"], t["field"]), []).append(t)
    rows: list[tuple[str, ...]] = []
    for key, transitions in by_field.items():
        shown = transitions if show_all else transitions[:TRANSITIONS_SHOWN]
        rows += [(*key, _show(t["before"]), _show(t["after"]), str(t["changes"]), t["status"],
                  ", ".join(t["flags"])) for t in shown]
        rest = transitions[len(shown):]
        if rest:
            rows.append((*key, f"... {len(rest)} more transition(s)", "",
                         str(sum(t["changes"] for t in rest)), "", "--all lists them"))
    if summary["transitions_not_listed"]:
        rows.append(("", "", "", f"... {summary['transitions_not_listed']} more transition(s)",
                     "", "", "", "--json lists the first ones"))
    return rows


# ---- the changes ----------------------------------------------------------------------------


def print_changes(changes: list[dict[str, Any]], console: Console, *, not_listed: int = 0,
                  show_all: bool = False, limit: int = CHANGES_SHOWN) -> None:
    """A table on a terminal, else one line per change; the first `limit` unless `show_all`.
    `not_listed` counts changes the report itself left out (it lists the first 10,000)."""
    shown = changes if show_all else changes[:limit]
    if console.is_terminal:
        console.print()
        _change_table(shown, changes, console)
    else:
        for row in shown:
            _plain(console, _change_line(row, changes))
    more = len(changes) - len(shown)
    if more:
        _plain(console, f"... and {more} more change(s): --all lists every one of the "
                        f"{len(changes)} this report holds, --json too")
    if not_listed:
        _plain(console, f"... and {not_listed} more change(s) than a report holds: "
                        "`crmsync plan -o FILE` saves a whole plan, and the state DB's audit "
                        "log holds every applied change")


def _step(row: dict[str, Any], changes: list[dict[str, Any]]) -> str:
    if row.get("step") or _two_step(row, changes):
        return f" (step {row['step'] + 1} of 2)"
    return ""


def _change_table(shown: list[dict[str, Any]], changes: list[dict[str, Any]],
                  console: Console) -> None:
    table = Table("record", "field", "change", "status", "why (rule)")
    for row in shown:
        code = f"{row['code']}: {row.get('message') or ''}\n" if row.get("code") else ""
        table.add_row(_text(f"{row['system']} {row['object_type']} {row['record_id']}"),
                      _text(row["field"] + _step(row, changes)),
                      _text(f"{_show(row['before'])} -> {_show(row['after'])}"),
                      _coloured(row.get("status", "planned")),
                      f"{_text(code + row['reason'])}\n"
                      f"[dim]{_text(rule_beyond_reason(row['rule'], row['reason']))}[/dim]")
    console.print(table)


def _change_line(row: dict[str, Any], changes: list[dict[str, Any]]) -> str:
    """One change on one line: the record, the field, the move, the outcome, why."""
    problem = f" {row['code']}: {row.get('message') or ''};" if row.get("code") else ""
    return _one_line(
        f"change: {row['system']} {row['object_type']} {row['record_id']} "
        f"{row['field']}{_step(row, changes)}: {_show(row['before'])} -> "
        f"{_show(row['after'])} {_status_word(row.get('status', 'planned'))};{problem} "
        f"because {row['reason']}; rule {rule_beyond_reason(row['rule'], row['reason'])}")


def rule_beyond_reason(rule: str, reason: str) -> str:
    """The rule chain (`write rule <- rule <- ...`) without the links the reason already
    says: a priority's reason quotes its rule, and saying it twice buries the rest."""
    first, *rest = rule.split(" <- ")
    kept = [link for link in rest
            if link not in reason and link.partition(": ")[2] not in reason]
    return " <- ".join([first, *kept])


def _two_step(row: dict[str, Any], changes: list[dict[str, Any]]) -> bool:
    return row.get("step") == 0 and any(
        c.get("step") == 1 and c["record_id"] == row["record_id"] and c["field"] == row["field"]
        for c in changes
    )


# ---- rejects, by cause ----------------------------------------------------------------------


def reject_rows(entries: list[Any]) -> list[dict[str, Any]]:
    """The reject ledger's open entries as rows, each with its cause and fix apart."""
    rows = []
    for e in entries:
        cause, fix = split_reason(e.reason)
        rows.append({"record": e.ref, "stage": e.stage, "field": e.field or None,
                     "reason": e.reason, "cause": cause, "fix": fix, "code": e.code,
                     "attempts": e.attempts, "first_seen": e.first_seen,
                     "last_seen": e.last_seen, "last_run": e.last_run})
    return rows


def print_reject_causes(groups: list[RejectCause], console: Console, *,
                        records: int | None = RECORDS_SHOWN) -> None:
    """One line per cause: what, how many records, and the fix; then the records (the first
    `records` of each cause, or all with None). A rollback's "rejects" are fields it left
    as someone changed them since: skipped, not refused."""
    by_stage: dict[str, list[RejectCause]] = {}
    for group in groups:
        by_stage.setdefault(group["stage"], []).append(group)
    for stage, causes in by_stage.items():
        total = sum(g["count"] for g in causes)
        what = ("skipped by the rollback (changed since)" if stage == "rollback"
                else f"rejected on {stage}")
        if console.is_terminal:
            console.print()
            console.print(f"[bold {'yellow' if stage == 'rollback' else 'red'}]{_text(what)}: "
                          f"{total} record(s), {len(causes)} cause(s)[/]")
        else:
            _plain(console, f"{what}: {total} record(s), {len(causes)} cause(s)")
        for group in causes:
            _print_cause(group, console, records)


def _cause_line(group: RejectCause) -> str:
    field = group["field"]
    cause = group["cause"]
    if field and field not in cause:
        cause = f"{field}: {cause}"
    fix = f" -> {group['fix']}" if group["fix"] else ""
    return f"{cause}: {group['count']} record(s){fix}"


def _print_cause(group: RejectCause, console: Console, records: int | None) -> None:
    listed = group["records"] if records is None else group["records"][:records]
    more = len(group["records"]) - len(listed)
    rest = f" and {more} more (--records lists them)" if more else ""
    if console.is_terminal:
        console.print(f"  {_text(_cause_line(group))}", highlight=False)
        names = ", ".join(listed)
        console.print(f"    [dim]{_text(names)}{_text(rest)}[/dim]", highlight=False)
        return
    cause = _one_line(_cause_line(group))
    if records is None:  # every record on its own line, with its cause: grep finds both
        for record in listed:
            _plain(console, f"reject: {group['stage']}: {record}: {cause}")
        return
    _plain(console, f"reject: {group['stage']}: {cause} (e.g. {', '.join(listed)}{rest})")


def _print_duplicates(count: int, groups: list[dict[str, Any]], console: Console,
                      shown: int = 5) -> None:
    """Duplicates are for people to merge in their CRM: crmsync keeps each up to date."""
    console.print(f"[yellow]duplicate records: {count} group(s)[/yellow] (two or more records of "
                  "one system linked into one person or organisation; merge them in the CRM)",
                  highlight=False, soft_wrap=not console.is_terminal)
    for group in groups[:shown]:
        _plain(console, f"    {group['entity']} in {group['system']}: "
                        f"{', '.join(group['records'])} (linked by "
                        f"{', '.join(group['linked_by']) or 'other records'})")
    if count > shown:
        _plain(console, f"    ... and {count - shown} more (--json lists them)")


def _show(value: Any) -> str:
    return "∅" if value is None or value == "" else str(value)


# ---- status -----------------------------------------------------------------------------


def status_data(store: StateStore, runs: int = 10) -> dict[str, Any]:
    rejects = store.ledger.open()
    duplicate_groups, first_duplicates = store.mirror.duplicate_groups(limit=10)
    by_stage: dict[str, int] = {}
    for reject in rejects:
        by_stage[reject.stage] = by_stage.get(reject.stage, 0) + 1
    return {
        "state": str(store.path),
        "lock": store.lock.holder(),
        "runs": [
            {"id": r.id, "kind": r.kind, "status": r.status, "dry_run": r.dry_run,
             "started_at": r.started_at.isoformat(),
             "ended_at": r.ended_at.isoformat() if r.ended_at else None,
             "counts": _run_counts(r.counts, r.dry_run), "api_calls": r.api_calls,
             "message": r.message}
            for r in store.journal.runs(runs)
        ],
        "watermarks": [
            {"system": s, "object": o, "kind": k, "value": v.isoformat() if v else None,
             "cursor": c}
            for s, o, k, v, c in store.cursors.watermarks()
        ],
        "open_rejects": by_stage,
        "mirrored_records": store.mirror.count(),
        "audited_changes": store.journal.applied_count(),
        "duplicates": {"groups": duplicate_groups, "first": first_duplicates},
        "bulk_jobs": [
            {"job_id": j.job_id, "object": f"{j.system}.{j.object_type}", "run_id": j.run_id,
             "state": j.state, "records": j.records, "processed": j.processed,
             "failed": j.failed, "created_at": j.created_at.isoformat(),
             "updated_at": j.updated_at.isoformat()}
            for j in store.jobs.open()
        ],
    }


def _run_counts(counts: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    """A dry run applied nothing: runs recorded before `would_apply` existed counted what
    they would have applied as "applied"."""
    if not dry_run or "would_apply" in counts:
        return counts
    return {**counts, "applied": 0, "would_apply": counts.get("applied", 0)}


def _written(run: dict[str, Any]) -> str:
    counts = run["counts"]
    if run["dry_run"]:
        return f"would apply {counts.get('would_apply', 0)}"
    return str(counts.get("applied", 0))


def print_status(data: dict[str, Any], console: Console) -> None:
    _plain(console, f"state: {data['state']}  ({data['mirrored_records']} records mirrored, "
                    f"{data['audited_changes']} changes audited)")
    if data["lock"]:
        lock = data["lock"]
        _plain(console, f"locked by {lock['owner']} (pid {lock['pid']} on {lock['host']} "
                        f"since {lock['acquired_at']})")
    header = ("run", "kind", "status", "started (UTC)", "took", "read", "applied", "rejects",
              "deleted/merged", "API calls (hs/sf)")
    rows = []
    for run in data["runs"]:
        counts = run["counts"]
        read = sum((counts.get("read") or {}).values())
        rejects = counts.get("rejected_records", 0) + counts.get("write_rejected", 0)
        calls = "/".join(str(u.get("calls", 0)) for u in run["api_calls"].values())
        kind = run["kind"] + (" (dry run)" if run["dry_run"] else "")
        rows.append((str(run["id"]), kind, run["status"],
                     run["started_at"][:16].replace("T", " "), _duration(run), str(read),
                     _written(run), str(rejects),
                     f"{counts.get('deleted', 0)}/{counts.get('merged', 0)}", calls))
    marks = [(m["system"], m["object"], m["value"] or "") for m in data["watermarks"]
             if m["kind"] == "sync"]
    rejects = ", ".join(f"{stage} {n}" for stage, n in data["open_rejects"].items()) or "none"
    if console.is_terminal:
        runs = Table(*header)
        for row in rows:
            runs.add_row(*(_text(cell) for cell in row))
        console.print(runs)
        table = Table("system", "object", "watermark")
        for mark in marks:
            table.add_row(*(_text(cell) for cell in mark))
        console.print(table)
    else:
        for row in rows:
            written = row[6] if row[6].startswith("would") else f"applied {row[6]}"
            _plain(console, f"run: {row[0]} {row[1]} {row[2]}; started {row[3]} UTC, took "
                            f"{row[4]}; read {row[5]}; {written}; rejects {row[7]}; "
                            f"deleted/merged {row[8]}; API calls (hs/sf) {row[9]}")
        for system, obj, value in marks:
            _plain(console, f"watermark: {system} {obj} {value or 'none'}")
    _plain(console, f"open rejects: {rejects}")
    duplicates = data["duplicates"]
    if duplicates["groups"]:
        _print_duplicates(duplicates["groups"], duplicates["first"], console)
    if data["bulk_jobs"]:
        _print_bulk_jobs(data["bulk_jobs"], console)


def _print_bulk_jobs(jobs: list[dict[str, Any]], console: Console) -> None:
    """Salesforce Bulk API jobs whose results no run has collected yet: the next run waits
    for them and records their outcome instead of sending their records again."""
    console.print(f"[yellow]open Bulk API jobs: {len(jobs)}[/yellow] (the next run collects "
                  "their results instead of sending their records again)", highlight=False)
    for job in jobs:  # one line each: ids stay whole at any width, and grep well
        console.print(
            f"    {_text(job['job_id'])} {_text(job['object'])} {_text(job['state'])}: "
            f"{job['processed']:,} of {job['records']:,} record(s) processed, "
            f"{job['failed']:,} failed (run {job['run_id']}, last seen "
            f"{_text(job['updated_at'][:19].replace('T', ' '))} UTC)",
            highlight=False, soft_wrap=True)


def _duration(run: dict[str, Any]) -> str:
    if not run["ended_at"]:
        return "running"
    seconds = (datetime.fromisoformat(run["ended_at"])
               - datetime.fromisoformat(run["started_at"])).total_seconds()
    return f"{seconds:.1f} s"


# ---- check --------------------------------------------------------------------------------


def print_check(findings: list[Any], console: Console) -> None:
    """`crmsync check`'s findings: a table on a terminal, else one finding per line with
    its whole detail and fix (a cut-off variable name is no help)."""
    if console.is_terminal:
        table = Table("system", "check", "result", "detail", "how to fix")
        for f in findings:
            table.add_row(_text(f.system), _text(f.what), _coloured(f.level), _text(f.detail),
                          _text(f.fix))
        console.print(table)
        return
    for f in findings:
        detail = f": {f.detail}" if f.detail else ""
        fix = f" | fix: {f.fix}" if f.fix else ""
        _plain(console, _one_line(f"check: {f.system} {f.what}: {f.level}{detail}{fix}"))


# ---- JSON --------------------------------------------------------------------------------


def dumps(data: Any) -> str:
    """JSON for machines, every string in it scrubbed (`exceptions.scrubbed_json`)."""
    return scrubbed_json(data)
