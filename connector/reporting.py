"""Turn run reports, state and plans into what people read: rich tables, or JSON for machines.

Everything shown comes partly from the CRMs (values, ids, server messages), so every such text
goes through `_text` before it reaches rich markup: `[/red]` in a field is a value, not a tag.
Everything printed or dumped is also scrubbed of registered secrets, as a last filter after
the adapters' own scrubbing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connector.exceptions import scrub
from connector.state import StateStore
from connector.sync import RunReport

__all__ = ["print_changes", "print_rejects", "print_report", "print_status", "status_data"]

_STATUS_COLOUR = {"ok": "green", "rejects": "yellow", "stopped": "yellow", "applied": "green",
                  "planned": "cyan", "rejected": "red", "retry_later": "yellow"}


def _text(value: Any) -> str:
    """Text from outside (a CRM value, id or message), safe inside rich markup."""
    return escape(scrub(str(value)))


def print_report(report: RunReport, console: Console, *, show_changes: bool = True) -> None:
    colour = _STATUS_COLOUR.get(report.status, "red")
    mode = " (dry run: nothing written)" if report.dry_run else ""
    console.print(f"[bold]{_text(report.kind)}[/bold] run {report.run_id}: "
                  f"[{colour}]{_text(report.status)}[/{colour}]{mode} in "
                  f"{report.duration_seconds:.1f} s")
    if report.message:
        console.print(scrub(report.message), highlight=False, markup=False)
    if report.read:
        reads = ", ".join(f"{key} {count}" for key, count in report.read.items())
        console.print(f"read: {reads}", highlight=False, markup=False)
    console.print(
        f"changes planned {report.planned}, applied {report.applied}, rejected "
        f"{report.write_rejected}, retry later {report.retry_later}; records rejected on read "
        f"{report.rejected_records}" + (f"; skipped {report.skipped}" if report.skipped else ""),
        highlight=False,
    )
    if report.deleted or report.merged:
        console.print(f"deleted in their CRM: {report.deleted}; merged into another record: "
                      f"{report.merged}", highlight=False)
    if report.reread_records:
        console.print(f"read again before writing: {report.reread_records} record(s) in "
                      f"{report.reread_calls} call(s), {report.reread_changed} changed since "
                      "read (planned again)", highlight=False)
    resolved = report.intents_resolved
    if resolved.get("applied") or resolved.get("not_applied"):
        console.print(f"writes of interrupted runs, checked in their CRM: {resolved['applied']} "
                      f"made (now audited under their run), {resolved['not_applied']} not made",
                      highlight=False)
    if report.duplicate_groups:
        _print_duplicates(report.duplicate_groups, report.duplicates, console)
    if report.plan_scope:
        scope = ("every mirrored record" if report.plan_scope == "all"
                 else "records changed since last planned, and those tied to them")
        console.print(f"planned {report.records_planned} record(s): {scope}", highlight=False)
    calls = ", ".join(f"{system} {usage['calls']}" for system, usage in report.api_calls.items())
    if calls:
        console.print(f"API calls: {calls}", highlight=False)
    if show_changes and report.changes:
        print_changes(report.changes, console, not_listed=report.changes_not_listed)
    if report.rejects:
        print_rejects(report.rejects, console)


WIDE_TERMINAL = 140


def print_changes(changes: list[dict[str, Any]], console: Console, limit: int = 200,
                  not_listed: int = 0) -> None:
    """A table on a wide terminal; otherwise one block per change, which reads well at any
    width and greps well in logs. `not_listed` counts changes the report itself left out."""
    if console.width >= WIDE_TERMINAL:
        _change_table(changes[:limit], console)
    else:
        _change_blocks(changes[:limit], console)
    more = max(0, len(changes) - limit) + not_listed
    if more:
        where = f"--json lists the first {len(changes)}"
        if not_listed:
            where += ("; `crmsync plan -o FILE` saves a whole plan, and the state DB's audit "
                      "table holds every applied change")
        console.print(f"... and {more} more ({where})", highlight=False)


def _change_table(changes: list[dict[str, Any]], console: Console) -> None:
    table = Table("record", "field", "before", "after", "status", "why (rule)")
    for row in changes:
        status = row.get("status", "planned")
        colour = _STATUS_COLOUR.get(status, "white")
        step = f" (step {row['step'] + 1} of 2)" if row.get("step") or _two_step(row, changes) \
            else ""
        code = f"{row['code']}: {row.get('message') or ''}\n" if row.get("code") else ""
        table.add_row(_text(f"{row['system']} {row['object_type']} {row['record_id']}"),
                      _text(row["field"] + step), _text(_show(row["before"])),
                      _text(_show(row["after"])), f"[{colour}]{_text(status)}[/{colour}]",
                      f"{_text(code + row['reason'])}\n[dim]{_text(row['rule'])}[/dim]")
    console.print(table)


def _change_blocks(changes: list[dict[str, Any]], console: Console) -> None:
    for row in changes:
        status = row.get("status", "planned")
        colour = _STATUS_COLOUR.get(status, "white")
        step = f" (step {row['step'] + 1} of 2)" if row.get("step") or _two_step(row, changes) \
            else ""
        console.print(
            f"{_text(row['system'])} {_text(row['object_type'])} {_text(row['record_id'])} "
            f"[bold]{_text(row['field'])}[/bold]{step}: {_text(_show(row['before']))} -> "
            f"{_text(_show(row['after']))}  [{colour}]{_text(status)}[/{colour}]",
            highlight=False, soft_wrap=True,
        )
        if row.get("code"):
            console.print(scrub(f"    {row['code']}: {row.get('message') or ''}"),
                          highlight=False, markup=False, soft_wrap=True)
        console.print(scrub(f"    because {row['reason']}"), highlight=False, markup=False,
                      soft_wrap=True)
        console.print(scrub(f"    rule {row['rule']}"), style="dim", highlight=False,
                      markup=False, soft_wrap=True)


def _two_step(row: dict[str, Any], changes: list[dict[str, Any]]) -> bool:
    return row.get("step") == 0 and any(
        c.get("step") == 1 and c["record_id"] == row["record_id"] and c["field"] == row["field"]
        for c in changes
    )


def print_rejects(rejects: list[dict[str, Any]], console: Console) -> None:
    """One block per rejected record: what, at which stage, and the reason to act on."""
    for row in rejects:
        field = f" field {row['field']}" if row.get("field") else ""
        attempts = f", {row['attempts']} attempt(s)" if row.get("attempts") else ""
        console.print(f"[red]rejected[/red] {_text(row['record'])}{_text(field)} "
                      f"({_text(row.get('stage', ''))}{attempts})", highlight=False,
                      soft_wrap=True)
        console.print(scrub(f"    {row['reason']}"), highlight=False, markup=False,
                      soft_wrap=True)


def _print_duplicates(count: int, groups: list[dict[str, Any]], console: Console,
                      shown: int = 5) -> None:
    """Duplicates are for people to merge in their CRM: crmsync keeps each up to date."""
    console.print(f"[yellow]duplicate records: {count} group(s)[/yellow] (two or more records of "
                  "one system linked into one person or organisation; merge them in the CRM)",
                  highlight=False)
    for group in groups[:shown]:
        console.print(f"    {_text(group['entity'])} in {_text(group['system'])}: "
                      f"{_text(', '.join(group['records']))} (linked by "
                      f"{_text(', '.join(group['linked_by']) or 'other records')})",
                      highlight=False, soft_wrap=True)
    if count > shown:
        console.print(f"    ... and {count - shown} more (--json lists them)", highlight=False)


def _show(value: Any) -> str:
    return "∅" if value is None or value == "" else str(value)


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
             "counts": r.counts, "api_calls": r.api_calls, "message": r.message}
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


def print_status(data: dict[str, Any], console: Console) -> None:
    console.print(f"state: {data['state']}  ({data['mirrored_records']} records mirrored, "
                  f"{data['audited_changes']} changes audited)", highlight=False)
    if data["lock"]:
        lock = data["lock"]
        holder = (f"locked by {lock['owner']} (pid {lock['pid']} on {lock['host']} "
                  f"since {lock['acquired_at']})")
        console.print(f"[yellow]{_text(holder)}[/yellow]")
    runs = Table("run", "kind", "status", "started (UTC)", "took", "read", "applied", "rejects",
                 "deleted/merged", "API calls (hs/sf)")
    for run in data["runs"]:
        counts = run["counts"]
        read = sum((counts.get("read") or {}).values())
        rejects = counts.get("rejected_records", 0) + counts.get("write_rejected", 0)
        calls = "/".join(str(u.get("calls", 0)) for u in run["api_calls"].values())
        kind = run["kind"] + (" (dry)" if run["dry_run"] else "")
        runs.add_row(str(run["id"]), _text(kind), _text(run["status"]),
                     run["started_at"][5:16].replace("T", " "), _duration(run), str(read),
                     str(counts.get("applied", 0)), str(rejects),
                     f"{counts.get('deleted', 0)}/{counts.get('merged', 0)}", calls)
    console.print(runs)
    marks = Table("system", "object", "watermark")
    for mark in data["watermarks"]:
        if mark["kind"] == "sync":
            marks.add_row(_text(mark["system"]), _text(mark["object"]), _text(mark["value"] or ""))
    console.print(marks)
    rejects = ", ".join(f"{stage} {n}" for stage, n in data["open_rejects"].items()) or "none"
    console.print(f"open rejects: {rejects}", highlight=False, markup=False)
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


def dumps(data: Any) -> str:
    """JSON for machines, every string in it scrubbed (before encoding, so escaping stays valid)."""
    return json.dumps(_scrubbed(data), indent=2, default=lambda value: scrub(str(value)))


def _scrubbed(data: Any) -> Any:
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, dict):
        return {_scrubbed(key): _scrubbed(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_scrubbed(item) for item in data]
    return data
