"""The mapping file format as typed models: the single source of the JSON Schema.

Structure (keys, types, required fields) is checked here by pydantic; meanings that refer to
each other (stages, objects, reverse maps) are checked in `_check.py`, where the messages can
name the allowed values and the rule that makes a value reachable.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from connector.model import DealStatus, LifecycleStage, Priority, Relationship

STAGES = [s.value for s in LifecycleStage]
LABEL_ROLES = ("person_stage", "organization_type", "deal_status", "trigger_type")
WRITE_SOURCES = {
    "person.stage": "person",
    "person.fit": "person",
    "person.priority": "person",
    "organization.fit": "organization",
    "organization.priority": "organization",
    "organization.relationship": "organization",
    "organization.trigger_active": "organization",
    "organization.trigger_type": "organization",
    "organization.trigger_date": "organization",
}

_MEANING_SCHEMA = {
    "anyOf": [
        {"type": "null", "description": "the value carries no information: try the next field"},
        {"type": "string", "enum": STAGES, "description": "shorthand for {stage: ...}"},
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "stage": {"type": "string", "enum": STAGES},
                "relationship": {"type": "string", "enum": [r.value for r in Relationship]},
                "fit": {"type": "boolean"},
                "deal": {"type": "string", "enum": [d.value for d in DealStatus]},
            },
        },
    ]
}
Meaning = Annotated[Any, WithJsonSchema(_MEANING_SCHEMA)]
ReverseValue = Annotated[
    Any, WithJsonSchema({"type": ["string", "number", "boolean", "null"]})
]


class _Spec(BaseModel):
    # strict: YAML's `yes`, "180" or 1 are not silently coerced into bools, ints or strings
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class PicklistField(_Spec):
    """How one system field's values map to canonical meanings."""

    values: dict[str, Meaning] = Field(
        description="system value -> canonical meaning; list values in the order the CRM "
        "shows them (HubSpot lifecyclestage uses this order to tell forward from backward)"
    )
    labels: Literal["person_stage", "organization_type", "deal_status"] | None = Field(
        None, description="also accept the selected label packs' localised values for this role"
    )
    unknown: Literal["reject", "next"] = Field(
        "reject", description="a value not listed: reject the record, or try the next field"
    )


class FactSpec(_Spec):
    """Where an organisation fact lives in each system, and how to normalise its values."""

    hubspot: str | None = Field(None, description="property on HubSpot companies")
    salesforce: str | None = Field(None, description="field on Salesforce Account")
    type: Literal["text", "number", "domain"] = "text"
    values: dict[str, str] = Field(
        default_factory=dict, description="raw value -> canonical value (text facts)"
    )


class IcpRule(_Spec):
    """A condition on one fact, or a group of rules combined with all/any."""

    name: str | None = None
    fact: str | None = None
    in_: list[str | int | float] | None = Field(None, alias="in")
    not_in: list[str | int | float] | None = None
    between: list[float] | None = Field(None, description="[min, max], both inclusive")
    at_least: float | None = None
    at_most: float | None = None
    all: list[IcpRule] | None = None
    any: list[IcpRule] | None = None


class TriggerSource(_Spec):
    """A field that records an event: a date field, or a picklist plus a date field."""

    system: Literal["hubspot", "salesforce"]
    object: str
    field: str
    date_field: str | None = Field(
        None, description="with a picklist `field`: where the event date is"
    )
    values: list[str] | None = Field(
        None, description="picklist values of `field` that mean this trigger fired"
    )
    labels: Literal["trigger_type"] | None = None


class TriggerRule(_Spec):
    polarity: Literal["positive", "suppressing"]
    active_days: int = Field(gt=0, le=3650, description="how long after the event it counts")
    sources: list[TriggerSource] = Field(min_length=1)


class PrecedenceRule(_Spec):
    winner: Literal["most_advanced", "hubspot", "salesforce"] = "most_advanced"
    allow_downgrade: bool = False
    tie_breaker: list[Literal["hubspot", "salesforce"]] = ["salesforce", "hubspot"]


class Precedence(_Spec):
    person_stage: PrecedenceRule = Field(default_factory=PrecedenceRule, alias="person.stage")
    organization_relationship: PrecedenceRule = Field(
        default_factory=lambda: PrecedenceRule(winner="salesforce"),
        alias="organization.relationship",
    )
    organization_facts: PrecedenceRule = Field(
        default_factory=lambda: PrecedenceRule(winner="salesforce"), alias="organization.facts"
    )


RelationshipName = Literal["none", "customer", "partner", "other"]
DealStatusName = Literal["open", "won", "lost"]


class DealEffect(_Spec):
    stage: str | None = Field(None, description="stage the deal's people reach")
    relationship: RelationshipName | None = None


class WriteTarget(_Spec):
    """One field that receives a canonical value, with the reverse map (canonical -> system)."""

    from_: Literal[tuple(WRITE_SOURCES)] = Field(alias="from")  # type: ignore[valid-type]
    values: dict[str, ReverseValue] | None = Field(
        None, description="canonical value -> system value; ~ means never write that value"
    )
    confirm: bool = Field(False, description="read the record back to confirm the write")


class MappingSpec(_Spec):
    """A crmsync mapping file."""

    version: Literal[1] = 1
    description: str | None = None
    label_packs: list[str] = Field(default_factory=list)
    picklists: dict[str, dict[str, dict[str, PicklistField]]] = Field(
        default_factory=dict, description="system -> object -> field -> value map"
    )
    organization_facts: dict[str, FactSpec] = Field(default_factory=dict)
    icp: IcpRule | None = None
    triggers: dict[str, TriggerRule] = Field(default_factory=dict)
    precedence: Precedence = Field(default_factory=Precedence)
    deal_effects: dict[DealStatusName, DealEffect] = Field(default_factory=dict)
    write_back: dict[str, dict[str, dict[str, WriteTarget]]] = Field(
        default_factory=dict, description="system -> object -> field -> what it receives"
    )


class LabelPackSpec(_Spec):
    """Localised picklist labels, by role: label -> canonical meaning."""

    description: str | None = None
    person_stage: dict[str, str] = Field(default_factory=dict)
    organization_type: dict[str, Meaning] = Field(default_factory=dict)
    deal_status: dict[str, str] = Field(default_factory=dict)
    trigger_type: dict[str, str] = Field(default_factory=dict)


PRIORITIES = [p.value for p in Priority]
RELATIONSHIPS = [r.value for r in Relationship]
