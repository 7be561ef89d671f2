"""Markdown tables of the measured ratios: printed, and written with `--markdown FILE`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bench._sizes import show_size
from bench.api_calls import OBJECT_COUNT, TARGET_FACTOR
from bench.core import TARGET_RECORDS_PER_SECOND
from bench.memory import TARGET_BYTES_AT_1M, MemoryResult
from bench.rate import TARGET_SHARE, RateResult
from bench.workload import OVERHEAD_TARGET, SizeResult

__all__ = ["api_table", "core_table", "memory_table", "overhead_table", "quiet_table",
           "rate_table", "table"]

MB = 1024 * 1024
# Extra peak RSS per extra byte of state: growth no steeper than the state the run holds.
GROWTH_TARGET = 1.0


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table, columns padded so it also reads well as plain text."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
              for r in body]
    return "\n".join(lines)


def _ok(met: bool) -> str:
    return "yes" if met else "**no**"


def api_table(results: list[SizeResult]) -> str:
    """Calls per system against the minimum, for every run that read or wrote."""
    rows = []
    for result in results:
        for label, run in result.runs.items():
            if label == "backfill (dry run)":
                continue
            for system, calls in run.calls.items():
                rows.append([
                    show_size(result.persons), label, system, calls.calls, calls.minimum,
                    f"{calls.ratio:.2f}", f"{calls.allowed:.0f}", _ok(calls.meets_target),
                    calls.extras(),
                ])
    return table(["persons", "run", "system", "calls", "min", "calls/min",
                  f"allowed ({TARGET_FACTOR}×min⁺+c)", "ok", "calls beyond reads/writes"],
                 rows)


READS_PER_QUIET_OBJECT = 2  # the changed records, and the deletions and merges


def quiet_table(results: list[SizeResult]) -> str:
    """The sync with nothing to do: read calls per object and writes. The minimum is two
    reads per object: its changes since the watermark and its deletions and merges (HubSpot's
    archived list, Salesforce's queryAll), one call each when there are none."""
    rows = []
    for result in results:
        run = result.runs.get("sync: nothing changed")
        if run is None:
            continue
        per_object = {s: c.read_calls / OBJECT_COUNT[s] for s, c in run.calls.items()}
        writes = sum(c.write_calls for c in run.calls.values())
        met = writes == 0 and all(v == READS_PER_QUIET_OBJECT for v in per_object.values())
        rows.append([show_size(result.persons), run.records_read,
                     *(f"{per_object[s]:g}" for s in ("hubspot", "salesforce")),
                     writes, run.report.planned, _ok(met)])
    return table(["persons", "records re-read (overlap)",
                  "hubspot reads/object (changes + deletions)",
                  "salesforce reads/object (changes + deletions)", "writes", "planned", "ok"],
                 rows)


def overhead_table(results: list[SizeResult]) -> str:
    """Wall time over the I/O floor for runs that only read. The target is for syncs; a
    backfill plans every record it holds, so its time is the core's (section 3), not I/O's."""
    rows = []
    for result in results:
        for label, run in result.runs.items():
            if run.overhead is None:
                continue
            adapters = run.adapter_overhead
            held = "n/a: a backfill plans every record" if label.startswith("backfill") \
                else _ok(run.overhead <= OVERHEAD_TARGET)
            rows.append([show_size(result.persons), label, run.records_read,
                         run.report.records_planned, f"{run.overhead:.1f}",
                         "-" if adapters is None else f"{adapters:.1f}",
                         f"{run.seconds:.2f}", f"{run.floor_seconds:.2f}", held])
    return table(["persons", "run", "records read", "records planned", "wall / I/O floor",
                  "adapters alone / floor", "wall s", "floor s",
                  f"ok (sync ≤ {OVERHEAD_TARGET:g})"], rows)


def core_table(results: list[SizeResult]) -> str:
    rows = []
    for result in results:
        core = result.core
        if core is None:
            continue
        split = "/".join(f"{100 * s / core.seconds:.0f}" for s in
                         (core.normalise_seconds, core.reconcile_seconds, core.plan_seconds))
        rows.append([show_size(result.persons), core.records, core.changes, split,
                     f"{core.records_per_second:,.0f}", _ok(core.meets_target)])
    return table(["persons", "records", "changes planned", "normalise/reconcile/plan %",
                  "records/s", f"ok (≥ {TARGET_RECORDS_PER_SECOND:,})"], rows)


def memory_table(results: list[MemoryResult]) -> str:
    """Peaks per run kind; growth is judged per run kind against the state DB's growth."""
    rows = []
    previous: MemoryResult | None = None
    for result in results:
        sync_growth = _growth(previous, result, "sync_bytes")
        backfill_growth = _growth(previous, result, "backfill_bytes")
        rows.append([show_size(result.size), result.records, f"{result.state_bytes / MB:.0f}",
                     f"{result.sync_bytes / MB:.0f}", _show(sync_growth),
                     _ok(_memory_ok(result.size, result.sync_bytes, sync_growth)),
                     f"{result.backfill_bytes / MB:.0f}", _show(backfill_growth),
                     _ok(_memory_ok(result.size, result.backfill_bytes, backfill_growth))])
        previous = result
    baseline = max((r.baseline_bytes for r in results), default=0)
    return table(["records", "read", "state DB MB", "sync peak MB", "sync Δpeak/Δstate",
                  "sync ok", "backfill peak MB", "backfill Δpeak/Δstate", "backfill ok"],
                 rows) + f"\n\nThe interpreter with crmsync imported, before any run: " \
                         f"{baseline / MB:.0f} MB."


def _memory_ok(size: int, peak: int, growth: float | None) -> bool:
    """<= 500 MB at 1M records, and growth no steeper than the state's."""
    within = size < 1_000_000 or peak <= TARGET_BYTES_AT_1M
    return within and (growth is None or growth <= GROWTH_TARGET)


def _show(growth: float | None) -> str:
    return "-" if growth is None else f"{growth:.2f}"


def _growth(previous: MemoryResult | None, result: MemoryResult, peak: str) -> float | None:
    """Extra peak RSS of one run kind per extra byte of state since the previous size."""
    if previous is None or result.state_bytes <= previous.state_bytes:
        return None
    extra = getattr(result, peak) - getattr(previous, peak)
    return extra / (result.state_bytes - previous.state_bytes)


def rate_table(results: list[RateResult]) -> str:
    rows = [[r.budget, f"{r.window:g} s", r.hubspot_calls,
             f"{r.share_of_limit:.1%}" if r.measured else "n/a (too short)",
             f"{r.share_of_budget:.1%}" if r.measured else "n/a (too short)",
             r.four_twenty_nines, _ok(r.meets_target) if r.measured else "-"]
            for r in results]
    return table(["client budget / window", "window (time-scaled)", "HubSpot calls",
                  "sustained rate / server limit", "sustained rate / client budget", "429s",
                  f"ok (≥ {TARGET_SHARE:.0%} of budget, no 429)"], rows)
