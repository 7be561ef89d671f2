"""`crmsync check`: can we reach each CRM, log in, and find every field the mapping uses?

A missing field otherwise shows up mid-run as a rejected write or, worse, as a property the
API silently leaves out of a read. Each finding says what is wrong and how an admin fixes it.

With a compiled mapping it also compares what the fields hold (API review F9): every value a
reverse map writes is an option, types fit (date, not datetime; a checkbox), HubSpot's
lifecycle stage order matches the mapping's (it decides forward vs backward moves), and CRM
picklist values the mapping does not know are listed (records holding them are rejected).
The write checks are the run's pre-flight (connector/preflight.py); errors exit 1, the
order and unknown values are warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from connector.catalog import (
    FORWARD_ONLY_FIELDS,
    HUBSPOT_FIELD_CREATION_SCOPES,
    HUBSPOT_SCOPES,
)
from connector.exceptions import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    CrmsyncError,
    MissingScopes,
)
from connector.mapping import FieldMap, Mapping
from connector.preflight import create_fix, writable_fix, write_problems
from connector.settings import Settings
from connector.systems.base import CrmAdapter, FieldInfo

__all__ = [
    "CheckFinding",
    "CheckReport",
    "MappingFields",
    "check_systems",
    "run_check",
]

Level = Literal["ok", "warning", "error"]
SYSTEMS = ("hubspot", "salesforce")


class MappingFields(Protocol):
    """What `check` needs from a mapping: fields it reads and writes, per object type."""

    def fields_read(self, system: str) -> dict[str, set[str]]: ...

    def fields_written(self, system: str) -> dict[str, set[str]]: ...


@dataclass(frozen=True)
class CheckFinding:
    """One thing checked: `level` error means the sync cannot work until `fix` is done."""

    system: str
    what: str
    level: Level
    detail: str = ""
    fix: str = ""
    object_type: str | None = None
    field: str | None = None


@dataclass
class CheckReport:
    """Every finding, in the order checked; `ok` when none is an error."""

    findings: list[CheckFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[CheckFinding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def settings_missing(self) -> bool:
        """A setting is missing or invalid: a configuration error (exit 2), not a CRM one."""
        return any(f.what == "settings" for f in self.errors)

    @property
    def missing_fields(self) -> list[CheckFinding]:
        return [f for f in self.errors if f.field is not None]

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "findings": [f.__dict__ for f in self.findings],
        }


def run_check(
    settings: Settings,
    mapping: MappingFields,
    build: dict[str, Callable[[Settings], CrmAdapter]] | None = None,
) -> CheckReport:
    """Build each adapter from settings (a missing setting is a finding, not a crash) and
    check it against the mapping."""
    if build is None:
        from connector.systems.factory import build_hubspot, build_salesforce  # noqa: PLC0415

        build = {"hubspot": build_hubspot, "salesforce": build_salesforce}
    report = CheckReport()
    adapters: dict[str, CrmAdapter] = {}
    for system in SYSTEMS:
        try:
            adapters[system] = build[system](settings)
        except ConfigurationError as error:
            report.findings.append(
                CheckFinding(system, "settings", "error", str(error), "set the missing settings")
            )
    report.findings.extend(check_systems(adapters, mapping).findings)
    return report


def check_systems(adapters: dict[str, CrmAdapter], mapping: MappingFields) -> CheckReport:
    """Connectivity, authentication and every mapped field, for each adapter given."""
    report = CheckReport()
    for system, adapter in adapters.items():
        report.findings.extend(_check_system(system, adapter, mapping))
    return report


def _check_system(system: str, adapter: CrmAdapter, mapping: MappingFields) -> list[CheckFinding]:
    read = mapping.fields_read(system)
    written = mapping.fields_written(system)
    objects = sorted(set(read) | set(written))
    if not objects:
        return [CheckFinding(system, "mapping", "warning", "the mapping uses no object here")]
    findings: list[CheckFinding] = []
    for position, object_type in enumerate(objects):
        try:
            described = adapter.describe_fields(object_type)
        except AuthenticationError as error:
            return [
                *findings,
                CheckFinding(system, "authentication", "error", str(error), _auth_fix(system)),
            ]
        except MissingScopes as error:
            # The server answered and knew the token: not connectivity. Other objects may
            # still be readable, so go on.
            findings.append(
                CheckFinding(
                    system, "scopes", "error", str(error), _scopes_fix(system, error.scopes),
                    object_type=object_type,
                )
            )
            continue
        except (ApiError, CrmsyncError) as error:
            what = "connectivity" if position == 0 else "describe"
            findings.append(
                CheckFinding(
                    system, what, "error", str(error), _connect_fix(system), object_type=object_type
                )
            )
            if position == 0:
                return findings
            continue
        if not any(f.what == "connectivity and authentication" for f in findings):
            findings.append(CheckFinding(system, "connectivity and authentication", "ok"))
        findings.extend(
            _check_fields(
                system,
                object_type,
                described,
                read.get(object_type, set()),
                written.get(object_type, set()),
            )
        )
        if isinstance(mapping, Mapping):
            findings.extend(_compare_values(system, object_type, described, mapping))
    return findings


def _compare_values(
    system: str, object_type: str, described: dict[str, FieldInfo], mapping: Mapping
) -> list[CheckFinding]:
    """What the fields hold against what the mapping writes and reads (existence and
    writability are `_check_fields`'s findings)."""
    findings = []
    for problem in write_problems(mapping, system, object_type, described):
        if problem.kind in ("type", "option"):
            what = "field type" if problem.kind == "type" else "field values"
            findings.append(CheckFinding(
                system, what, "error", f"{object_type}.{problem.field} {problem.detail}",
                problem.fix, object_type, problem.field))
    for field_map in mapping.picklists.get((system, object_type), ()):
        info = described.get(field_map.field) or _case_insensitive(described, field_map.field)
        if info is None:
            continue
        findings.extend(_unknown_values(system, object_type, field_map, info))
        if (system, object_type, field_map.field) in FORWARD_ONLY_FIELDS:
            findings.extend(_stage_order(system, object_type, field_map, info))
    return findings


def _unknown_values(
    system: str, object_type: str, field_map: FieldMap, info: FieldInfo
) -> list[CheckFinding]:
    """CRM options the mapping does not list: each record holding one is rejected on read
    (unless the field says `unknown: next`)."""
    if field_map.unknown == "next":
        return []
    unknown = [option for option in info.options if option not in field_map.values]
    if not unknown:
        return []
    named = ", ".join(repr(v) for v in unknown)
    return [CheckFinding(
        system, "unknown values", "warning",
        f"{object_type}.{field_map.field} has {len(unknown)} value(s) the mapping does not "
        f"list: {named}; records holding one are rejected when read",
        f"add each under {field_map.rule} with what it means (~ if it says nothing), or "
        "set `unknown: next` there to try the next field instead",
        object_type, field_map.field)]


def _stage_order(
    system: str, object_type: str, field_map: FieldMap, info: FieldInfo
) -> list[CheckFinding]:
    """HubSpot lists lifecycle stages by `displayOrder` and only moves a record forward in
    that order; crmsync judges forward and backward from the mapping's order. Where the two
    disagree, a forward move is sent as clear-then-set, or a backward one is silently
    ignored and never confirmed. Properties API: option `displayOrder`,
    https://developers.hubspot.com/docs/api/crm/properties"""
    portal = [option for option in info.options if option in field_map.values]
    ours = {value: position for position, value in enumerate(field_map.values)}
    crossed = [(a, b) for i, a in enumerate(portal) for b in portal[i + 1:] if ours[a] > ours[b]]
    if not crossed:
        return []
    shown = "; ".join(f"HubSpot lists {a!r} before {b!r}, the mapping after it"
                      for a, b in crossed[:5])
    more = f" (and {len(crossed) - 5} more)" if len(crossed) > 5 else ""
    return [CheckFinding(
        system, "lifecycle stage order", "warning",
        f"{object_type}.{field_map.field}: {shown}{more}. crmsync tells a forward move from a "
        "backward one by the mapping's order, HubSpot by its own",
        f"list the values of {field_map.rule} in the portal's order: {', '.join(portal)} "
        f"(or reorder the stages in HubSpot: Settings > Objects > {object_type.capitalize()} "
        "> Lifecycle stage tab)",
        object_type, field_map.field)]


def _check_fields(
    system: str,
    object_type: str,
    described: dict[str, FieldInfo],
    read: Iterable[str],
    written: Iterable[str],
) -> list[CheckFinding]:
    findings = []
    written = set(written)
    wanted = sorted(set(read) | written)
    for name in wanted:
        info = described.get(name) or _case_insensitive(described, name)
        if info is None:
            findings.append(
                CheckFinding(
                    system,
                    "field exists",
                    "error",
                    f"{object_type}.{name} does not exist",
                    create_fix(system, object_type, name),
                    object_type,
                    name,
                )
            )
        elif name in written and not info.writable:
            findings.append(
                CheckFinding(
                    system,
                    "field writable",
                    "error",
                    f"{object_type}.{name} is read-only",
                    writable_fix(system, object_type, name),
                    object_type,
                    name,
                )
            )
    if not any(f.level == "error" for f in findings):
        findings.append(
            CheckFinding(
                system,
                "fields",
                "ok",
                f"{object_type}: {len(wanted)} mapped fields present",
                object_type=object_type,
            )
        )
    return findings


def _case_insensitive(described: dict[str, FieldInfo], name: str) -> FieldInfo | None:
    """Salesforce API names are case-insensitive; HubSpot's are lower case anyway."""
    lowered = name.lower()
    return next((info for key, info in described.items() if key.lower() == lowered), None)


def _auth_fix(system: str) -> str:
    if system == "hubspot":
        return (
            "check CRMSYNC_HUBSPOT_ACCESS_TOKEN: the access token of a private app with the "
            f"scopes {' '.join(HUBSPOT_SCOPES)}"
        )
    return (
        "check the Salesforce credentials (CRMSYNC_SALESFORCE_CLIENT_ID/_CLIENT_SECRET for "
        "client credentials, or the JWT settings) and that the connected app is enabled"
    )


def _scopes_fix(system: str, scopes: list[str]) -> str:
    named = ", ".join(scopes) or "the scopes the error names"
    if system == "hubspot":
        return (
            f"grant {named} to the private app: HubSpot Settings > Integrations > Private Apps "
            f"> the app > Scopes. crmsync needs the scopes {' '.join(HUBSPOT_SCOPES)} (and, "
            "only for `crmsync fields --create hubspot`, "
            f"{' '.join(HUBSPOT_FIELD_CREATION_SCOPES)})"
        )
    return f"grant {named} to the integration user or connected app"


def _connect_fix(system: str) -> str:
    name = "CRMSYNC_HUBSPOT_BASE_URL" if system == "hubspot" else "CRMSYNC_SALESFORCE_INSTANCE_URL"
    return f"check {name}, the network and CRMSYNC_CA_BUNDLE (if a private CA is used)"
