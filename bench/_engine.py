"""Build a crmsync engine pointed at a (remote) sandbox, the way `crmsync sync` builds one.

A fresh engine per run, as a scheduled run is a fresh process: each run logs in to Salesforce
again (one token call) and starts with empty client-side rate windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connector.mapping import Mapping, load_mapping
from connector.settings import Settings
from connector.state import StateStore
from connector.sync import Engine
from connector.systems.factory import build_adapters

__all__ = ["CLIENT_NO_LIMITS", "engine_for", "settings_from_env"]

# Client-side budgets off: the API-call and overhead benchmarks measure the connector, not the
# rate limiter (which has a benchmark of its own).
CLIENT_NO_LIMITS: dict[str, Any] = {
    "hubspot_requests_per_10s": 10**9,
    "hubspot_search_per_second": 10**9,
}
_FAST_RETRIES: dict[str, Any] = {"retry_initial_wait_seconds": 0.01, "retry_max_wait_seconds": 0.05}


def settings_from_env(env: dict[str, str], state_path: Path, **overrides: Any) -> Settings:
    """Settings from a sandbox's `settings_env()`, as `crmsync sandbox serve --env-file` gives."""
    values = {key.removeprefix("CRMSYNC_").lower(): value for key, value in env.items()}
    settings = Settings(**values, state_path=state_path, _env_file=None)  # type: ignore[call-arg]
    return settings.model_copy(update={**_FAST_RETRIES, **overrides})


@contextmanager
def engine_for(
    env: dict[str, str], state_path: Path, mapping: Mapping | None = None, **overrides: Any
) -> Iterator[Engine]:
    """An engine over the state DB at `state_path`, closed (the DB) when the block ends."""
    settings = settings_from_env(env, state_path, **overrides)
    with StateStore(state_path) as store:
        yield Engine(store, mapping or load_mapping(), build_adapters(settings))
