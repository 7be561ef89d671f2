"""Every error crmsync raises, grouped by how the caller recovers.

    CrmsyncError
    ├── ConfigurationError          terminal: fix a file or a setting, then rerun (exit 2)
    │   ├── MappingError            mapping YAML problems, each with file:line:col
    │   ├── SettingsError           a missing or invalid setting, and where we looked
    │   ├── ProjectFileError        crmsync.toml is malformed (file, line and key)
    │   ├── MissingScopes           the CRM refused a call: the token lacks a scope
    │   └── RunRefused              a guard stopped a run before it wrote: rerun with the
    │       │                       flag the message names once you have read the plan
    │       ├── MappingChanged      the mapping is not the one pinned in the state DB
    │       ├── EmptyState          a sync on a state DB nothing was ever written from
    │       └── BlastRadiusExceeded more records or downgrades than the configured limits
    ├── ApiError                    a CRM answered badly (system, operation, status, code)
    │   ├── RetriableApiError       429, 5xx, timeouts, dropped connections, row locks
    │   │   └── RateLimitedError    429 with the server's policy and Retry-After
    │   └── FatalApiError           retrying cannot help (validation, permissions)
    │       └── AuthenticationError bad or expired credentials we cannot refresh
    │           └── CredentialsRejected  the configured credentials themselves were refused
    │                                    (also a ConfigurationError: fix a setting, exit 2)
    ├── RunStoppedEarly             resumable: rerun later continues (exit 3)
    │   ├── BudgetExhausted         the client-side API budget for this run is used
    │   ├── BulkJobPending          a Salesforce Bulk job is still running; the next run
    │   │                           collects its results
    │   ├── RunLockHeld             another run holds the state lock
    │   ├── RunLockLost             another run took this run's lock; it stopped writing
    │   └── RunPaused               an admin paused crmsync (`crmsync pause`): the run
    │                               writes nothing more, and ends "paused" (exit 0) until
    │                               `crmsync resume`
    ├── StateStoreError             the state DB is unusable (corrupt, read-only, full,
    │                               locked): fix the file or the disk, then rerun (exit 4)
    └── RecordRejected              skippable: one record is bad, the batch goes on

Messages never contain secrets: API errors keep only status, code and the server's message,
and `scrub` removes anything that looks like a token before text is stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BlastRadiusExceeded",
    "BudgetExhausted",
    "BulkJobPending",
    "ConfigurationError",
    "CredentialsRejected",
    "CrmsyncError",
    "EmptyState",
    "FatalApiError",
    "MappingChanged",
    "MappingError",
    "MappingProblem",
    "MissingScopes",
    "ProjectFileError",
    "RateLimitedError",
    "RecordRejected",
    "RetriableApiError",
    "RunLockHeld",
    "RunLockLost",
    "RunPaused",
    "RunRefused",
    "RunStoppedEarly",
    "SettingsError",
    "StateStoreError",
    "register_secret",
    "scrub",
    "scrubbed_json",
]

# (pattern, a substring without which it cannot match): reports scrub thousands of short
# strings, and a substring test is far cheaper than a case-insensitive regex.
_SECRET_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), "bearer"),
    (re.compile(r"(?i)((?:access_token|client_secret|password|token|sid)=)[^&\s\"']+"), "="),
    (re.compile(r"(?i)(\"(?:access_token|client_secret|password|refresh_token)\"\s*:\s*\")[^\"]+"),
     '"'),
]


_KNOWN_SECRETS: set[str] = set()
_LONGEST_FIRST: list[str] = []  # a secret containing another is replaced whole
_SHORTEST_SECRET = 6  # shorter values would blank ordinary words wherever they occur


def register_secret(value: str | None) -> None:
    """Remember a secret's literal value, so `scrub` removes it from any text, wherever it is
    stored or printed: configured credentials when settings load, and every session token a
    CRM issues during a run (a server may quote either back in an error message)."""
    if value and len(value) >= _SHORTEST_SECRET and value not in _KNOWN_SECRETS:
        _KNOWN_SECRETS.add(value)
        _LONGEST_FIRST[:] = sorted(_KNOWN_SECRETS, key=len, reverse=True)


def scrub(text: str, *secrets: str | None) -> str:
    """Remove bearer tokens, token-like query parameters, every registered secret and the
    given literal secrets."""
    given = {s for s in secrets if s}
    ordered = sorted(given | _KNOWN_SECRETS, key=len, reverse=True) if given else _LONGEST_FIRST
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, "***")
    lowered = text.lower()
    for pattern, needed in _SECRET_PATTERNS:
        if needed in lowered:
            text = pattern.sub(r"\1***", text)
    return text


def scrubbed_json(data: Any) -> str:
    """JSON for machines, every string in it scrubbed (before encoding, so escaping stays
    valid): reports, and the error objects even the last line of defence prints."""
    return json.dumps(_scrubbed(data), indent=2, default=lambda value: scrub(str(value)))


def _scrubbed(data: Any) -> Any:
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, dict):
        return {_scrubbed(key): _scrubbed(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_scrubbed(item) for item in data]
    return data


class CrmsyncError(Exception):
    """Base of every error crmsync raises on purpose."""


# --- terminal: configuration ----------------------------------------------------------


class ConfigurationError(CrmsyncError):
    """Terminal until an admin fixes a file or a setting."""


@dataclass(frozen=True, order=True)
class MappingProblem:
    """One problem in a mapping file, located precisely enough for an editor to jump to."""

    file: str
    line: int
    column: int
    message: str
    yaml_path: str = ""

    def __str__(self) -> str:
        where = f" (at {self.yaml_path})" if self.yaml_path else ""
        return f"{self.file}:{self.line}:{self.column}: {self.message}{where}"


class MappingError(ConfigurationError):
    """A mapping file (or set of files) failed to load; nothing from it was used."""

    def __init__(self, problems: list[MappingProblem]) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in mapping"
        super().__init__(head + ":\n" + "\n".join(str(p) for p in self.problems))


class SettingsError(ConfigurationError):
    """A setting is missing or invalid; the message lists every place we looked."""


class ProjectFileError(ConfigurationError):
    """The project file (crmsync.toml) cannot be used; the message names the file, the line
    and the key, so that an admin can fix it before the next scheduled run."""


class RunRefused(ConfigurationError):
    """A guard stopped a run after it planned and before it wrote anything (exit 2).

    Not a broken setting: the run would do something an admin should look at first. The
    message says what, and `flag` is the command-line option that lets the run through once
    they have; `guard` names the guard in reports ("mapping_pin", "empty_state",
    "blast_radius")."""

    guard = ""
    flag = ""


class MappingChanged(RunRefused):
    """The run's mapping is not the one pinned in the state DB (a forgotten --mapping)."""

    guard, flag = "mapping_pin", "--accept-mapping-change"


