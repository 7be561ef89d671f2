"""Pre-flight: before a run's first write, check every field it will write against the CRM.

A field the portal lacks, an option removed from a dropdown or a date property created as a
date-and-time otherwise shows up mid-run: HubSpot refuses a whole batch (400), Salesforce
rejects record after record, or the value is stored but means something else. One describe
per object the run writes (HubSpot properties API, Salesforce describe) finds all of that
up front, so the run stops with exit 2 naming every problem, having written nothing.

`write_problems` is pure (a mapping and one object's described fields in, problems out);
`crmsync check` reports the same problems. `refuse_unwritable` is the run's hook. What
differs per CRM (its field types, what it calls a field, its menus) is the catalog's
(`connector.catalog.FieldAdmin`); this module holds none of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as TypingMapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from connector.catalog import CATALOG
from connector.exceptions import ConfigurationError
from connector.model import LifecycleStage, Priority, Relationship

if TYPE_CHECKING:  # connector.systems imports this module (check.py): no cycle at run time
    from connector.mapping import Mapping, WriteRule
    from connector.systems.base import CrmAdapter, FieldInfo

__all__ = [
    "WriteProblem",
    "create_fix",
    "refuse_unwritable",
    "values_written",
    "writable_fix",
    "write_problems",
]

ProblemKind = Literal["missing", "read-only", "type", "option"]

# What each write-back source holds: a calendar date, a true/false flag, or a word.
DATE_SOURCES = frozenset({"organization.trigger_date"})
FLAG_SOURCES = frozenset({"person.fit", "organization.fit", "organization.trigger_active"})

# What a rule of each kind writes, as a problem names it. Which field types can hold it, and
# how an admin fixes a field that cannot, are the CRM's: `CATALOG[system].admin`.
WRITES = {"date": "calendar dates (YYYY-MM-DD)", "flag": "true/false", "text": "words"}


@dataclass(frozen=True)
class WriteProblem:
    """One reason a field cannot take what the mapping writes to it, and how to fix it."""

    system: str
    object_type: str
    field: str
    kind: ProblemKind
    detail: str
    fix: str

    def __str__(self) -> str:
        return f"{self.system} {self.object_type}.{self.field} {self.detail}; {self.fix}"


def refuse_unwritable(
    mapping: Mapping, adapters: TypingMapping[str, CrmAdapter], objects: Iterable[tuple[str, str]]
) -> None:
    """Raise ConfigurationError (exit 2) listing every problem with the fields the run writes
    on `objects` (the (system, object) pairs it has changes for): one describe call each."""
    problems: list[WriteProblem] = []
    for system, object_type in objects:
        described = adapters[system].describe_fields(object_type)
        problems.extend(write_problems(mapping, system, object_type, described))
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigurationError(
            f"refusing to write: {len(problems)} problem(s) with the fields this run would "
            f"write, found before its first write (nothing was written; `crmsync check` "
            f"lists these and more):\n{lines}")


def write_problems(
    mapping: Mapping, system: str, object_type: str, described: dict[str, FieldInfo]
) -> list[WriteProblem]:
    """Every problem with the write-back rules of one object, given its described fields."""
    problems: list[WriteProblem] = []
    for rule in mapping.write_rules(system, object_type):
        problems.extend(_rule_problems(mapping, rule, described))
    return problems


def values_written(mapping: Mapping, rule: WriteRule) -> list[Any] | None:
    """Every value `rule` can write, as it goes on the wire (clearing aside), or None when
    they are open-ended (dates)."""
    if rule.values is not None:
        return _unique(v for v in rule.values.values() if v is not None)
    domain = canonical_values(mapping, rule.source)
    if domain is None:
        return None
    out = []
    for canonical in domain:
        write, value = rule.system_value(canonical)
        if write and value is not None:
            out.append(value)
    return _unique(out)


def canonical_values(mapping: Mapping, source: str) -> list[Any] | None:
    """Every canonical value a write-back source can take, or None for open-ended ones
    (trigger dates). Pre-flight and the check of a saved plan (`apply`) both read it."""
    attribute = source.split(".", 1)[1]
    if attribute == "stage":
        return [stage.value for stage in LifecycleStage]
    if attribute in ("fit", "trigger_active"):
        return [True, False]
    if attribute == "priority":
        return [priority.value for priority in Priority]
    if attribute == "relationship":
        return [relationship.value for relationship in Relationship]
    if attribute == "trigger_type":
        return sorted({trigger.type for trigger in mapping.triggers})
    return None


def _rule_problems(
    mapping: Mapping, rule: WriteRule, described: dict[str, FieldInfo]
) -> list[WriteProblem]:
    info = _find(described, rule.field)

    def problem(kind: ProblemKind, detail: str, fix: str) -> WriteProblem:
        return WriteProblem(rule.system, rule.object, rule.field, kind, detail, fix)

    if info is None:
        return [problem("missing", f"does not exist ({rule.rule} writes it)",
                        create_fix(rule.system, rule.object, rule.field))]
    found = []
    if not info.writable:
        found.append(problem("read-only", f"is read-only ({rule.rule} writes it)",
                             writable_fix(rule.system, rule.object, rule.field)))
    type_problem = _type_problem(rule, info)
    if type_problem is not None:
        found.append(problem("type", *type_problem))
        return found
    values = values_written(mapping, rule)
    missing = _not_options(rule, info, values or [])
    if missing:
        found.append(problem("option", _missing_detail(rule, info, missing),
                             _option_fix(rule, missing)))
    return found


def _type_problem(rule: WriteRule, info: FieldInfo) -> tuple[str, str] | None:
    """(detail, fix) when the field's type cannot hold what the rule writes."""
    admin, kind = CATALOG[rule.system].admin, _kind(rule)
    if admin.holds(kind, info.type):
        return None
    return (f"is a {info.type} {admin.noun}, but {rule.rule} writes {WRITES[kind]}",
            f"point {rule.rule} at {admin.wanted[kind]}: create one in "
            f"{admin.fields_page(rule.object)}")


