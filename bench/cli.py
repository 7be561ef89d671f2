"""`python -m bench`: run the benchmarks against the sandbox and print their tables.

Everything runs locally: each size gets its own sandbox process, state DBs go to a temporary
directory, nothing is written to a real CRM. `--smoke` runs tiny sizes in well under 30 s
(CI runs it so the benchmarks cannot rot); the default full run takes about a quarter of an
hour on two cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from bench._sizes import parse_size, parse_sizes, show_size
from bench.bulk import measure_bulk, render_bulk
from bench.convergence import render_convergence, run_large
from bench.memory import MemoryResult, measure_memory
from bench.misconfigured import measure_misconfigured, render_misconfigured
from bench.rate import RateResult, measure_rate
from bench.report import (
    api_table,
    core_table,
    memory_table,
    overhead_table,
    quiet_table,
    rate_table,
)
from bench.tenants import measure_stores, measure_tenants, render_tenants
from bench.workload import SizeResult, SizeScenario

__all__ = ["main"]

SECTIONS = ("api", "overhead", "core", "memory", "rate", "misconfigured")
# Opt-in: 100k persons under minutes of churn (`--only convergence`), a backfill of a
# million Salesforce records through each write path (`--only bulk`), and tenants fanned
# out over Celery workers (`--only tenants`) take a while of their own.
EXTRA_SECTIONS = ("convergence", "bulk", "tenants")
# Above these, a size is refused rather than left to exhaust the machine (see --help).
MAX_PERSONS = 300_000
MAX_MEMORY_RECORDS = 2_000_000


@dataclass(frozen=True)
class Plan:
    """What one invocation measures."""

    sizes: list[int]
    memory_sizes: list[int]
    rate_persons: int
    rate_window: float
    sections: set[str]
    wait: bool
    core_repeats: int
    misconfigured_contacts: int = 10_000
    convergence_persons: int = 100_000
    churn_seconds: float = 180.0
    bulk_records: int = 1_000_000
    tenants: int = 24
    tenant_persons: int = 1_000
    tenant_workers: tuple[int, ...] = (1, 2, 4)
    store_persons: int = 100_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="crmsync benchmarks against the local sandbox: API calls against the "
                    "minimum, local overhead against the I/O floor, core throughput, peak "
                    "memory and rate-limit use. Prints markdown tables of ratios.",
    )
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, no waiting: checks that every benchmark still runs "
                             "(under 30 s)")
    parser.add_argument("--sizes", default="1k,10k,100k",
                        help="persons per scenario (organisations in proportion), e.g. "
                             "1k,10k,100k (default)")
    parser.add_argument("--memory-sizes", default="10k,100k,1M",
                        help="records (both CRMs together) per memory run, each in a fresh "
                             "process (default 10k,100k,1M)")
    parser.add_argument("--rate-persons", default="30k",
                        help="persons for the rate-limit run (default 30k)")
    parser.add_argument("--rate-window", type=float, default=1.0,
                        help="seconds the sandbox's 100-request HubSpot window lasts "
                             "(time-scaled from 10; default 1.0)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections to run, of "
                             f"{', '.join(SECTIONS + EXTRA_SECTIONS)} (default: all but "
                             "convergence)")
    parser.add_argument("--convergence-persons", default="100k",
                        help="persons for the convergence run (default 100k)")
    parser.add_argument("--churn-seconds", type=float, default=180.0,
                        help="convergence: seconds of syncs under churn (default 180)")
    parser.add_argument("--bulk-records", default="1M",
                        help="bulk: Salesforce records backfilled through each write path "
                             "(default 1M)")
    parser.add_argument("--tenants", type=int, default=24,
                        help="tenants: how many tenants the workers share (default 24)")
    parser.add_argument("--tenant-persons", default="1k",
                        help="tenants: persons per tenant (default 1k)")
    parser.add_argument("--tenant-workers", default="1,2,4",
                        help="tenants: worker counts to measure (default 1,2,4)")
    parser.add_argument("--store-persons", default="100k",
                        help="tenants: persons for one tenant on SQLite against PostgreSQL "
                             "(default 100k)")
    parser.add_argument("--no-wait", action="store_true",
                        help="skip the two-minute wait that keeps the backfill's writes out "
                             "of the quiet sync's overlap window")
    parser.add_argument("--core-repeats", type=int, default=5,
                        help="core throughput: best of N runs (default 5)")
    parser.add_argument("--markdown", type=Path,
                        help="also write the tables to this file")
    return parser


def _plan(args: argparse.Namespace) -> Plan:
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sections - set(SECTIONS + EXTRA_SECTIONS)
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {sorted(unknown)}; "
                         f"use {SECTIONS + EXTRA_SECTIONS}")
    if args.smoke:
        return Plan([300], [3_000], 300, 0.2, sections, wait=False, core_repeats=1,
                    misconfigured_contacts=500, convergence_persons=300, churn_seconds=3.0,
                    bulk_records=3_000, tenants=3, tenant_persons=60,
                    tenant_workers=(1, 2), store_persons=300)
    return Plan(parse_sizes(args.sizes), parse_sizes(args.memory_sizes),
                parse_sizes(args.rate_persons)[0], args.rate_window, sections,
                wait=not args.no_wait, core_repeats=args.core_repeats,
                convergence_persons=parse_sizes(args.convergence_persons)[0],
                churn_seconds=args.churn_seconds, bulk_records=parse_size(args.bulk_records),

                tenants=args.tenants,
                tenant_persons=parse_sizes(args.tenant_persons)[0],
                tenant_workers=tuple(int(n) for n in args.tenant_workers.split(",") if n),
                store_persons=parse_sizes(args.store_persons)[0])


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _feasible(sizes: list[int], limit: int, what: str, notes: list[str]) -> list[int]:
    """Sizes above `limit`, dropped with a note: they would need more than this machine has."""
    kept = [s for s in sizes if s <= limit]
    for size in sorted(set(sizes) - set(kept)):
        notes.append(f"{what} {show_size(size)}: not run (above {show_size(limit)}, the "
                     "sandbox would need more memory than the run can assume)")
    return kept


def _scenarios(plan: Plan, workdir: Path, meanwhile: Callable[[], None]) -> list[SizeResult]:
    """Phase one for every size, then phase two; sizes that must still wait for the overlap
    window go last, after `meanwhile` (the other benchmarks) has used the time."""
    scenarios = [SizeScenario(p, workdir / f"persons-{p}", core_repeats=plan.core_repeats)
                 for p in plan.sizes]
    with ExitStack() as stack:
        for scenario in scenarios:
            scenario.workdir.mkdir(parents=True, exist_ok=True)
            _say(f"[bench] {show_size(scenario.result.persons)} persons: sandbox, backfills")
            stack.enter_context(scenario.sandbox)
            scenario.first_phase()
        waiting = [s for s in scenarios if plan.wait and s.seconds_until_second_phase() > 0]
        for scenario in [s for s in scenarios if s not in waiting]:
            _second_phase(scenario, plan)
        meanwhile()
        for scenario in waiting:
            _second_phase(scenario, plan)
    if "core" in plan.sections:  # every sandbox is closed now: nothing else wants the CPU
        for scenario in scenarios:
            _say(f"[bench] {show_size(scenario.result.persons)} persons: core throughput")
            scenario.measure_core()
    return [s.result for s in scenarios]


def _second_phase(scenario: SizeScenario, plan: Plan) -> None:
    wait = scenario.seconds_until_second_phase() if plan.wait else 0.0
    _say(f"[bench] {show_size(scenario.result.persons)} persons: edits and syncs"
         + (f" (after {wait:.0f} s for the overlap window)" if wait else ""))
    scenario.second_phase(wait=plan.wait)


def _timed(label: str, work: Callable[[], object]) -> None:
    started = time.monotonic()
    work()
    _say(f"[bench] {label}: {time.monotonic() - started:.0f} s")


def _render(plan: Plan, sizes: list[SizeResult], memory: list[MemoryResult],
            rate: list[RateResult], notes: list[str], extra: dict[str, str]) -> str:
    parts = []
    if "api" in plan.sections and sizes:
        parts += ["## API calls per system against the minimum", api_table(sizes),
                  "### Incremental run with nothing to do", quiet_table(sizes)]
    if "overhead" in plan.sections and sizes:
        parts += ["## Local overhead: wall time against the I/O floor", overhead_table(sizes)]
    if "core" in plan.sections and sizes:
        parts += ["## Core throughput (normalise + reconcile + plan, one core)",
                  core_table(sizes)]
    if memory:
        parts += ["## Peak RSS, each run in a fresh process", memory_table(memory)]
    if rate:
        parts += ["## Rate-limit use under a time-scaled HubSpot window", rate_table(rate)]
    if "misconfigured" in extra:
        parts += ["## HubSpot writes against a misconfigured portal (calls, not time)",
                  extra["misconfigured"]]
    if "convergence" in extra:
        parts += ["## Convergence under churn", extra["convergence"]]
    if "bulk" in extra:
        parts += ["## Salesforce backfill: collections against Bulk API 2.0", extra["bulk"]]
    if "tenants" in extra:
        parts += ["## Many tenants: Celery workers, and PostgreSQL against SQLite",
                  extra["tenants"]]
    notes = notes + [n for s in sizes for n in s.notes]
    if notes:
        parts += ["## Notes", "\n".join(f"- {n}" for n in dict.fromkeys(notes))]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = _plan(args)
    notes: list[str] = []
    sizes: list[SizeResult] = []
    memory: list[MemoryResult] = []
    rate: list[RateResult] = []
    extra: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-") as tmp:
        workdir = Path(tmp)

        def others() -> None:
            """Memory and rate-limit runs: they need no scenario, and fill its waits."""
            if "memory" in plan.sections:
                for records in _feasible(plan.memory_sizes, MAX_MEMORY_RECORDS, "records",
                                         notes):
                    _say(f"[bench] memory at {show_size(records)} records")
                    _timed(f"memory {show_size(records)}",
                           lambda r=records: memory.append(measure_memory(r, workdir)))
            if "rate" in plan.sections:
                _say(f"[bench] rate-limit use at {show_size(plan.rate_persons)} persons")
                _timed("rate", lambda: rate.extend(
                    measure_rate(plan.rate_persons, plan.rate_window, workdir=workdir)))

        if "misconfigured" in plan.sections:
            _say(f"[bench] misconfigured portal at {show_size(plan.misconfigured_contacts)} "
                 "contacts")
            _timed("misconfigured", lambda: extra.update(misconfigured=render_misconfigured(
                measure_misconfigured(workdir / "misconfigured",
                                      plan.misconfigured_contacts))))
        if "convergence" in plan.sections:
            _say(f"[bench] convergence at {show_size(plan.convergence_persons)} persons")
            _timed("convergence", lambda: extra.update(convergence=render_convergence(
                run_large(plan.convergence_persons, 20.0, plan.churn_seconds,
                          workdir / "convergence", _say))))
        if "bulk" in plan.sections:
            _say(f"[bench] bulk at {show_size(plan.bulk_records)} Salesforce records")
            _timed("bulk", lambda: extra.update(bulk=render_bulk(
                measure_bulk(plan.bulk_records, workdir, _say))))
        if "tenants" in plan.sections:
            _timed("tenants", lambda: extra.update(tenants=render_tenants(
                measure_tenants(plan.tenants, plan.tenant_persons, list(plan.tenant_workers),
                                workdir / "tenants", _say),
                measure_stores(plan.store_persons, workdir, _say))))
        if plan.sections & {"api", "overhead", "core"}:
            persons = _feasible(plan.sizes, MAX_PERSONS, "persons", notes)
            plan = replace(plan, sizes=persons)
            _timed("scenarios", lambda: sizes.extend(_scenarios(plan, workdir, others)))
        else:
            others()
    text = _render(plan, sizes, memory, rate, notes, extra)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return 0
