"""`crmsync sandbox serve`: run a sandbox in the foreground and publish its settings."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from connector.sandbox._sandbox import Sandbox

__all__ = ["serve", "write_env_file"]

def write_env_file(path: Path, settings: dict[str, str]) -> None:
    """Write KEY=VALUE lines atomically (readers never see half a file), owner-only."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{key}={value}\n" for key, value in settings.items()))
    temporary.replace(path)


def serve(
    *,
    port: int,
    seed: int | None,
    organisations: int | None,
    fixture: Path | None,
    faults: str | None,
    env_file: Path | None,
    echo: Callable[[str], None],
    notice: Callable[[str], None],
    churn: float | None = None,
    search_lag: float = 0.0,
) -> None:
    """Start a sandbox, publish its settings (env file, then `echo`), serve until SIGINT or
    SIGTERM; the env file is removed on exit because its CA file goes with the sandbox."""
    sandbox = Sandbox(seed=seed, organisations=organisations, fixture=fixture, faults=faults,
                      port=port, search_lag_seconds=search_lag)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    with sandbox:
        settings = sandbox.settings_env()
        if env_file is not None:
            write_env_file(env_file, settings)
        echo("\n".join(f"{key}={value}" for key, value in settings.items()))
        notice(f"crmsync sandbox serving HubSpot and Salesforce on {sandbox.base_url} "
               "(Ctrl-C stops)")
        churning = sandbox.churn(churn, seed=seed or 0) if churn else None
        if churning is not None:
            churning.start()
            notice(f"churn: changing records at {churn:g}/s")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            if churning is not None:
                churning.stop()
                done = sorted(churning.counts.items())
                notice("churn: " + (", ".join(f"{k} {v}" for k, v in done) or "nothing"))
            signal.signal(signal.SIGTERM, previous)
            if env_file is not None:
                env_file.unlink(missing_ok=True)
