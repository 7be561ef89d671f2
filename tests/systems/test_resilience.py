"""The retry policy and the budgets, with fake clocks: no real waiting."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime

import pytest

from connector.exceptions import (
    BudgetExhausted,
    FatalApiError,
    RateLimitedError,
    RetriableApiError,
)
from connector.systems.resilience import (
    DailyAllocation,
    RateWindow,
    RetryPolicy,
    parse_retry_after,
    parse_sforce_limit_info,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(failures: list[Exception], value: str = "ok"):
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return value

    return call, calls


def policy(clock: FakeClock, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, rng=random.Random(1), **kw)


def retriable(**kw) -> RetriableApiError:
    return RetriableApiError("boom", system="hubspot", status=503, **kw)


def test_retriable_errors_are_retried_until_success() -> None:
    clock = FakeClock()
    call, calls = flaky([retriable(), retriable()])
    rp = policy(clock, max_attempts=5, initial_wait=0.5, jitter=0.0)
    assert rp.run(call) == "ok"
    assert calls["n"] == 3
    assert clock.sleeps == [0.5, 1.0]  # exponential
    assert rp.retries == 2


def test_each_retry_and_giving_up_are_warnings_under_the_crmsync_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The CLI shows the `crmsync` hierarchy; a retry logged elsewhere was never seen."""
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    call, _ = flaky([retriable() for _ in range(3)])
    with pytest.raises(RetriableApiError):
        policy(clock, max_attempts=3, initial_wait=0.5, jitter=0.0).run(call,
                                                                        operation="hubspot list")
    records = [r for r in caplog.records if r.name.startswith("crmsync.")]
    assert [r.levelno for r in records] == [logging.WARNING] * 3
    assert [r.getMessage() for r in records] == [
        "hubspot list failed (attempt 1 of 3): hubspot HTTP 503: boom; retrying in 0.50 s",
        "hubspot list failed (attempt 2 of 3): hubspot HTTP 503: boom; retrying in 1.00 s",
        "hubspot list gave up: hubspot HTTP 503: boom",
    ]
    assert clock.sleeps == [0.5, 1.0]
    assert records[0].fields["wait_seconds"] == 0.5


def test_fatal_errors_are_not_retried() -> None:
    clock = FakeClock()
    call, calls = flaky([FatalApiError("bad value", system="salesforce", status=400)])
    with pytest.raises(FatalApiError):
        policy(clock).run(call)
    assert calls["n"] == 1
    assert clock.sleeps == []


def test_budget_exhausted_is_not_retried() -> None:
    clock = FakeClock()
    call, calls = flaky([BudgetExhausted("used up")])
    with pytest.raises(BudgetExhausted):
        policy(clock).run(call)
    assert calls["n"] == 1


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    clock = FakeClock()
    call, calls = flaky([retriable() for _ in range(10)])
    with pytest.raises(RetriableApiError):
        policy(clock, max_attempts=3).run(call)
    assert calls["n"] == 3


def test_retry_after_is_honoured() -> None:
    clock = FakeClock()
    limited = RateLimitedError("slow down", system="hubspot", status=429, retry_after=7.0)
    call, _ = flaky([limited])
    policy(clock, initial_wait=0.1, jitter=1.0).run(call)
    assert 7.0 <= clock.sleeps[0] <= 7.0 + 0.8


def test_backoff_is_capped_and_jittered() -> None:
    clock = FakeClock()
    call, _ = flaky([retriable() for _ in range(6)])
    policy(clock, max_attempts=7, initial_wait=1.0, max_wait=5.0, jitter=0.5).run(call)
    assert max(clock.sleeps) <= 5.0
    assert len(set(clock.sleeps)) > 1


def test_a_retry_after_longer_than_allowed_is_not_waited_out() -> None:
    clock = FakeClock()
    call, calls = flaky([retriable(retry_after=3600.0)])
    with pytest.raises(RetriableApiError):
        policy(clock, max_retry_after=60.0).run(call)
    assert calls["n"] == 1
    assert clock.sleeps == []


def test_rate_window_waits_for_the_oldest_request_to_age_out() -> None:
    clock = FakeClock()
    window = RateWindow(3, 1.0, margin=0.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        window.acquire()
    assert clock.sleeps == []
    clock.now = 0.25
    window.acquire()
    assert clock.now == pytest.approx(1.0)
    assert window.waited_seconds == pytest.approx(0.75)


def test_rate_window_never_exceeds_its_budget_in_any_window() -> None:
    clock = FakeClock()
    window = RateWindow(9, 10.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(50):
        window.acquire()
        starts.append(clock.now)
        clock.now += 0.1
    for start in starts:
        assert sum(1 for s in starts if start <= s < start + 10.0) <= 9


def test_rate_window_believes_the_server_when_fewer_remain() -> None:
    clock = FakeClock()
    window = RateWindow(10, 1.0, clock=clock, sleep=clock.sleep)
    window.observe_remaining(0)
    window.acquire()
    assert clock.now == pytest.approx(1.05)  # the window plus its 5% safety margin


def test_rate_window_ignores_a_server_count_above_ours() -> None:
    clock = FakeClock()
    window = RateWindow(2, 1.0, clock=clock, sleep=clock.sleep)
    window.acquire()
    window.observe_remaining(50)
    window.acquire()
    assert clock.sleeps == []


def test_daily_allocation_stops_before_the_share_is_used() -> None:
    daily = DailyAllocation(0.5)
    daily.check()  # nothing known yet: go on
    daily.observe("api-usage=498/1000")
    daily.check()
    daily.observe("api-usage=500/1000")
    with pytest.raises(BudgetExhausted, match="CRMSYNC_SALESFORCE_MAX_DAILY_SHARE"):
        daily.check()


def test_parse_limit_info_and_retry_after() -> None:
    assert parse_sforce_limit_info("api-usage=18/5000") == (18, 5000)
    assert parse_sforce_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=x)") == (
        25,
        5000,
    )
    assert parse_sforce_limit_info(None) is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("junk") is None
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:10 GMT", now=now) == 10.0
