"""Tenants: many HubSpot-Salesforce pairs served by one crmsync installation.

A tenant is a name and what makes one pair: its settings (an env file or a secrets
directory), its mapping and its state (a SQLite file of its own, or its rows in a PostgreSQL
database many tenants share). The registry is a folder with one `NAME.toml` per tenant
(`CRMSYNC_TENANTS_DIR`, default `./tenants`): adding a tenant writes one file, so two
administrators adding two tenants never edit the same file, and a worker reads only the
tenant it runs.

    # tenants/acme.toml
    env_file = "/etc/crmsync/acme.env"        # or: secrets_dir = "/run/secrets/acme"
    mapping = "/etc/crmsync/acme.yaml"        # optional: the settings' or the shipped one
    state = "postgresql://crmsync@db:5432/crmsync"   # optional: the settings' own
    sync_every = "15m"                        # the beat schedule; "off" for none

A tenant's settings come from its own files only, never from the process environment: a
worker serves many tenants, and a token in its environment would become every tenant's.
Relative paths in a tenant file are relative to the file's folder.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from connector.exceptions import ConfigurationError
from connector.state.location import check_tenant_name, parse_location

if TYPE_CHECKING:
    from connector.settings import Settings

__all__ = ["DEFAULT_SYNC_EVERY", "Tenant", "add_tenant", "list_tenants", "load_tenant",
           "parse_interval", "tenants_dir"]

TENANTS_DIR_VARIABLE = "CRMSYNC_TENANTS_DIR"
DEFAULT_SYNC_EVERY = timedelta(minutes=15)
_KEYS = ("env_file", "secrets_dir", "mapping", "state", "sync_every")
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h)$")


@dataclass(frozen=True)
class Tenant:
    """One pair. `state` None: the store the tenant's settings name. `sync_every` None:
    no beat schedule (run it by hand or by another scheduler)."""

    name: str
    source: Path
    env_file: Path | None = None
    secrets_dir: Path | None = None
    mapping: Path | None = None
    state: str | None = None
    sync_every: timedelta | None = DEFAULT_SYNC_EVERY

    def settings(self) -> Settings:
        """The tenant's settings, with its name, mapping and state: what `--tenant NAME`
        and a worker's task run with."""
        from connector.settings import load_settings  # noqa: PLC0415

        settings = load_settings(env_file=self.env_file, secrets_dir=self.secrets_dir,
                                 require_env_file=self.env_file is not None, environment=False)
        update: dict[str, object] = {"tenant": self.name}
        if self.mapping is not None:
            update["mapping_path"] = self.mapping
        if self.state is not None:
            update["state_url"] = self.state
        return settings.model_copy(update=update)

    def shown_state(self) -> str:
        """The state location as it may be printed (a password in a URL is hidden)."""
        return str(parse_location(self.state, self.name)) if self.state else "(its settings')"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "file": str(self.source),
                "env_file": str(self.env_file) if self.env_file else None,
                "secrets_dir": str(self.secrets_dir) if self.secrets_dir else None,
                "mapping": str(self.mapping) if self.mapping else None,
                "state": self.shown_state() if self.state else None,
                "sync_every_seconds": (self.sync_every.total_seconds() if self.sync_every
                                       else None)}


def tenants_dir(explicit: Path | None = None) -> Path:
    """The registry folder: `explicit`, else CRMSYNC_TENANTS_DIR, else ./tenants."""
    return explicit or Path(os.environ.get(TENANTS_DIR_VARIABLE) or "tenants")


