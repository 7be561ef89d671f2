"""The guards a writing run passes before its first write, and what an admin confirms.

One slip must not rewrite production. Three guards stop a run (exit 2, nothing written) and
say which flag lets it through once someone has read what it would do:

- **the pinned mapping** (`--accept-mapping-change`): the state DB remembers the mapping in
  force; a run with another one (a forgotten `--mapping` falls back to the shipped
  default) would re-plan every record with it. The refusal is planned from the mirror,
  without a read: it shows what the mapping change alone would change, and the refused run
  leaves no trace (no API calls, no records mirrored with another mapping's fields);
- **the empty state DB** (`--allow-empty-state`): a first `sync` would read and write
  everything, without a backfill's progress bars, resumability and name;
- **the blast radius** (`--confirm-large`): more records written than a number, or a share
  of the mirror, or more lifecycle downgrades than a count. A first full run (no run has yet
  planned everything and written it) is exempt from the record limits, as a first backfill
  writes to most records by design; its downgrades still count.

`crmsync plan` / `crmsync apply` are the reviewed path: a plan is shown before it is applied,
so `apply` passes the guards and pins the mapping it was made with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector.catalog import raw_text
from connector.exceptions import BlastRadiusExceeded, EmptyState, MappingChanged
from connector.mapping import Mapping
from connector.model import Change, LifecycleStage
from connector.state import MappingPin, StateStore
from connector.state.admin import readable_time

if TYPE_CHECKING:
    from connector.state import ChangeSpool

__all__ = ["PAUSABLE", "SHARE_FLOOR", "BlastRadius", "Guards", "PlanSummary",
           "blast_radius_problems", "check_blast_radius", "downgrades", "fields_read",
           "mapping_changed", "pin_in_force", "refuse_empty_state"]

# Runs writing at most this many records are never stopped by the share limit: in a small
# CRM a normal day's edits touch a large share of records.
SHARE_FLOOR = 100
STAGE_SOURCE = "person.stage"

# The runs a pause (`crmsync pause`) stops: those that write what crmsync decides. `plan`
# writes nothing, and `rollback` is how an admin undoes a run, paused or not.
PAUSABLE = frozenset({"sync", "backfill", "apply"})


@dataclass(frozen=True)
class Guards:
    """The guards are on for this run; each flag is an admin's "yes, I meant that".

    The `crmsync` command always passes one. Without one (`None`), a run is unguarded: the
    tests and benchmarks that change the mapping between runs of one engine.
    """

    accept_mapping_change: bool = False
    confirm_large: bool = False
    allow_empty_state: bool = False


@dataclass(frozen=True)
class BlastRadius:
    """The most a guarded sync or backfill writes without `--confirm-large` (settings
    CRMSYNC_MAX_RECORDS_WRITTEN, CRMSYNC_MAX_SHARE_WRITTEN, CRMSYNC_MAX_DOWNGRADES)."""

    max_records: int = 1000
    max_share: float = 0.2
    max_downgrades: int = 20

    @classmethod
    def from_settings(cls, settings: Any) -> BlastRadius:
        return cls(settings.max_records_written, settings.max_share_written,
                   settings.max_downgrades)


@dataclass(frozen=True)
class PlanSummary:
    """What a plan would change: counts by system, object and field, records, downgrades."""

    changes: int
    records: int
    by_field: list[tuple[str, str, str, int, int]]  # system, object, field, changes, records
    downgrades: list[tuple[str, str, Any, Any]]  # ref, field, from, to

    @classmethod
    def of(cls, spool: ChangeSpool, mapping: Mapping) -> PlanSummary:
        stage_fields = {(r.system, r.object, r.field) for rules in mapping.write_back.values()
                        for r in rules if r.source == STAGE_SOURCE}
        return cls(spool.count, spool.records(sent_only=False), spool.field_counts(),
                   downgrades(mapping, spool.changes_to(stage_fields)))

    def counts_text(self, shown: int = 12) -> str:
        """"hubspot.companies crmsync_icp_fit 120 (120 records), ...": the biggest first."""
        rows = sorted(self.by_field, key=lambda row: (-row[3], row[:3]))
        parts = [f"{s}.{o} {f} {n}" + (f" ({r} records)" if r != n else "")
                 for s, o, f, n, r in rows[:shown]]
        more = f", and {len(rows) - shown} more field(s)" if len(rows) > shown else ""
        return ", ".join(parts) + more

    def headline(self) -> str:
        text = f"{self.changes} change(s) to {self.records} record(s)"
        if self.downgrades:
            text += f", {len(self.downgrades)} of them lifecycle downgrade(s)"
        return text


def downgrades(mapping: Mapping, changes: Iterable[Change]) -> list[tuple[str, str, Any, Any]]:
    """(ref, field, from, to) of each stage a plan moves back down the ladder, or off it
    (to `other` or `disqualified`). A HubSpot backward move is two changes (clear, then set):
    it counts once, from the first change's before to the last one's after."""
    moves: dict[tuple[str, str], list[Any]] = {}
    for change in changes:
        key = (str(change.ref), change.field)
        if key not in moves:
            moves[key] = [change.system.value, change.object_type, change.before, change.after]
        else:
            moves[key][3] = change.after
    found = []
    for (ref, name), (system, obj, before, after) in moves.items():
        old, new = _stage(mapping, system, obj, name, before), _stage(mapping, system, obj,
                                                                         name, after)
        if new is not None and new.is_downgrade_from(old):
            found.append((ref, name, before, after))
    return found


def _stage(mapping: Mapping, system: str, obj: str, name: str, value: Any
           ) -> LifecycleStage | None:
    """The stage a system value of a stage field means: by the field's picklist, else by the
    write rule's reverse map."""
    text = raw_text(value)
    if not text:
        return None
    forward = mapping.field_map(system, obj, name)
    if forward is not None and text in forward.values:
        return forward.values[text].stage
    for rule in mapping.write_rules(system, obj):
        if rule.field == name and rule.values:
            for canonical, written in rule.values.items():
                if written is not None and raw_text(written) == text:
                    try:
                        return LifecycleStage(canonical)
                    except ValueError:
                        return None
    return None


