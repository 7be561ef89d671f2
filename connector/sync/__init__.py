"""The engine and its stages: read -> decide -> write, each run in one frame.

- `engine.py`: `Engine` (sync, backfill, plan, apply, rollback), `EngineOptions`, the
  run frame (lock, run row, status from the exception class, finish);
- `read.py`: `Reader`, every changed record into the mirror, with a `Checkpoint` policy;
- `decide.py`: `Planner`, what to plan and its plan from the mirror, group by group;
- `write.py`: `Writer`, a spool sent in batches, intents audited before each batch;
- `saved.py`: `PlanDocument` and the checks of a saved plan or a rollback;
- `guards.py`: `Guards`, `BlastRadius`: what a writing run checks before its first write;
- `report.py`: `RunReport`, `RunStatus`, `Progress` and the exit codes.
"""

from __future__ import annotations

from connector.sync.decide import PLAN_CHUNK, in_chunks, paused_gc, planning_groups
from connector.sync.engine import Engine, EngineOptions
from connector.sync.guards import BlastRadius, Guards
from connector.sync.read import OBJECTS, OVERLAP, parse_objects
from connector.sync.read import _prefetched as _prefetched  # for tests of the reader thread
from connector.sync.report import Progress, RunReport, RunStatus
from connector.sync.saved import PlanDocument, mapping_fingerprint

__all__ = [
    "OBJECTS",
    "OVERLAP",
    "PLAN_CHUNK",
    "BlastRadius",
    "Engine",
    "EngineOptions",
    "Guards",
    "PlanDocument",
    "Progress",
    "RunReport",
    "RunStatus",
    "in_chunks",
    "mapping_fingerprint",
    "parse_objects",
    "paused_gc",
    "planning_groups",
]
