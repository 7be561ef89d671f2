"""The canonical model: one vocabulary for both CRMs.

The source texts use "lead", "prospect" and "trigger" for three independent things, so the
model keeps them apart: ICP **fit** (an organisation property), person **lifecycle stage**
(an ordered ladder plus off-ladder states) and time-bound organisation **triggers**. Priority
is derived from those three, never stored as a source of truth.

Every derived value carries `Provenance`: which record and field it came from and which
mapping rule turned it into a canonical value, so admins can ask "why" of any value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, Literal, Self

from pydantic import ConfigDict, TypeAdapter

__all__ = [
    "LADDER",
    "Change",
    "Deal",
    "DealStatus",
    "IcpFit",
    "LifecycleStage",
    "Organization",
    "Person",
    "Priority",
    "Provenance",
    "Rejection",
    "Relationship",
    "SourceRef",
    "Sourced",
    "System",
    "Trigger",
    "TriggerPolarity",
]


class System(StrEnum):
    HUBSPOT = "hubspot"
    SALESFORCE = "salesforce"


class LifecycleStage(StrEnum):
    """Person lifecycle stage (seed 002's ladder) plus states outside the ladder."""

    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    EVANGELIST = "evangelist"
    OTHER = "other"
    DISQUALIFIED = "disqualified"

    @property
    def rank(self) -> int | None:
        """Position on the ladder, or None for off-ladder states."""
        return _RANK.get(self)

    @property
    def on_ladder(self) -> bool:
        return self in _RANK

    def is_more_advanced_than(self, other: LifecycleStage | None) -> bool:
        """Off-ladder states are never more advanced; anything on the ladder beats them."""
        if self.rank is None:
            return False
        if other is None or other.rank is None:
            return True
        return self.rank > other.rank

    def is_downgrade_from(self, current: LifecycleStage | None) -> bool:
        """Moving here from `current` goes back down, or off the ladder from a ladder stage."""
        if current is None or current.rank is None or current == self:
            return False
        return self.rank is None or self.rank < current.rank


LADDER: tuple[LifecycleStage, ...] = (
    LifecycleStage.SUBSCRIBER,
    LifecycleStage.LEAD,
    LifecycleStage.MQL,
    LifecycleStage.SQL,
    LifecycleStage.OPPORTUNITY,
    LifecycleStage.CUSTOMER,
    LifecycleStage.EVANGELIST,
)
_RANK = {stage: index for index, stage in enumerate(LADDER)}


class Relationship(StrEnum):
    """What an organisation is to us, independent of whether it fits the ICP."""

    NONE = "none"
    CUSTOMER = "customer"
    PARTNER = "partner"
    OTHER = "other"


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class TriggerPolarity(StrEnum):
    """Positive triggers give a reason to call now; suppressing ones (savings) a reason not to."""

    POSITIVE = "positive"
    SUPPRESSING = "suppressing"


class Priority(StrEnum):
    """The texts' ranking, best first: trigger on a fit organisation > fit > non-fit lead."""

    TRIGGER_FIT = "trigger_fit"
    FIT = "fit"
    NONFIT_LEAD = "nonfit_lead"
    OTHER = "other"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {
    Priority.OTHER: 0,
    Priority.NONFIT_LEAD: 1,
    Priority.FIT: 2,
    Priority.TRIGGER_FIT: 3,
}


class _Boundary:
    """pydantic only where data crosses a boundary (plan files, reports, golden files).

    Inside the core these are slotted dataclasses: about ten are built per record, and
    validating each as a pydantic model cost more than the rest of the core. At the edges
    `model_validate` and `model_dump` keep their pydantic behaviour and output.

    Only `SourceRef` is frozen: it is the record's identity, hashed into sets and dict keys.
    The rest are never changed after construction, and must not be (values such as priorities
    are shared between entities), but are not frozen: `frozen=True` turns each field of
    `__init__` into an `object.__setattr__` call, and with ~350k objects per 10k persons that
    was a sixth of the core's time. They are not hashable (nothing hashes them; Person and
    Organization never were, they hold dicts).
    """

    __slots__ = ()
    __pydantic_config__ = ConfigDict(extra="forbid")

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        return _adapter(cls).validate_python(data)

    def model_dump(self, *, mode: Literal["json", "python"] = "python") -> dict[str, Any]:
        return _adapter(type(self)).dump_python(self, mode=mode)


@cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


@dataclass(frozen=True, slots=True)
class SourceRef(_Boundary):
    """One record in one system; `key` is its text, `system:object_type:record_id`.

    The text is formatted once here: the core sorts, groups and looks records up by it.
    """

    system: System
    object_type: str
    record_id: str
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.system) is not System:
            object.__setattr__(self, "system", System(self.system))
        object.__setattr__(self, "key", f"{self.system}:{self.object_type}:{self.record_id}")

    def __str__(self) -> str:
        return self.key