# ---- the pinned mapping ----------------------------------------------------------------------


def pin_in_force(store: StateStore) -> MappingPin | None:
    """The pinned mapping; for a state DB from before pins, the mapping its last full run
    planned with (by fingerprint, path unknown)."""
    pin = store.admin.pinned_mapping()
    if pin is None and (planned := store.meta("planned_mapping")):
        return MappingPin(path="", sha256=planned)
    return pin


def fields_read(mapping: Mapping, systems: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    return {system: {obj: sorted(names) for obj, names in mapping.fields_read(system).items()}
            for system in systems}


def mapping_changed(pin: MappingPin, path: str, mapping: Mapping, summary: PlanSummary,
                    limits: BlastRadius, mirrored: int) -> MappingChanged:
    """The refusal of a run whose mapping is not the pinned one, with what it would change."""
    pinned = (f"{pin.path} (pinned {readable_time(pin.pinned_at)} by {pin.by})" if pin.path
              else "the one the last full run planned with")
    lines = [
        f"this run's mapping {path} is not the mapping pinned in the state DB: {pinned}. "
        f"Planned from the records as last read, it would make {summary.headline()}"
        + (f": {summary.counts_text()}." if summary.changes else "."),
    ]
    if pin.path and pin.path != path:
        lines.append(f"If you meant the pinned mapping, pass --mapping {pin.path} (or name "
                     "it in the project file, crmsync.toml).")
    new_fields = _fields_not_read_before(pin, mapping)
    if new_fields:
        lines.append("The new mapping reads field(s) the mirror holds only for records read "
                     f"since: {', '.join(new_fields[:10])}"
                     + (" and more" if len(new_fields) > 10 else "")
                     + "; a `crmsync backfill --accept-mapping-change` reads every record "
                     "with them.")
    over = blast_radius_problems(summary, limits, mirrored, first_full_run=False)
    if over:
        lines.append("The change is also beyond the blast-radius limits ("
                     + "; ".join(over) + "): it needs --confirm-large too.")
    lines.append("Nothing was read or written. To review it: `crmsync plan --mapping "
                 f"{path} -o plan.json`, then `crmsync apply plan.json --mapping {path}` "
                 "(which pins it); or rerun with --accept-mapping-change to pin it and write.")
    return MappingChanged(" ".join(lines))


def _fields_not_read_before(pin: MappingPin, mapping: Mapping) -> list[str]:
    if not pin.fields_read:
        return []
    now = fields_read(mapping, pin.fields_read)
    return [f"{system}.{obj}.{name}" for system, objects in sorted(now.items())
            for obj, names in sorted(objects.items()) for name in names
            if name not in pin.fields_read.get(system, {}).get(obj, [])]


# ---- the empty state DB ----------------------------------------------------------------------


def refuse_empty_state(store: StateStore) -> EmptyState:
    return EmptyState(
        f"nothing has been written from the state DB {store.path} yet (no backfill or sync "
        "finished writing with it): a sync now would read and write every record. Run "
        "`crmsync backfill` first (resumable, with progress), or pass --allow-empty-state "
        "if a first sync is what you want. Nothing was read or written.")


# ---- the blast radius ------------------------------------------------------------------------


def blast_radius_problems(summary: PlanSummary, limits: BlastRadius, mirrored: int, *,
                          first_full_run: bool) -> list[str]:
    """Which limits the plan goes beyond, each with its setting."""
    problems = []
    if not first_full_run:
        if summary.records > limits.max_records:
            problems.append(f"{summary.records} records to write, more than "
                            f"CRMSYNC_MAX_RECORDS_WRITTEN={limits.max_records}")
        share = summary.records / mirrored if mirrored else 0.0
        if summary.records > SHARE_FLOOR and share > limits.max_share:
            problems.append(f"{share:.0%} of the {mirrored} mirrored records, more than "
                            f"CRMSYNC_MAX_SHARE_WRITTEN={limits.max_share:g}")
    if len(summary.downgrades) > limits.max_downgrades:
        problems.append(f"{len(summary.downgrades)} lifecycle downgrades, more than "
                        f"CRMSYNC_MAX_DOWNGRADES={limits.max_downgrades}")
    return problems


def check_blast_radius(summary: PlanSummary, limits: BlastRadius, mirrored: int, *,
                       first_full_run: bool) -> BlastRadiusExceeded | None:
    """The refusal of a plan beyond the limits, or None."""
    problems = blast_radius_problems(summary, limits, mirrored, first_full_run=first_full_run)
    if not problems:
        return None
    examples = "; ".join(f"{ref} {name} {before} -> {after}"
                         for ref, name, before, after in summary.downgrades[:3])
    return BlastRadiusExceeded(
        "stopped before writing by the blast-radius guard: " + "; ".join(problems) + ". "
        f"The plan: {summary.headline()}: {summary.counts_text()}."
        + (f" Downgrades, e.g. {examples}." if examples else "")
        + " Nothing was written. If this is what you expect, rerun with --confirm-large; to "
        "look first, `crmsync plan -o plan.json` (then `crmsync apply plan.json`); to stop "
        "the schedule meanwhile, `crmsync pause`.")
