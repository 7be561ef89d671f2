"""`crmsync check`: can we reach each CRM, log in, and find every field the mapping uses?

A missing field otherwise shows up mid-run as a rejected write or, worse, as a property the
API silently leaves out of a read. Each finding says what is wrong and how an admin fixes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from connector.exceptions import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    CrmsyncError,
    MissingScopes,
)
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
    return findings


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
                    _create_fix(system, object_type, name),
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
                    _writable_fix(system, object_type, name),
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


def _create_fix(system: str, object_type: str, name: str) -> str:
    if system == "hubspot":
        return (
            f"create the property in HubSpot: Settings > Data Management > Properties > "
            f"{object_type} > Create property, internal name '{name}' "
            f"(or POST /crm/v3/properties/{object_type} with name, label, type, fieldType, "
            "groupName)"
        )
    suffix = "" if name.endswith("__c") else " (custom fields' API names end in __c)"
    return (
        f"create the field in Salesforce: Setup > Object Manager > {object_type} > Fields & "
        f"Relationships > New, API name '{name}'{suffix}, and give the integration user "
        "field-level access to it"
    )


def _writable_fix(system: str, object_type: str, name: str) -> str:
    if system == "hubspot":
        return f"'{name}' on {object_type} is read-only or calculated; map a writable property"
    return (
        f"give the integration user Edit access to {object_type}.{name} (field-level security), "
        "or map a writable field"
    )


def _auth_fix(system: str) -> str:
    if system == "hubspot":
        return (
            "check CRMSYNC_HUBSPOT_ACCESS_TOKEN: a private-app token with the crm.objects.* and "
            "crm.schemas.* read/write scopes"
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
            "> the app > Scopes (crmsync needs crm.objects.<type>.read and .write and "
            "crm.schemas.<type>.read for contacts, companies and deals)"
        )
    return f"grant {named} to the integration user or connected app"


def _connect_fix(system: str) -> str:
    name = "CRMSYNC_HUBSPOT_BASE_URL" if system == "hubspot" else "CRMSYNC_SALESFORCE_INSTANCE_URL"
    return f"check {name}, the network and CRMSYNC_CA_BUNDLE (if a private CA is used)"
