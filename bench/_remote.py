"""A sandbox in a process of its own, driven over a pipe.

The sandbox answers requests in Python threads; in the benchmark's own process it would compete
with the engine for the GIL and add its memory to ours. In a child process it behaves like a
remote CRM: the engine's wall time, CPU and peak RSS are the connector's alone.
"""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

__all__ = ["NO_LIMITS", "RemoteSandbox", "SandboxSpec"]

UNLIMITED = 10**9
NO_LIMITS: dict[str, Any] = {
    "hubspot_requests_per_window": UNLIMITED,
    "search_requests_per_second": UNLIMITED,
    "hubspot_daily_limit": UNLIMITED,
    "salesforce_daily_limit": UNLIMITED,
}
START_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class SandboxSpec:
    """What to start: the generator's seed and size, and the limits it enforces."""

    organisations: int
    seed: int = 1
    limits: tuple[tuple[str, Any], ...] = tuple(NO_LIMITS.items())

    def kwargs(self) -> dict[str, Any]:
        return {"seed": self.seed, "organisations": self.organisations, **dict(self.limits)}


def _serve(conn: Connection, kwargs: dict[str, Any]) -> None:
    """Child process: start the sandbox, then answer calls until told to close."""
    from connector.sandbox import Sandbox  # noqa: PLC0415 - imported in the child only

    with Sandbox(**kwargs) as sandbox:
        conn.send(("ready", sandbox.settings_env()))
        while True:
            name, args = conn.recv()
            if name == "close":
                conn.send(("ok", None))
                return
            try:
                conn.send(("ok", _resolve(sandbox, name)(*args)))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _resolve(sandbox: Any, name: str) -> Callable[..., Any]:
    """`counters` -> sandbox.counters; `bench.edits:make_edits` -> make_edits(sandbox, ...)."""
    if ":" not in name:
        return getattr(sandbox, name)
    module, _, function = name.partition(":")
    target = getattr(importlib.import_module(module), function)
    return lambda *args: target(sandbox, *args)


class RemoteSandbox:
    """Start with `with RemoteSandbox(spec) as sandbox:`; `call` runs a Sandbox method there."""

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, spec.kwargs()), daemon=True)
        self.env: dict[str, str] = {}

    def __enter__(self) -> RemoteSandbox:
        self._process.start()
        if not self._conn.poll(START_TIMEOUT_SECONDS):
            self._process.kill()
            raise RuntimeError("the sandbox process did not start")
        _, self.env = self._conn.recv()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process.is_alive():
            try:
                self._conn.send(("close", ()))
                self._conn.poll(30)
            except (BrokenPipeError, EOFError):
                pass
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()

    def call(self, name: str, *args: Any) -> Any:
        """Call a Sandbox method (or a `module:function(sandbox, ...)`) in the child."""
        self._conn.send((name, args))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"sandbox call {name} failed: {value}")
        return value

    def counters(self) -> dict[str, Any]:
        return self.call("counters")

    def reset_counters(self) -> None:
        self.call("reset_counters")
