"""Peak RSS of a backfill and of the sync after it (planning every record, as the first sync
of a day does), each in a fresh process, per size.

Sizes count records in both CRMs together (the state a run must hold is per record). Growth
is judged against the state DB: from one size to the next, the extra peak RSS per extra byte
of state. Up to about one is what holding the state costs; far above it means a run keeps
more than it must (the target is growth no steeper than the state).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench._remote import RemoteSandbox, SandboxSpec
from bench._sizes import organisations_for_records

__all__ = ["MemoryResult", "measure_memory", "state_bytes"]

TARGET_BYTES_AT_1M = 500 * 1024 * 1024
PROBE_TIMEOUT_SECONDS = 3_600


@dataclass(frozen=True)
class MemoryResult:
    """Peak RSS per run for one size; `records` is what the backfill read."""

    size: int
    records: int
    baseline_bytes: int
    backfill_bytes: int
    sync_bytes: int
    state_bytes: int
    backfill_seconds: float
    sync_seconds: float

    @property
    def peak_bytes(self) -> int:
        return max(self.backfill_bytes, self.sync_bytes)


def state_bytes(state: Path) -> int:
    """The state DB on disk, with its WAL (SQLite keeps recent pages there)."""
    return sum(p.stat().st_size for p in state.parent.glob(state.name + "*") if p.is_file())


def _probe(run: str, env: dict[str, str], state: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.memory_probe", run, "--state", str(state)],
        input=json.dumps(env), capture_output=True, text=True, check=False,
        timeout=PROBE_TIMEOUT_SECONDS, cwd=Path(__file__).resolve().parent.parent,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory probe ({run}) failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure_memory(records: int, workdir: Path) -> MemoryResult:
    """Backfill, then sync, against a sandbox of about `records` records."""
    state = workdir / f"memory-{records}.db"
    with RemoteSandbox(SandboxSpec(organisations_for_records(records))) as sandbox:
        baseline = _probe("none", sandbox.env, workdir / "memory-baseline.db")
        backfill = _probe("backfill", sandbox.env, state)
        held = state_bytes(state)
        sync = _probe("sync", sandbox.env, state)
    return MemoryResult(records, backfill["read"], baseline["peak_rss_bytes"],
                        backfill["peak_rss_bytes"], sync["peak_rss_bytes"], held,
                        backfill["seconds"], sync["seconds"])
