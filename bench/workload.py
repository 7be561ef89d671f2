"""One size's scenario against a sandbox of its own: backfill, incremental syncs, a quiet run.

Phase one: a dry-run backfill (its reads give the I/O floor, its mirror the core benchmark's
records), the real backfill, and the sync that reads the backfill's writes back. Phase two, at
least `OVERLAP` after the backfill's last write: a small batch of edits, the incremental sync
that carries them over, the sync that reads its writes back, and a sync with nothing to do.

Why the wait: each sync re-reads the two minutes of changes before its watermark (the overlap
that guards against HubSpot's eventually consistent search). Right after a backfill those two
minutes hold every record the backfill wrote, so a "quiet" run then reads them all again.
Phase two is what a scheduled run meets later in the day.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench._engine import CLIENT_NO_LIMITS, bench_settings, engine_for
from bench._floor import capture, replay
from bench._remote import RemoteSandbox, SandboxSpec
from bench._sizes import organisations_for_persons
from bench.api_calls import SystemCalls, calls_by_system, counters_delta
from bench.core import CoreThroughput, measure_core_apart
from connector.mapping import load_mapping
from connector.sync import OVERLAP, Engine, RunReport
from connector.sync.read import read_everything
from connector.systems.factory import build_adapters

__all__ = ["EDITED_PERSONS", "RunMeasure", "SizeResult", "SizeScenario"]

EDITED_PERSONS = 60
OVERHEAD_TARGET = 2.0


@dataclass(frozen=True)
class RunMeasure:
    """One engine run: wall time, what the sandbox saw, and (for runs that wrote nothing) the
    time the same reads take raw."""

    label: str
    seconds: float
    report: RunReport
    calls: dict[str, SystemCalls]
    statuses: dict[str, dict[str, int]]
    floor_seconds: float | None = None
    adapter_seconds: float | None = None

    @property
    def records_read(self) -> int:
        return sum(self.report.read.values())

    @property
    def overhead(self) -> float | None:
        """Wall time over the I/O floor (target <= 2)."""
        if not self.floor_seconds:
            return None
        return self.seconds / self.floor_seconds

    @property
    def adapter_overhead(self) -> float | None:
        """The adapters' own reads (SDK, shaping, no engine) over the I/O floor."""
        if not self.floor_seconds or self.adapter_seconds is None:
            return None
        return self.adapter_seconds / self.floor_seconds


@dataclass
class SizeResult:
    persons: int
    organisations: int
    runs: dict[str, RunMeasure] = field(default_factory=dict)
    core: CoreThroughput | None = None
    edited_records: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        dry = self.runs.get("backfill (dry run)")
        return dry.records_read if dry else 0


class SizeScenario:
    """Drive one size through both phases; the caller keeps the sandbox open in between."""

    def __init__(self, persons: int, workdir: Path, *, core_repeats: int = 1,
                 edited_persons: int = EDITED_PERSONS) -> None:
        self.result = SizeResult(persons, organisations_for_persons(persons))
        self.workdir = workdir
        self.core_repeats = core_repeats
        self.edited_persons = edited_persons
        self.sandbox = RemoteSandbox(SandboxSpec(self.result.organisations))
        self.last_write = 0.0
        self.dry_state = workdir / "dry.db"

    def first_phase(self) -> None:
        """Dry-run backfill (floor, adapters, core records), backfill, and its read-back."""
        dry_state, state = self.workdir / "dry.db", self.workdir / "state.db"
        dry = self._run("backfill (dry run)", dry_state, lambda e: e.backfill(dry_run=True),
                        floor=True)
        self.result.runs[dry.label] = replace(dry, adapter_seconds=self._adapters_only())
        self.dry_state = dry_state
        self._run("backfill", state, lambda e: e.backfill())
        self._run("sync: reads the backfill's writes back", state, lambda e: e.sync(), floor=True)
        self.last_write = time.monotonic()

    def measure_core(self) -> None:
        """Over the dry run's mirror; run once every sandbox is closed, on a quiet machine."""
        self.result.core = measure_core_apart(self.dry_state, repeats=self.core_repeats)

    def seconds_until_second_phase(self) -> float:
        """Until the backfill's writes have left every later sync's overlap window."""
        return max(0.0, self.last_write + OVERLAP.total_seconds() + 5 - time.monotonic())

    def second_phase(self, *, wait: bool = True) -> None:
        """Edits, the sync that carries them, its read-back, and a sync with nothing to do."""
        if wait:
            time.sleep(self.seconds_until_second_phase())
        elif self.seconds_until_second_phase() > 0:
            self.result.notes.append("no wait before the edits: the quiet run re-reads the "
                                     "backfill's writes inside the two-minute overlap")
        state = self.workdir / "state.db"
        self.result.edited_records = self.sandbox.call("bench.edits:make_edits",
                                                       self.edited_persons)
        self._run("sync: after edits", state, lambda e: e.sync())
        self._run("sync: reads its writes back", state, lambda e: e.sync(), floor=True)
        self._run("sync: nothing changed", state, lambda e: e.sync())

    def _adapters_only(self) -> float:
        """Seconds the adapters take to read everything a backfill reads, with no engine."""
        settings = bench_settings(self.sandbox.env, self.workdir / "unused.db",
                                     **CLIENT_NO_LIMITS)
        adapters = build_adapters(settings)
        mapping = load_mapping()
        started = time.perf_counter()
        read_everything(adapters, mapping)
        return time.perf_counter() - started

    def _run(self, label: str, state: Path, action: Callable[[Engine], RunReport], *,
             floor: bool = False) -> RunMeasure:
        before = self.sandbox.counters()
        with engine_for(self.sandbox.env, state, **CLIENT_NO_LIMITS) as engine, \
                capture() as captured:
            started = time.perf_counter()
            report = action(engine)
            seconds = time.perf_counter() - started
        if report.status not in ("ok", "rejects"):
            raise RuntimeError(f"{label}: run ended {report.status}: {report.message}")
        delta = counters_delta(before, self.sandbox.counters())
        floor_seconds = None
        if floor and not captured.writes():
            # The run met search caches cold (the writes before it dropped them); so must its
            # replay, or the floor leaves out server time the run could not.
            self.sandbox.call("drop_caches")
            floor_seconds = replay(captured.reads(), self.sandbox.env["CRMSYNC_CA_BUNDLE"])
        measure = RunMeasure(label, seconds, report, calls_by_system(delta), delta["statuses"],
                             floor_seconds)
        self.result.runs[label] = measure
        return measure