@dataclass(slots=True)
class Provenance(_Boundary):
    """Where a canonical value came from: the rule, and the record, field and raw value."""

    rule: str
    source: SourceRef | None = None
    field: str | None = None
    raw: Any = None

    def describe(self) -> str:
        if self.source is None:
            return self.rule
        return f"{self.source} {self.field}={self.raw!r} via {self.rule}"


@dataclass(slots=True)
class Sourced(_Boundary):
    """A canonical value together with its provenance."""

    value: Any
    provenance: Provenance


@dataclass(slots=True)
class IcpFit(_Boundary):
    """Whether an organisation matches the Ideal Customer Profile, and which rules decided it."""

    fit: bool
    matched: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    rule: str = "icp"
    asserted_by: Provenance | None = None


@dataclass(slots=True)
class Trigger(_Boundary):
    """A time-bound event at an organisation (funding, new executive, savings announced...)."""

    type: str
    occurred_at: date
    expires_at: date
    polarity: TriggerPolarity
    provenance: Provenance

    def is_active(self, today: date) -> bool:
        return self.occurred_at <= today < self.expires_at

    @staticmethod
    def window(occurred_at: date, active_days: int) -> date:
        return occurred_at + timedelta(days=active_days)


@dataclass(slots=True)
class Rejection(_Boundary):
    """A record the core could not use, with a reason an admin can act on.

    Where crmsync knows the fix, the reason is "CAUSE -> FIX": a cause that names no record
    (so the records one mistake rejects share it, and reports group them by it) and where
    to act (`connector.sync.report.split_reason`)."""

    source: SourceRef
    reason: str
    field: str | None = None


@dataclass(slots=True)
class Person(_Boundary):
    """A person as one or more records describe them.

    A single-record view has one ref; after reconciliation a Person carries every linked
    record. `current` holds each record's present values of the fields we may write, keyed
    by ref text, so planning needs no other input. `linked_refs` are records this one names
    as the same person (ids, conversion); `converted_refs` converted Salesforce leads:
    history, never written to.
    """

    refs: tuple[SourceRef, ...]
    email: str | None = None
    stage: Sourced | None = None
    stage_candidates: tuple[Sourced, ...] = ()
    organization_refs: tuple[SourceRef, ...] = ()
    linked_refs: tuple[SourceRef, ...] = ()
    converted_refs: tuple[SourceRef, ...] = ()
    fit: IcpFit | None = None
    priority: Sourced | None = None
    current: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class Organization(_Boundary):
    """An organisation as one or more records describe it."""

    refs: tuple[SourceRef, ...]
    name: str | None = None
    domain: str | None = None
    facts: dict[str, Sourced] = field(default_factory=dict)
    relationship: Sourced | None = None
    relationship_candidates: tuple[Sourced, ...] = ()
    asserted_fit: Sourced | None = None
    linked_refs: tuple[SourceRef, ...] = ()
    fit: IcpFit | None = None
    triggers: tuple[Trigger, ...] = ()
    priority: Sourced | None = None
    current: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class Deal(_Boundary):
    """A deal/opportunity: only its status matters, for what it implies about people and orgs."""

    ref: SourceRef
    status: Sourced
    person_refs: tuple[SourceRef, ...] = ()
    organization_refs: tuple[SourceRef, ...] = ()


@dataclass(slots=True)
class Change(_Boundary):
    """One field of one record to change, and the rule and reason behind it.

    `step` orders changes to the same field: HubSpot only moves `lifecyclestage` forward,
    so a backward move is a clear (step 0) followed by a set (step 1) in separate requests.
    """

    system: System
    object_type: str
    record_id: str
    field: str
    before: Any
    after: Any
    rule: str
    reason: str
    step: int = 0

    @property
    def ref(self) -> SourceRef:
        return SourceRef(system=self.system, object_type=self.object_type, record_id=self.record_id)
