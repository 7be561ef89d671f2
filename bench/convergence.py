"""Convergence under churn: syncs against a busy sandbox lose nothing and end where one full
run on the quiet data would.

The acceptance gate for live reads (issue 11). With churn on in both systems, search lag on
and Salesforce cursors that go stale, a sequence of syncs runs; then churn stops and syncs run
until one plans nothing. Then:

1. the mirror equals the sandbox's truth for every record and every field crmsync reads
   (deals' associations too), and every deleted or merged-away record is tombstoned;
2. a fresh state DB backfilled (dry run) over the final data plans no change: the CRMs hold
   what a single full run on the quiet data would write;
3. no run wrote one field with two different values (the clear half of HubSpot's
   clear-then-set aside).

`python -m bench.convergence` runs the large version (default 100k persons, churn for minutes)
in a sandbox process of its own; `tests/test_convergence.py` runs a CI-sized one in-process.
Both use `compare_mirror` and the audit check here.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from connector.catalog import MODIFIED_TIME_FIELDS
from connector.mapping import Mapping

__all__ = ["Divergence", "compare_mirror", "fields_written_twice", "main", "render_convergence",
           "run_large"]


@dataclass
class Divergence:
    """How the mirror differs from the sandbox's truth; all zero when they agree."""

    records: int = 0  # live records in the sandbox
    missing: list[str] = field(default_factory=list)  # live, never mirrored
    stale: list[str] = field(default_factory=list)  # "ref field: mirror != truth"
    ghosts: list[str] = field(default_factory=list)  # gone from the CRM, live in the mirror
    tombstoned: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale or self.ghosts)

    def summary(self) -> str:
        return (f"{self.records} live records: {len(self.missing)} never read, "
                f"{len(self.stale)} stale field(s), {len(self.ghosts)} deleted or merged but "
                f"live in the mirror; {self.tombstoned} tombstoned")


def compare_mirror(truth: dict[str, Any], state_db: Path, mapping: Mapping) -> Divergence:
    """Compare a sandbox `dump()` with the mirror of a state DB, field by field."""
    mirror = _mirror_rows(state_db)
    out = Divergence()
    gone: set[str] = set()
    live: dict[str, tuple[str, str, dict[str, Any]]] = {}
    deal_links = _deal_associations(truth["hubspot"].get("associations", {}))
    for object_type, records in truth["hubspot"].items():
        if object_type == "associations":
            continue
        for record in records:
            ref = f"hubspot:{object_type}:{record['id']}"
            if record.get("archived"):
                gone.add(ref)
            else:
                live[ref] = ("hubspot", object_type, record)
            for merged in _ids(record.get("properties", {}).get("hs_merged_object_ids")):
                gone.add(f"hubspot:{object_type}:{merged}")
    for sobject, records in truth["salesforce"].items():
        for record in records:
            ref = f"salesforce:{sobject}:{record['Id']}"
            (gone.add(ref) if record.get("IsDeleted") else live.update(
                {ref: ("salesforce", sobject, record)}))
    out.records = len(live)
    for ref, (system, obj, record) in sorted(live.items()):
        row = mirror.get(ref)
        if row is None or row[1]:
            out.missing.append(ref)
            continue
        out.stale.extend(_stale_fields(ref, system, obj, record, row[0], mapping,
                                       deal_links.get(record.get("id"), {})))
    for ref in sorted(gone):
        row = mirror.get(ref)
        if row is None:
            continue  # created and deleted between two reads: never seen, nothing to undo
        if row[1]:
            out.tombstoned += 1
        else:
            out.ghosts.append(ref)
    return out


def fields_written_twice(state_db: Path) -> dict[tuple[int, str, str], set[str]]:
    """(run, ref, field) -> values, for every field one run wrote with different values.
    HubSpot's clear-then-set writes "" first on purpose; that half is left out."""
    with closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT run_id, system || ':' || object_type || ':' || record_id, "
                          "field, after FROM audit").fetchall()
    values: dict[tuple[int, str, str], set[str]] = {}
    for run_id, ref, name, after in rows:
        if name == "lifecyclestage" and after in ('""', ""):
            continue
        values.setdefault((run_id, ref, name), set()).add(after)
    return {key: found for key, found in values.items() if len(found) > 1}


def _mirror_rows(state_db: Path) -> dict[str, tuple[dict[str, Any], bool]]:
    with closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)) as db:
        try:
            rows = db.execute("SELECT ref, record, deleted FROM mirror").fetchall()
        except sqlite3.OperationalError:  # a state DB from before tombstones (schema < 3)
            rows = db.execute("SELECT ref, record, 0 FROM mirror").fetchall()
    return {ref: (orjson.loads(record), bool(deleted)) for ref, record, deleted in rows}


def _stale_fields(ref: str, system: str, obj: str, truth: dict[str, Any],
                  mirrored: dict[str, Any], mapping: Mapping,
                  associations: dict[str, set[str]]) -> list[str]:
    volatile = set(MODIFIED_TIME_FIELDS.get(system, ()))
    wanted = sorted(set(mapping.fields_read(system).get(obj, set())) - volatile)
    if system == "hubspot":
        have, want = mirrored.get("properties") or {}, truth.get("properties") or {}
    else:
        have, want = mirrored, truth
    stale = [f"{ref} {name}: mirror {have.get(name)!r} != CRM {want.get(name)!r}"
             for name in wanted if not _same(have.get(name), want.get(name))]
    if system == "hubspot" and obj == "deals":
        held = {k: set(v) for k, v in (mirrored.get("associations") or {}).items()}
        for to_type in ("contacts", "companies"):
            if held.get(to_type, set()) != associations.get(to_type, set()):
                stale.append(f"{ref} associations.{to_type}: mirror "
                             f"{sorted(held.get(to_type, ()))} != CRM "
                             f"{sorted(associations.get(to_type, ()))}")
    return stale