def parse_interval(text: str, where: str) -> timedelta | None:
    """"90s", "15m", "1h" as a timedelta; "off" as None (no schedule)."""
    if text.strip().lower() == "off":
        return None
    match = _INTERVAL.match(text.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigurationError(f"{where}: sync_every {text!r} is not an interval; write "
                                 "e.g. \"90s\", \"15m\", \"1h\", or \"off\"")
    unit = {"s": "seconds", "m": "minutes", "h": "hours"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


def load_tenant(name: str, directory: Path | None = None) -> Tenant:
    """The tenant called `name`, or a ConfigurationError naming the registry and what is in it."""
    folder = tenants_dir(directory)
    check_tenant_name(name)
    file = folder / f"{name}.toml"
    if not file.is_file():
        known = [path.stem for path in sorted(folder.glob("*.toml"))]
        hint = difflib.get_close_matches(name, known, n=1)
        raise ConfigurationError(
            f"no tenant {name!r} in {folder.resolve()}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + (f"; known: {', '.join(known)}" if known else "; it has none")
            + ". Add one with `crmsync tenants add NAME --env-file FILE`")
    return _read(file)


def list_tenants(directory: Path | None = None) -> tuple[list[Tenant], list[str]]:
    """Every tenant of the registry, and a problem line for each file that cannot be read
    (one broken file never hides the others)."""
    tenants, problems = [], []
    folder = tenants_dir(directory)
    for file in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
        try:
            tenants.append(_read(file))
        except ConfigurationError as exc:
            problems.append(str(exc))
    return tenants, problems


def _read(file: Path) -> Tenant:
    name = file.stem
    try:
        check_tenant_name(name, f"tenant file {file}: the name")
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read tenant file {file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"tenant file {file}: byte offset {exc.start} is not UTF-8") \
            from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"tenant file {file}: {exc}") from None
    for key, value in data.items():
        if key not in _KEYS:
            hint = difflib.get_close_matches(key, _KEYS, n=1)
            raise ConfigurationError(
                f"tenant file {file}: unknown key {key!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; the keys are {', '.join(_KEYS)}")
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"tenant file {file}: {key} must be a non-empty string")
    if ("env_file" in data) == ("secrets_dir" in data):
        raise ConfigurationError(f"tenant file {file}: give exactly one of env_file and "
                                 "secrets_dir (where the tenant's settings and credentials are)")
    base = file.parent

    def path(key: str) -> Path | None:
        return (base / data[key]).resolve() if key in data else None

    state = data.get("state")
    if state is not None:
        parse_location(state, name)  # a bad URL is named here, not at the first run
        if not re.match(r"^[a-z][a-z0-9+.-]*:", state, re.I) and not Path(state).is_absolute():
            state = str(base / state)
    sync_every = (parse_interval(data["sync_every"], f"tenant file {file}")
                  if "sync_every" in data else DEFAULT_SYNC_EVERY)
    return Tenant(name=name, source=file, env_file=path("env_file"),
                  secrets_dir=path("secrets_dir"), mapping=path("mapping"), state=state,
                  sync_every=sync_every)


def add_tenant(name: str, *, env_file: Path | None = None, secrets_dir: Path | None = None,
               mapping: Path | None = None, state: str | None = None,
               sync_every: str | None = None, directory: Path | None = None,
               replace: bool = False) -> Tenant:
    """Check a tenant's parts and register it (one file, written whole, readable by its owner
    only: a state URL may hold a password). Nothing is written if a part is wrong."""
    check_tenant_name(name)
    folder = tenants_dir(directory)
    file = folder / f"{name}.toml"
    if file.exists() and not replace:
        raise ConfigurationError(f"tenant {name!r} exists ({file}); pass --replace to "
                                 "overwrite it")
    if (env_file is None) == (secrets_dir is None):
        raise ConfigurationError("give exactly one of --env-file and --secrets-dir: where the "
                                 "tenant's settings and credentials are")
    if env_file is not None and not env_file.is_file():
        raise ConfigurationError(f"settings file {env_file} not found (given with --env-file)")
    if secrets_dir is not None and not secrets_dir.is_dir():
        raise ConfigurationError(f"secrets directory {secrets_dir} not found")
    if mapping is not None:
        from connector.mapping import load_mapping  # noqa: PLC0415 - validates it whole

        load_mapping(mapping)
    if state is not None:
        parse_location(state, name)
    if sync_every is not None:
        parse_interval(sync_every, "--sync-every")
    Tenant(name=name, source=file, env_file=env_file, secrets_dir=secrets_dir).settings()
    lines = [f"# crmsync tenant {name!r}: `crmsync tenants check {name}` checks it"]
    for key, value in (("env_file", env_file), ("secrets_dir", secrets_dir),
                       ("mapping", mapping), ("state", state), ("sync_every", sync_every)):
        if value is not None:
            shown = value if key in ("state", "sync_every") else str(Path(value).resolve())
            if key == "state" and not re.match(r"^[a-z][a-z0-9+.-]*:", str(value), re.I):
                shown = str(Path(value).resolve())
            lines.append(f"{key} = {json.dumps(str(shown))}")  # JSON strings are TOML strings
    folder.mkdir(parents=True, exist_ok=True)
    _write_private(file, "\n".join(lines) + "\n")
    return _read(file)


