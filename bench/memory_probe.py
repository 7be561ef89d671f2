"""One engine run in a fresh process, reporting its peak RSS (`python -m bench.memory_probe`).

Run by bench/memory.py, one process per run, so each peak belongs to that run alone: the
sandbox lives in another process, and nothing measured before is still resident. Reads the
sandbox's settings as JSON on stdin (they hold tokens, so they stay out of the argument list)
and prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "peak_rss_bytes"]

RUNS = ("none", "backfill", "sync")


def peak_rss_bytes() -> int:
    """This program's peak resident set size.

    On Linux from `VmHWM`, the high-water mark of the memory this program mapped: `ru_maxrss`
    also counts the parent's memory at the fork that started us (the kernel carries the old
    mapping's peak across exec), which would charge the benchmark's own size to each probe.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _run(kind: str, env: dict[str, str], state: Path) -> dict[str, Any]:
    from bench._engine import CLIENT_NO_LIMITS, engine_for  # noqa: PLC0415 - timed import

    with engine_for(env, state, **CLIENT_NO_LIMITS) as engine:
        started = time.perf_counter()
        if kind == "none":
            return {"seconds": 0.0, "read": 0, "planned": 0, "status": "ok"}
        # The sync plans every record, as the first sync of a day does: its heaviest form.
        report = engine.backfill() if kind == "backfill" else engine.sync(replan_all=True)
        return {"seconds": time.perf_counter() - started, "read": sum(report.read.values()),
                "planned": report.planned, "status": report.status}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_probe")
    parser.add_argument("run", choices=RUNS, help="`none` measures the interpreter and imports")
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)
    env = json.load(sys.stdin)
    result = _run(args.run, env, args.state)
    result["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