class EmptyState(RunRefused):
    """A writing sync on a state DB that no run has written from: it would be a backfill
    without its progress, its resumability and its name."""

    guard, flag = "empty_state", "--allow-empty-state"


class BlastRadiusExceeded(RunRefused):
    """The run would write more records, or move more lifecycle stages back, than the
    configured limits allow."""

    guard, flag = "blast_radius", "--confirm-large"


class MissingScopes(ConfigurationError):
    """The CRM answered that the token lacks scopes a call needs (HubSpot 403 MISSING_SCOPES);
    an admin grants them to the app. Not a connectivity problem, and retrying cannot help."""

    def __init__(self, message: str, *, system: str, scopes: list[str]) -> None:
        super().__init__(message)
        self.system = system
        self.scopes = scopes


# --- API errors --------------------------------------------------------------------------


class ApiError(CrmsyncError):
    """A CRM answered with an error; carries structured, secret-free details."""

    def __init__(
        self,
        message: str,
        *,
        system: str,
        operation: str = "",
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self.system = system
        self.operation = operation
        self.status = status
        self.code = code
        parts = [system]
        if operation:
            parts.append(operation)
        if status is not None:
            parts.append(f"HTTP {status}")
        if code:
            parts.append(code)
        super().__init__(f"{' '.join(parts)}: {scrub(message)}")


class RetriableApiError(ApiError):
    """Transient: the same request may succeed later (429, 5xx, timeouts, row locks)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimitedError(RetriableApiError):
    """The server throttled us; `policy` is HubSpot's policyName when given."""

    def __init__(self, message: str, *, policy: str | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.policy = policy


class FatalApiError(ApiError):
    """Retrying the same request cannot succeed."""


class AuthenticationError(FatalApiError):
    """Credentials were refused and cannot be refreshed with what we were given."""


class CredentialsRejected(AuthenticationError, ConfigurationError):
    """The login itself was refused (wrong client secret, key, user or password; an unknown
    client id): no retry or refresh can help until an admin fixes a setting, so it is a
    ConfigurationError as well as an AuthenticationError."""


# --- resumable stops -----------------------------------------------------------------


class RunStoppedEarly(CrmsyncError):
    """The run stopped cleanly before the end; the next run resumes (exit 3)."""


class BudgetExhausted(RunStoppedEarly):
    """The configured share of an API allocation is used up."""


class RunLockHeld(RunStoppedEarly):
    """Another run holds the state lock."""


class BulkJobPending(RunStoppedEarly):
    """A Salesforce Bulk API job did not finish within the wait allowed: the run stops before
    sending anything else; the next run collects the job's results from the CRM (its id is in
    the state DB) instead of sending the same records again."""


class RunLockLost(RunStoppedEarly):
    """Another run took this run's lock (it found the heartbeat stale): this run stops before
    its next write, so two runs never write at once. The next run continues."""


class RunPaused(RunStoppedEarly):
    """An admin paused crmsync (`crmsync pause`): the run writes nothing more. Not a failure,
    so it ends "paused" with exit 0; `crmsync resume` lets the next run continue."""


# --- the state DB ----------------------------------------------------------------------


class StateStoreError(CrmsyncError):
    """The state DB cannot be used: not a SQLite file, read-only, disk full, locked too long.

    Not a configuration error (the settings are fine) and not resumable by itself: someone
    must fix the file or the disk. A run ends as failed (exit 4) with the path and the cause.
    """


# --- skippable records ---------------------------------------------------------------


class RecordRejected(CrmsyncError):
    """One record cannot be used; carries where it came from and why."""

    def __init__(
        self,
        reason: str,
        *,
        system: str,
        object_type: str,
        record_id: str | None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.system = system
        self.object_type = object_type
        self.record_id = record_id
        self.field = field
        where = f"{system} {object_type} {record_id or '<no id>'}"
        if field:
            where += f" field {field}"
        super().__init__(f"{where}: {reason}")