def _deal_associations(pairs: dict[str, list[list[str]]]) -> dict[str, dict[str, set[str]]]:
    out: dict[str, dict[str, set[str]]] = {}
    for key, links in pairs.items():
        from_type, _, to_type = key.partition("/")
        if from_type != "deals":
            continue
        for deal, target in links:
            out.setdefault(str(deal), {}).setdefault(to_type, set()).add(str(target))
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as the APIs render them: HubSpot sends every property as text, "" for unset."""
    if a in (None, "") and b in (None, ""):
        return True
    return a == b or str(a) == str(b)


def _ids(value: Any) -> list[str]:
    return [part for part in str(value or "").split(";") if part.strip()]


# ---- the large run (python -m bench.convergence) ---------------------------------------------


def start_churn(sandbox: Any, rate: float, seed: int) -> None:
    """In the sandbox's process: start churning (stopped by `stop_churn`)."""
    sandbox._bench_churn = sandbox.churn(rate, seed=seed)
    sandbox._bench_churn.start()


def stop_churn(sandbox: Any) -> dict[str, int]:
    churn = sandbox._bench_churn
    churn.stop()
    return dict(churn.counts)


def run_large(persons: int, rate: float, churn_seconds: float, workdir: Path,
              say: Callable[[str], None]) -> dict[str, Any]:
    """Backfill `persons` (about a third as many organisations), sync under churn for
    `churn_seconds`, then until quiet; returns the figures for RESULTS.md."""
    from bench._engine import bench_settings  # noqa: PLC0415
    from bench._remote import RemoteSandbox, SandboxSpec  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415
    from connector.runtime import open_engine  # noqa: PLC0415

    spec = SandboxSpec(organisations=max(1, persons // 3),
                       limits=(*SandboxSpec(1).limits, ("search_lag_seconds", 2.0),
                               ("cursor_idle_seconds", 5.0)))
    state = workdir / "convergence.db"
    figures: dict[str, Any] = {"persons": persons, "rate": rate}
    with RemoteSandbox(spec) as sandbox:
        settings = bench_settings(sandbox.env, state, hubspot_safety_lag_seconds=10,
                                     salesforce_safety_lag_seconds=10)
        with open_engine(settings=settings, state_path=state) as engine:
            started = time.monotonic()
            engine.backfill()
            figures["backfill_seconds"] = round(time.monotonic() - started, 1)
            say(f"[convergence] backfill done in {figures['backfill_seconds']} s")
            sandbox.call("bench.convergence:start_churn", rate, 11)
            syncs, churn_until = 0, time.monotonic() + churn_seconds
            while time.monotonic() < churn_until:
                report = engine.sync()
                syncs += 1
                say(f"[convergence] sync {syncs} under churn: {report.status}, "
                    f"read {sum(report.read.values())}, applied {report.applied}")
            figures["churn"] = sandbox.call("bench.convergence:stop_churn")
            figures["syncs_under_churn"] = syncs
            time.sleep(3)  # the search lag passes
            quiet = _until_quiet(engine)
            figures["syncs_to_quiet"] = quiet
        truth = sandbox.call("dump")
        with open_engine(settings=settings, state_path=workdir / "fresh.db") as fresh:
            figures["single_full_run_plans"] = fresh.backfill(dry_run=True).planned
    divergence = compare_mirror(truth, state, load_mapping())
    figures["divergence"] = divergence.summary()
    figures["ok"] = divergence.ok
    figures["examples"] = (divergence.missing + divergence.stale + divergence.ghosts)[:10]
    figures["written_twice"] = len(fields_written_twice(state))
    return figures


def render_convergence(figures: dict[str, Any]) -> str:
    """The figures of `run_large` as a markdown table."""
    churned = ", ".join(f"{k} {v}" for k, v in sorted(figures["churn"].items()))
    rows = [
        ("persons", f"{figures['persons']:,}"),
        ("backfill", f"{figures['backfill_seconds']} s"),
        ("churn", f"{figures['rate']:g}/s: {churned}"),
        ("syncs under churn, then to quiet",
         f"{figures['syncs_under_churn']}, then {figures['syncs_to_quiet']}"),
        ("mirror against the sandbox", figures["divergence"]),
        ("fields written twice in one run", str(figures["written_twice"])),
        ("a fresh full run on the final data plans", f"{figures['single_full_run_plans']} "
                                                     "change(s)"),
        ("verdict", "converged" if figures["ok"] and not figures["written_twice"]
         and figures["single_full_run_plans"] == 0 else "**did not converge**"),
    ]
    return "\n".join(["| measure | value |", "|---|---|",
                      *(f"| {a} | {b} |" for a, b in rows)]) + "\n"


def _until_quiet(engine: Any, limit: int = 6) -> int:
    for attempt in range(1, limit + 1):
        report = engine.sync()
        if report.planned == 0 and report.deleted == 0 and report.merged == 0:
            return attempt
    return limit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.convergence",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20.0, help="changes per second")
    parser.add_argument("--churn-seconds", type=float, default=180.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crmsync-convergence-") as tmp:
        figures = run_large(args.persons, args.rate, args.churn_seconds, Path(tmp),
                            lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(figures, indent=2))
    agreed = figures["ok"] and not figures["written_twice"]
    return 0 if agreed and figures["single_full_run_plans"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