def _write_private(file: Path, text: str) -> None:
    """Write `file` whole or not at all (a temporary file renamed over it), mode 0600."""
    temporary = file.with_suffix(".toml.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    temporary.replace(file)


# ---- checking a tenant -----------------------------------------------------------------------

@dataclass(frozen=True)
class TenantFinding:
    """One check of one tenant: `level` ok, warning or error; `config` when fixing it means
    fixing the tenant's files (exit 2), not a CRM (exit 1)."""

    tenant: str
    check: str
    level: str
    detail: str = ""
    config: bool = False


def check_tenant(tenant: Tenant, *, crm: bool = False) -> list[TenantFinding]:
    """Its settings, mapping and state, each checked even when another fails; with `crm`, a
    login to both CRMs and every mapped field (`crmsync check`). Never raises for a tenant's
    own problem: one tenant's failure must not hide the next tenant's findings."""
    from connector.exceptions import CrmsyncError  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415

    found: list[TenantFinding] = []

    def note(check: str, level: str, detail: str = "", config: bool = False) -> None:
        found.append(TenantFinding(tenant.name, check, level, detail, config))

    try:
        settings = tenant.settings()
        note("settings", "ok", str(tenant.env_file or tenant.secrets_dir))
    except ConfigurationError as exc:
        note("settings", "error", str(exc), config=True)
        return found
    mapping = None
    try:
        mapping = load_mapping(settings.mapping_path)
        note("mapping", "ok", str(mapping.files[0]))
    except ConfigurationError as exc:
        note("mapping", "error", str(exc), config=True)
    found.extend(_check_state(tenant, settings))
    if crm and mapping is not None:
        from connector.systems.check import run_check  # noqa: PLC0415

        try:
            report = run_check(settings, mapping)
        except CrmsyncError as exc:
            note("crm", "error", str(exc), config=isinstance(exc, ConfigurationError))
        else:
            for finding in report.findings:
                note(f"{finding.system}: {finding.what}", finding.level,
                     " ".join(part for part in (finding.detail, finding.fix) if part))
    return found


def _check_state(tenant: Tenant, settings: Settings) -> list[TenantFinding]:
    """Whether the state store opens (a PostgreSQL one is migrated as it opens), who holds
    the tenant's lock, and how its last run ended."""
    from connector.exceptions import CrmsyncError  # noqa: PLC0415
    from connector.state import StateStore  # noqa: PLC0415

    location = parse_location(settings.state_location(), tenant.name)
    if not location.is_postgres and not (location.path and location.path.exists()):
        return [TenantFinding(tenant.name, "state", "ok",
                              f"{location}: none yet (the first run creates it)")]
    try:
        with StateStore(settings.state_location(), tenant=tenant.name) as store:
            holder = store.lock.holder()
            runs = store.journal.runs(1)
    except CrmsyncError as exc:
        return [TenantFinding(tenant.name, "state", "error", str(exc),
                              config=isinstance(exc, ConfigurationError))]
    found = [TenantFinding(tenant.name, "state", "ok", str(location))]
    if holder:
        found.append(TenantFinding(tenant.name, "running", "ok",
                                   f"{holder['owner']}, pid {holder['pid']} on {holder['host']} "
                                   f"since {holder['acquired_at']}"))
    if runs:
        last = runs[0]
        level = "ok" if last.status in ("ok", "rejects", "running") else "warning"
        found.append(TenantFinding(tenant.name, "last run", level,
                                   f"run {last.id} {last.kind} {last.status} at "
                                   f"{last.started_at:%Y-%m-%d %H:%M:%S}Z"
                                   + (f": {last.message}" if last.message else "")))
    return found
