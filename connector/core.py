"""The pure core in one call: raw records -> views -> entities -> the changes to make.

`normalise` each (system, object, raw) record, `reconcile` the views into persons and
organisations (with the stored links an admin or an earlier run confirmed), and `make_plan`
the field changes. `crmsync mappings explain`, the tests and the core benchmark all call
this, so each one runs the same pipeline the engine plans with. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from connector.mapping import Mapping
from connector.model import Change, Rejection
from connector.normalize import View, normalise
from connector.plan import make_plan
from connector.reconcile import Reconciled, reconcile

__all__ = ["CoreResult", "StageTimer", "plan_records"]

# Called with a stage's name ("normalise", "reconcile", "plan") as that stage ends.
StageTimer = Callable[[str], None]


@dataclass(frozen=True)
class CoreResult:
    """What the core made of a set of records: the records it could not read, the entities
    the rest form, the changes that bring every record to its entity's values, and the views
    (duplicate detection compares them with the entities)."""

    rejections: list[Rejection]
    reconciled: Reconciled
    changes: list[Change]
    views: list[View]


def plan_records(mapping: Mapping, raws: Iterable[tuple[str, str, Any]], today: date,
                 links: Iterable[tuple[str, str]] = (), *,
                 timer: StageTimer | None = None) -> CoreResult:
    """normalise -> reconcile -> plan over (system, object, raw) records.

    `links` are stored links as ref texts; `timer`, when given, hears each stage's end, so a
    benchmark can time the stages of exactly this call.
    """
    views: list[View] = []
    rejections: list[Rejection] = []
    for system, object_type, raw in raws:
        view = normalise(mapping, system, object_type, raw)
        if isinstance(view, Rejection):
            rejections.append(view)
        else:
            views.append(view)
    if timer is not None:
        timer("normalise")
    reconciled = reconcile(mapping, views, today, links)
    if timer is not None:
        timer("reconcile")
    changes = make_plan(mapping, reconciled, today).changes
    if timer is not None:
        timer("plan")
    return CoreResult(rejections, reconciled, changes, views)