def _not_options(rule: WriteRule, info: FieldInfo, values: list[Any]) -> list[str]:
    """The written values the field would refuse: not among its options (a Salesforce
    checkbox takes only true and false). A field listing no options takes any text."""
    if info.type in CATALOG[rule.system].admin.true_false_types:
        return [_text(v) for v in values if _text(v) not in ("true", "false")]
    if not info.options:
        return []
    return [_text(v) for v in values if _text(v) not in info.options]


def _kind(rule: WriteRule) -> str:
    if rule.source in DATE_SOURCES:
        return "date"
    return "flag" if rule.source in FLAG_SOURCES else "text"


def _text(value: Any) -> str:
    """A written value as the CRM lists options: True -> "true", an enum -> its value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _unique(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _find(described: dict[str, FieldInfo], name: str) -> FieldInfo | None:
    """Salesforce API names are case-insensitive; HubSpot's are lower case anyway."""
    if name in described:
        return described[name]
    lowered = name.lower()
    return next((info for key, info in described.items() if key.lower() == lowered), None)


def _missing_detail(rule: WriteRule, info: FieldInfo, missing: list[str]) -> str:
    named = ", ".join(repr(v) for v in missing)
    noun = "option" if len(missing) == 1 else "options"
    has = ", ".join(info.options) if info.options else "true, false"
    return f"has no {noun} {named} (its options: {has}), which {rule.rule} writes"


def _option_fix(rule: WriteRule, missing: list[str]) -> str:
    named = "it" if len(missing) == 1 else "them"
    where = CATALOG[rule.system].admin.add_options(rule.object, rule.field, named)
    return f"{where}, or change the values of {rule.rule}"


def create_fix(system: str, object_type: str, name: str) -> str:
    """How an admin creates a field the mapping names."""
    return CATALOG[system].admin.create_fix(object_type, name)


def writable_fix(system: str, object_type: str, name: str) -> str:
    """How an admin lets crmsync write a field it can only read."""
    return CATALOG[system].admin.writable_fix(object_type, name)
