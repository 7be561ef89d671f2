"""Build a crmsync engine pointed at a (remote) sandbox, the way `crmsync sync` builds one.

A fresh engine per run, as a scheduled run is a fresh process: each run logs in to Salesforce
again (one token call) and starts with empty client-side rate windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connector.mapping import Mapping
from connector.runtime import open_engine
from connector.settings import Settings
from connector.sync import Engine

__all__ = ["CLIENT_NO_LIMITS", "bench_settings", "engine_for"]

# Client-side budgets off: the API-call and overhead benchmarks measure the connector, not the
# rate limiter (which has a benchmark of its own).
CLIENT_NO_LIMITS: dict[str, Any] = {
    "hubspot_requests_per_10s": 10**9,
    "hubspot_search_per_second": 10**9,
}
_FAST_RETRIES: dict[str, Any] = {"retry_initial_wait_seconds": 0.01, "retry_max_wait_seconds": 0.05}
# Time-scaled like the overlap wait: a scenario's quiet sync runs two minutes after its last
# write, so the default ten-minute safety lag would have it read everything the backfill wrote
# again (which the "reads the backfill's writes back" rows already measure). Runs that need
# the lag set it themselves (bench/convergence.py).
_NO_SAFETY_LAG: dict[str, Any] = {"hubspot_safety_lag_seconds": 0,
                                  "salesforce_safety_lag_seconds": 0}


def bench_settings(env: dict[str, str], state_path: Path, **overrides: Any) -> Settings:
    """Settings from a sandbox's `settings_env()`, with the benchmarks' short retries."""
    return Settings.from_env_map(env, state_path=state_path,
                                 **{**_FAST_RETRIES, **_NO_SAFETY_LAG, **overrides})


@contextmanager
def engine_for(
    env: dict[str, str], state_path: Path, mapping: Mapping | None = None, **overrides: Any
) -> Iterator[Engine]:
    """An engine over the state DB at `state_path`, closed (the DB) when the block ends."""
    settings = bench_settings(env, state_path, **overrides)
    with open_engine(settings=settings, state_path=state_path, mapping=mapping) as engine:
        yield engine
