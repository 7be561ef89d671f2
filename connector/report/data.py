"""A report's data, from the state DB (and the mapping, to order values and name the rule to
fix); no API calls. `crmsync report --json` prints exactly this; the HTML draws it.

The fields, as `crmsync report --json` prints them:

- `report_version` (1), `generated_at`, `state_db`, `mapping_files`;
- `run`: the run reported on (`id`, `kind`, `status`, `dry_run`, `started_at`, `ended_at`,
  `message`); `since`: the first day of the history shown (null: the last 30 runs);
- `totals_note`: why the funnel or the matrix is missing a side (null when complete);
- `funnel`: `stages` (top to bottom), `before` and `after`, each `{hubspot, salesforce,
  reconciled}` of `{stage: people}`. A system's side counts its person records (Salesforce
  leads not yet converted and contacts) by the stage each holds: before = as the run found
  them, after = as it left them. `reconciled` counts people, after = the run's, before = the
  run before it. A record the mapping cannot read is not counted (see `stuck`);
- `agreement`: `before` and `after`, each `{stages, linked_people, agreeing, matrix}`, where
  `matrix[i][j]` counts people with a record in both systems at `stages[i]` in HubSpot and
  `stages[j]` in Salesforce (a person with two records in one system counts at the later
  stage of the two);
- `organizations`: per run that kept totals, oldest first: `run_id`, `started_at`,
  `organizations` (`total`, `fit`, `not_fit`, `unknown_fit`, `triggers` {type: organisations
  with one active}, `priority` {priority: organisations}) and `people_priority`
  {trigger_fit, fit, nonfit_lead, other: people};
- `changes`: what the run wrote: `changes`, `downgrades`, `clears`, `by_field` [{system,
  object, field, changes, downgrades, clears}], `transitions` [{system, object, field, before,
  after, changes, downgrade, clear}], and `not_written` {rejected, retry_later};
- `stuck`: `open_rejects`, `causes` [{stage, field, reason, code, records, examples, systems,
  fix: {rule, file, line} or null}], `duplicate_groups` and `duplicates` [{entity, system,
  records, linked_by}] (the first 20);
- `history`: per run, oldest first: `run_id`, `kind`, `status`, `dry_run`, `started_at`,
  `duration_seconds`, `records_read`, `changes_written`, `api_calls` {system: calls},
  `budget_share` {system: share of the daily API allocation used at the run's end, 0-1}.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connector.exceptions import ConfigurationError
from connector.mapping import Mapping, WriteRule
from connector.model import LifecycleStage, Priority
from connector.report import numbers
from connector.report.numbers import AuditChange
from connector.state import RunRecord, Snapshot, StateStore

__all__ = ["DUPLICATES_LISTED", "HISTORY_RUNS", "REPORT_VERSION", "report_data"]

REPORT_VERSION = 1
HISTORY_RUNS = 30  # runs shown without --since
HISTORY_LIMIT = 10_000  # runs shown at most, whatever --since says
DUPLICATES_LISTED = 20


def report_data(store: StateStore, mapping: Mapping, *, run_id: int | None = None,
                since: datetime | None = None) -> dict[str, Any]:
    """Everything a report shows about run `run_id` (default: the latest) and the runs
    before it (those started since `since`, else the last 30)."""
    run = _chosen_run(store, run_id)
    runs = store.journal.runs_up_to(run.id, since=since,
                                    limit=HISTORY_LIMIT if since else HISTORY_RUNS)
    own = store.snapshots.of_run(run.id)
    previous = store.snapshots.latest(before=run.id)
    snapshots = store.snapshots.of_runs([r.id for r in runs])
    return {
        "report_version": REPORT_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "state_db": str(store.path),
        "mapping_files": list(mapping.files),
        "run": {"id": run.id, "kind": run.kind, "status": run.status, "dry_run": run.dry_run,
                "started_at": run.started_at.isoformat(),
                "ended_at": run.ended_at.isoformat() if run.ended_at else None,
                "message": run.message},
        "since": since.date().isoformat() if since else None,
        "totals_note": _totals_note(run, own, previous),
        "funnel": _funnel(own, previous),
        "agreement": {
            "before": numbers.agreement(own.totals["found"]["agreement"] if own else None),
            "after": numbers.agreement(own.totals["left"]["agreement"] if own else None),
        },
        "organizations": [_organizations(r, snapshots[r.id]) for r in sorted(
            runs, key=lambda r: r.id) if r.id in snapshots],
        "changes": _changes(store, mapping, run),
        "stuck": _stuck(store, mapping),
        "history": numbers.history(runs),
    }


def _chosen_run(store: StateStore, run_id: int | None) -> RunRecord:
    if run_id is None:
        latest = store.journal.runs(1)
        if not latest:
            raise ConfigurationError(f"state DB {store.path} has no runs yet: run `crmsync "
                                     "backfill` (or `crmsync demo`) first")
        return latest[0]
    run = store.journal.run(run_id) if 1 <= run_id < 2**63 else None
    if run is None:
        raise ConfigurationError(f"no run {run_id} in state DB {store.path}; `crmsync status` "
                                 "lists the recent runs")
    return run


def _totals_note(run: RunRecord, own: Snapshot | None, previous: Snapshot | None) -> str | None:
    if own is None:
        return (f"run {run.id} kept no totals (it ran before this crmsync version, or was "
                "stopped before it could count): the funnel and the matrix need a later run")
    if previous is None:
        return (f"run {run.id} is the first run with totals: reconciled people before it "
                "are not known")
    return None


def _funnel(own: Snapshot | None, previous: Snapshot | None) -> dict[str, Any]:
    return numbers.funnel(
        own.totals["found"] if own else None,
        own.totals["left"] if own else None,
        previous.totals["people"]["reconciled"] if previous else None,
        own.totals["people"]["reconciled"] if own else None,
    )


def _organizations(run: RunRecord, snapshot: Snapshot) -> dict[str, Any]:
    return {"run_id": run.id, "started_at": run.started_at.isoformat(),
            "organizations": snapshot.totals["organizations"],
            "people_priority": snapshot.totals["people"]["priority"]}


def _changes(store: StateStore, mapping: Mapping, run: RunRecord) -> dict[str, Any]:
    entries = store.journal.entries(run.id)
    summary = numbers.change_summary(
        (AuditChange(e.ref.system.value, e.ref.object_type, e.ref.record_id, e.field, e.before,
                     e.after, e.step) for e in entries),
        _ranker(mapping))
    summary["not_written"] = {"rejected": run.counts.get("write_rejected", 0),
                              "retry_later": run.counts.get("retry_later", 0)}
    return summary


def _stuck(store: StateStore, mapping: Mapping) -> dict[str, Any]:
    rejects = store.ledger.open()
    count, groups = store.mirror.duplicate_groups(DUPLICATES_LISTED)
    return {"open_rejects": len(rejects),
            "causes": numbers.stuck_causes(rejects, lambda *cause: _fix_for(mapping, *cause)),
            "duplicate_groups": count, "duplicates": groups}


# ---- what the mapping says --------------------------------------------------------------------


def _ranker(mapping: Mapping) -> numbers.Ranker:
    """The rank of a written value on its field's scale: stages by the ladder (-1 off it),
    priorities by their ranking; other fields have no order."""

    def rank(system: str, obj: str, field: str, value: Any) -> int | None:
        rule = _write_rule(mapping, system, obj, field)
        if rule is None or value is None or value == "":
            return None
        canonical = _canonical(mapping, rule, value)
        if canonical is None:
            return None
        if rule.source.endswith(".stage"):
            try:
                stage = LifecycleStage(canonical)
            except ValueError:
                return None
            return -1 if stage.rank is None else stage.rank
        if rule.source.endswith(".priority"):
            try:
                return Priority(canonical).rank
            except ValueError:
                return None
        return None

    return rank


def _canonical(mapping: Mapping, rule: WriteRule, value: Any) -> str | None:
    """The canonical value a system value stands for: by the rule's reverse map (what
    crmsync writes), else by the field's picklist (what people set)."""
    text = _as_text(value)
    if rule.values is None:
        return text
    for canonical, written in rule.values.items():
        if written is not None and _as_text(written) == text:
            return canonical
    field_map = mapping.field_map(rule.system, rule.object, rule.field)
    meaning = field_map.values.get(text) if field_map else None
    return meaning.stage.value if meaning is not None and meaning.stage is not None else None


def _as_text(value: Any) -> str:
    """A value as reverse maps key them: flags as true/false, the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _write_rule(mapping: Mapping, system: str, obj: str, field: str) -> WriteRule | None:
    return next((r for r in mapping.write_rules(system, obj) if r.field == field), None)


def _fix_for(mapping: Mapping, ref: str, stage: str, field: str | None,
             reason: str) -> dict[str, str] | None:
    """The mapping rule to edit for a reject: the one its reason names, else the rule that
    writes (a write reject) or reads (a read reject) its field; None when none is to blame."""
    named = numbers.rule_location(reason)
    if named is not None or field is None:
        return named
    system, obj, _ = ref.split(":", 2)
    if stage == "write":
        rule = _write_rule(mapping, system, obj, field)
        return numbers.rule_location(rule.rule) if rule else None
    field_map = mapping.field_map(system, obj, field)
    if field_map is not None:
        return numbers.rule_location(field_map.rule)
    for trigger in mapping.triggers:
        if (trigger.system, trigger.object) == (system, obj) and field in (
                trigger.field, trigger.date_field):
            return numbers.rule_location(trigger.rule)
    for fact in mapping.facts.values():
        if fact.fields.get(system) == field:
            return numbers.rule_location(fact.rule)
    return None
