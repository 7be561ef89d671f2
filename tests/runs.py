"""Helpers for tests that run crmsync as users and schedulers do: the CLI in a real process
against the sandbox, and what the sandbox and the state DB hold afterwards."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from connector.mapping import load_mapping
from connector.sandbox import Sandbox
from connector.settings import Settings
from connector.state import StateStore
from connector.sync import Engine
from connector.systems.factory import build_adapters

ROOT = Path(__file__).resolve().parents[1]


def write_env(sandbox: Sandbox, folder: Path) -> Path:
    env_file = folder / "sandbox.env"
    lines = [f"{k}={v}" for k, v in sandbox.settings_env().items()]
    lines += ["CRMSYNC_RETRY_INITIAL_WAIT_SECONDS=0.01", "CRMSYNC_RETRY_MAX_WAIT_SECONDS=0.1"]
    env_file.write_text("\n".join(lines) + "\n")
    return env_file


def cli(*args: str, cwd: Path, env_file: Path | None = None, state: Path | None = None,
        popen: bool = False):
    command = [sys.executable, "-m", "connector", *args]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    if state is not None:
        command += ["--state", str(state)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")}
    env["PYTHONPATH"] = str(ROOT)
    if popen:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
                          check=False)


def snapshot(sandbox: Sandbox) -> dict[str, dict]:
    """Every field crmsync writes, in both systems: what 'the final state' means here."""
    mapping = load_mapping()
    out = {}
    for system in ("hubspot", "salesforce"):
        for obj, fields in mapping.fields_written(system).items():
            records = (sandbox.hubspot_records(obj) if system == "hubspot"
                       else sandbox.salesforce_records(obj))
            for raw in records:
                values = raw.get("properties", raw)
                rid = raw.get("id") or raw.get("Id")
                out[f"{system}:{obj}:{rid}"] = {f: values.get(f) for f in sorted(fields)}
    return out


def in_process_engine(sandbox: Sandbox, state: Path) -> tuple[StateStore, Engine]:
    store = StateStore(state)
    settings = Settings.from_env_map(sandbox.settings_env(), state_path=state)
    return store, Engine(store, load_mapping(), build_adapters(settings))


def run_to_end(kind: str, sandbox: Sandbox, state: Path) -> None:
    store, engine = in_process_engine(sandbox, state)
    with store:
        report = getattr(engine, kind)()
        assert report.exit_code in (0, 1), report.message


def written(sandbox: Sandbox) -> int:
    return sum(sandbox.counters()["records_written"].values())


def returned(sandbox: Sandbox) -> int:
    return sum(sandbox.counters()["records_returned"].values())


def account_backfilled(state) -> bool:
    """Whether the backfill has committed Account as read to its end, read without a lock.

    The state DB, not the sandbox's request count, says what a kill leaves done: the reader
    thread runs a page or two ahead of what the engine has committed."""
    if not state.exists():
        return False
    try:
        with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=0.1)) as db:
            row = db.execute("SELECT cursor FROM watermarks WHERE system = 'salesforce' AND "
                             "object_type = 'Account' AND kind = 'backfill'").fetchone()
    except sqlite3.OperationalError:  # not created yet, or busy this instant
        return False
    return row is not None and row[0] == "done"
