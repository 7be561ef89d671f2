"""One retry policy and the client-side API budgets, shared by both adapters.

Neither SDK retries usefully (hubspot-api-client's urllib3 retry skips POST/PATCH and has no 429
backoff; simple-salesforce has no retry at all), so every call goes through `RetryPolicy.run`:
tenacity, exponential backoff with jitter, honouring Retry-After. What is retriable is decided
before this layer: each adapter translates SDK failures into the exception tree, and only
`RetriableApiError` (429, 5xx, timeouts, dropped connections, UNABLE_TO_LOCK_ROW) is retried.

Budgets keep us under the servers' limits instead of bouncing off them:
- `RateWindow`: at most N requests in any rolling window (HubSpot 90 per 10 s, search 5 per s);
  it also believes the server when its rate-limit headers say fewer requests remain.
- `DailyAllocation`: stop the run cleanly (`BudgetExhausted`, resumable) before a configured
  share of a daily allocation is used: Salesforce's rolling 24 h allocation as reported by
  Sforce-Limit-Info, HubSpot's portal-wide daily limit from X-HubSpot-RateLimit-Daily and
  -Daily-Remaining (`parse_hubspot_daily`).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from connector.exceptions import BudgetExhausted, RetriableApiError, scrub
from connector.systems.base import ApiUsage

__all__ = [
    "DailyAllocation",
    "RateWindow",
    "RetryPolicy",
    "UsageMeter",
    "guarded_call",
    "parse_hubspot_daily",
    "parse_retry_after",
    "parse_sforce_limit_info",
    "transport_error",
]

# Under `crmsync`, the hierarchy the CLI configures: a retry is what an operator needs to see
# when a run is slow or fails (which call, which attempt, how long we wait), so WARNING.
log = logging.getLogger("crmsync.retry")

T = TypeVar("T")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def parse_sforce_limit_info(value: str | None) -> tuple[int, int] | None:
    """(used, allocation) from `Sforce-Limit-Info: api-usage=N/M`, else None."""
    match = _API_USAGE.search(value or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def parse_hubspot_daily(daily: str | None, remaining: str | None) -> tuple[int, int] | None:
    """(used, allocation) from `X-HubSpot-RateLimit-Daily` and `-Daily-Remaining`, else None.

    HubSpot sends both on every answer to a private app except search (design.md, "HubSpot
    facts"); the limit is the portal's, shared by all its private apps, so `used` counts
    theirs too."""
    try:
        allocation, left = int(str(daily)), int(str(remaining))
    except ValueError:
        return None
    if allocation <= 0:
        return None
    return max(0, allocation - max(0, left)), allocation


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter for transient failures; Retry-After wins when given.

    A server asking us to wait longer than `max_retry_after` seconds ends the retrying: the
    error goes to the caller (a write then reports retry-later) instead of stalling the run.
    """

    max_attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 60.0
    jitter: float = 1.0
    max_retry_after: float = 300.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    retries: int = 0

    def run(self, call: Callable[[], T], *, operation: str = "") -> T:
        """Call `call`, retrying RetriableApiError; any other exception passes straight through."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts) | self._server_wait_too_long,
            wait=self.wait_seconds,
            retry=retry_if_exception_type(RetriableApiError),
            reraise=True,
            sleep=self.sleep,
            before_sleep=self._note_retry(operation),
        )
        try:
            return retrying(call)
        except RetriableApiError as error:
            log.warning("%s gave up: %s", operation or "call", error,
                        extra={"fields": {"operation": operation, "error": str(error)}})
            raise

    def wait_seconds(self, state: RetryCallState) -> float:
        """Retry-After (plus a little jitter) if the server sent one, else exponential + jitter."""
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return retry_after + self.rng.uniform(0, min(self.jitter, 0.1 + retry_after * 0.1))
        jitter = self.rng.uniform(0, self.jitter)
        return min(self.max_wait, self.backoff(state.attempt_number) + jitter)

    def backoff(self, round_number: int) -> float:
        """The pause before retry `round_number` (1 for the first), without jitter:
        `initial_wait` doubled each round, at most `max_wait`. Calls and write rounds share it."""
        return min(self.max_wait, self.initial_wait * 2 ** (round_number - 1))

    def pause(self, round_number: int) -> None:
        """Sleep `backoff(round_number)`: between the rounds that resend retry-later records."""
        self.sleep(self.backoff(round_number))

    def _server_wait_too_long(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        return retry_after is not None and retry_after > self.max_retry_after

    def _note_retry(self, operation: str) -> Callable[[RetryCallState], None]:
        def note(state: RetryCallState) -> None:
            self.retries += 1
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s failed (attempt %d of %d): %s; retrying in %.2f s",
                operation or "call",
                state.attempt_number,
                self.max_attempts,
                error,
                wait,
                extra={"fields": {"operation": operation, "attempt": state.attempt_number,
                                  "max_attempts": self.max_attempts,
                                  "wait_seconds": round(wait, 3), "error": str(error)}},
            )

        return note


class RateWindow:
    """At most `max_requests` starts in any rolling `window_seconds`; `acquire` waits for a slot.

    The window is kept `margin` longer than the server's (default 5%): requests sent exactly
    one window apart can arrive closer together, and the server counts arrivals.
    Thread-safe, and the clock and sleep are injectable so tests need not wait in real time.
    """

    def __init__(
        self,
        max_requests: int,
        window_seconds: float,
        *,
        name: str = "",
        margin: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or window_seconds <= 0:
            raise ValueError("a rate window needs at least one request and a positive length")
        self.max_requests = max_requests
        self.window_seconds = window_seconds
        self.name = name
        self._span = window_seconds + (0.05 * window_seconds if margin is None else margin)
        self.waited_seconds = 0.0
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateWindow({self.name!r}, {self.max_requests}/{self.window_seconds}s)"

    def acquire(self) -> None:
        """Block until one more request fits in the window, then record it."""
        while True:
            with self._lock:
                now = self._clock()
                self._forget_before(now - self._span)
                if len(self._starts) < self.max_requests:
                    self._starts.append(now)
                    return
                wait = self._starts[0] + self._span - now
            wait = max(wait, 0.001)
            self.waited_seconds += wait
            self._sleep(wait)

    def resize(self, max_requests: int) -> None:
        """Allow `max_requests` per window from now on (e.g. once the server says its limit);
        requests already started keep counting."""
        if max_requests < 1:
            raise ValueError("a rate window needs at least one request")
        with self._lock:
            self.max_requests = max_requests

    def observe_remaining(self, remaining: int) -> None:
        """Believe the server when it says fewer requests remain than we think (shared quota)."""
        with self._lock:
            now = self._clock()
            self._forget_before(now - self._span)
            ours = self.max_requests - len(self._starts)
            for _ in range(max(0, ours - max(0, remaining))):
                self._starts.append(now)

    def _forget_before(self, horizon: float) -> None:
        while self._starts and self._starts[0] <= horizon:
            self._starts.popleft()


class DailyAllocation:
    """A daily API allocation as last reported (Salesforce's org, HubSpot's portal), and our
    share of it.

    `check` raises BudgetExhausted once `used / allocation` reaches `max_share`, before the
    next call is sent, so a run stops cleanly with room left for the other integrations that
    share the allocation. `count_call` adds our own calls between reports (HubSpot's search
    answers carry no headers), and the next report replaces the estimate.
    """

    def __init__(
        self,
        max_share: float,
        *,
        system: str = "salesforce",
        setting: str = "CRMSYNC_SALESFORCE_MAX_DAILY_SHARE",
    ) -> None:
        if not 0 < max_share <= 1:
            raise ValueError("max_share must be in (0, 1]")
        self.max_share = max_share
        self.system = system
        self.setting = setting
        self.used: int | None = None
        self.allocation: int | None = None

    def __repr__(self) -> str:
        return (
            f"DailyAllocation(used={self.used}, allocation={self.allocation}, "
            f"share={self.max_share})"
        )

    def observe(self, header: str | None) -> None:
        """Salesforce: `Sforce-Limit-Info: api-usage=N/M`."""
        self.observe_usage(parse_sforce_limit_info(header))

    def observe_usage(self, parsed: tuple[int, int] | None) -> None:
        """A server's own (used, allocation), when it sent one."""
        if parsed:
            self.used, self.allocation = parsed

    def count_call(self) -> None:
        """One more call of ours, sent before the server reports again."""
        if self.used is not None:
            self.used += 1

    def check(self) -> None:
        if self.used is None or not self.allocation:
            return
        if self.used + 1 > self.max_share * self.allocation:
            raise BudgetExhausted(
                f"{self.system}: {self.used} of the daily API allocation of {self.allocation} "
                f"used; this run may use up to {self.max_share:.0%} "
                f"({self.setting}). Stopped cleanly; rerun later to resume."
            )


class UsageMeter:
    """The API calls one adapter made, and what its budgets report, as `ApiUsage`.

    Both adapters compose one: `count` each call sent, `snapshot` for `usage()`. Retries, time
    waited in rate windows and the daily allocation are read from their owners at snapshot
    time, so no adapter copies them by hand.
    """

    def __init__(
        self,
        system: str,
        retry: RetryPolicy,
        daily: DailyAllocation,
        windows: Sequence[RateWindow] = (),
    ) -> None:
        self._usage = ApiUsage(system)
        self._retry = retry
        self._daily = daily
        self._windows = tuple(windows)

    def __repr__(self) -> str:
        return f"UsageMeter({self._usage.system!r}, calls={self._usage.calls})"

    @property
    def calls(self) -> int:
        return self._usage.calls

    def count(self, operation: str) -> None:
        self._usage.count(operation)

    def snapshot(self) -> ApiUsage:
        self._usage.retries = self._retry.retries
        self._usage.rate_wait_seconds = sum(w.waited_seconds for w in self._windows)
        self._usage.daily_used = self._daily.used
        self._usage.daily_allocation = self._daily.allocation
        return self._usage.snapshot()


def transport_error(system: str, operation: str, error: BaseException) -> RetriableApiError:
    """A failure below HTTP (refused, reset, timed out) as retriable, named by its type; the
    text is scrubbed, for a library may quote the request (and its token) back."""
    kind = type(error).__name__
    return RetriableApiError(
        f"{kind}: {scrub(str(error))}", system=system, operation=operation, code=kind
    )


def guarded_call(
    operation: str,
    send: Callable[[], T],
    *,
    system: str,
    retry: RetryPolicy,
    usage: UsageMeter,
    classify: Callable[[Exception], BaseException | None],
    transport: tuple[type[BaseException], ...],
    before: Sequence[Callable[[], object]] = (),
) -> T:
    """One API call the way both adapters make every call: the guards in `before` (budgets,
    rate windows, a login), the call counted, `send`, then failures translated and retried.

    `transport` are the SDK's own transport failures (retriable); `classify` turns any other
    exception into our tree, or None to let it pass unchanged (our own errors, and anything
    unexpected). Only RetriableApiError is retried, by `retry`, which logs each retry under
    `crmsync.retry`. The guards run again on every attempt: a retry is a call like any other.
    """

    def attempt() -> T:
        for guard in before:
            guard()
        usage.count(operation)
        try:
            return send()
        except transport as error:
            raise transport_error(system, operation, error) from None
        except Exception as error:
            translated = classify(error)
            if translated is None:
                raise
            raise translated from None

    return retry.run(attempt, operation=f"{system} {operation}")
