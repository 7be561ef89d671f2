"""Rate-limit use: the request rate a backfill sustains under a time-scaled HubSpot window.

The sandbox enforces `limit` requests per `window` seconds (HubSpot: 100 per 10 s; here the
window is shortened so a run takes seconds, not minutes) and the client gets the same window
with its budget. A sampler inside the sandbox process records how many HubSpot requests have
arrived every few milliseconds; the sustained rate is taken over each busy stretch (reads, then
writes) after its first window, because a window that starts empty lets a burst through that
no steady state can repeat. Target: >= 90% of the budget, and no 429 at all.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench._engine import engine_for
from bench._remote import NO_LIMITS, RemoteSandbox, SandboxSpec
from bench._sizes import organisations_for_persons
from bench.api_calls import counters_delta, four_twenty_nines

__all__ = ["RateResult", "measure_rate", "start_sampler", "stop_sampler", "sustained_rate"]

SERVER_LIMIT = 100  # HubSpot Free/Starter: 100 requests per 10 s
SAMPLE_SECONDS = 0.005
TARGET_SHARE = 0.90

_sampler: dict[str, Any] = {}


# ---- inside the sandbox process -------------------------------------------------------------


def start_sampler(sandbox: Any, interval: float = SAMPLE_SECONDS) -> None:
    """Record (time, HubSpot requests so far) every `interval` seconds until stopped."""
    stop = threading.Event()
    samples: list[tuple[float, int]] = []

    def sample() -> None:
        while not stop.is_set():
            requests = sandbox.counters()["requests"]
            total = sum(n for e, n in requests.items() if e.startswith("hubspot."))
            samples.append((time.monotonic(), total))
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    _sampler.update(stop=stop, samples=samples, thread=thread)
    thread.start()


def stop_sampler(sandbox: Any) -> list[tuple[float, int]]:
    _sampler["stop"].set()
    _sampler["thread"].join(5)
    return list(_sampler["samples"])


# ---- analysis ------------------------------------------------------------------------------


def _arrivals(samples: list[tuple[float, int]]) -> list[float]:
    """Approximate arrival times: the sample at which each request was first counted."""
    out: list[float] = []
    previous = samples[0][1] if samples else 0
    for moment, total in samples:
        out.extend([moment] * (total - previous))
        previous = total
    return out


def _phases(arrivals: list[float], gap: float) -> list[list[float]]:
    """Arrivals split where nothing arrived for longer than `gap` (another phase of the run)."""
    phases: list[list[float]] = []
    for moment in arrivals:
        if phases and moment - phases[-1][-1] <= gap:
            phases[-1].append(moment)
        else:
            phases.append([moment])
    return phases


def _phase_rate(phase: list[float], window: float) -> tuple[int, float]:
    """(requests, seconds) of one phase's steady state.

    A client held back by its limiter sends in bursts, one per window: measure from the start
    of the second burst (the first had an empty window to itself) to the start of the last
    (after it the phase may end early). A client that never pauses sets the pace itself:
    then measure everything after the first window.
    """
    starts = [phase[0]] + [t for prev, t in pairwise(phase) if t - prev > window / 10]
    if len(starts) >= 3:
        begin, end = starts[1], starts[-1]
        return sum(1 for t in phase if begin <= t < end), end - begin
    later = [t for t in phase if t >= phase[0] + window]
    return (len(later), later[-1] - (phase[0] + window)) if len(later) > 1 else (0, 0.0)


def sustained_rate(samples: list[tuple[float, int]], window: float) -> tuple[float, int, float]:
    """(requests per second, requests counted, seconds counted) over every phase of the run
    (reads, writes: separated by a pause longer than the limiter ever waits)."""
    counted, seconds = 0, 0.0
    for phase in _phases(_arrivals(samples), gap=2 * window):
        requests, span = _phase_rate(phase, window)
        counted += requests
        seconds += span
    return (counted / seconds if seconds else 0.0), counted, seconds


@dataclass(frozen=True)
class RateResult:
    """One backfill under a time-scaled window with a client budget of `budget` requests."""

    budget: int
    window: float
    rate: float  # sustained requests per second
    counted: int
    seconds: float
    four_twenty_nines: int
    hubspot_calls: int

    @property
    def share_of_limit(self) -> float:
        return self.rate * self.window / SERVER_LIMIT

    @property
    def share_of_budget(self) -> float:
        return self.rate * self.window / self.budget

    @property
    def measured(self) -> bool:
        """False when the run was too short for a window past the first."""
        return self.seconds > 0

    @property
    def meets_target(self) -> bool:
        return self.share_of_budget >= TARGET_SHARE and self.four_twenty_nines == 0


def measure_rate(persons: int, window: float, budgets: tuple[int, ...] = (90, 100),
                 workdir: Path | None = None) -> list[RateResult]:
    """A backfill per client budget, each against a fresh sandbox enforcing the window."""
    scale = 10.0 / window
    limits = {**NO_LIMITS, "hubspot_requests_per_window": SERVER_LIMIT,
              "hubspot_window_seconds": window, "search_requests_per_second": round(5 * scale)}
    workdir = workdir or Path(tempfile.mkdtemp(prefix="crmsync-bench-rate-"))
    results = []
    for budget in budgets:
        spec = SandboxSpec(organisations_for_persons(persons), limits=tuple(limits.items()))
        with RemoteSandbox(spec) as sandbox:
            client = {"hubspot_requests_per_10s": budget, "hubspot_window_seconds": window,
                      "hubspot_search_per_second": round(5 * scale)}
            before = sandbox.counters()
            sandbox.call("bench.rate:start_sampler")
            with engine_for(sandbox.env, workdir / f"rate-{budget}.db", **client) as engine:
                report = engine.backfill()
            samples = sandbox.call("bench.rate:stop_sampler")
            delta = counters_delta(before, sandbox.counters())
        if report.status not in ("ok", "rejects"):
            raise RuntimeError(f"rate backfill ended {report.status}: {report.message}")
        rate, counted, seconds = sustained_rate(samples, window)
        hubspot = sum(n for e, n in delta["requests"].items() if e.startswith("hubspot."))
        results.append(RateResult(budget, window, rate, counted, seconds,
                                  four_twenty_nines(delta), hubspot))
    return results
