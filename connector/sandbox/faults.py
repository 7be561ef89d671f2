"""Seeded fault injection: which request of which endpoint fails, and how.

A spec is a short string so the same thing works from Python and the CLI. Each endpoint draws
from its own random stream (seeded by the spec's seed and the endpoint name), so the n-th
request to an endpoint meets the same fate in every run, whatever the other endpoints do.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "BODY_KINDS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "FAULT_SPEC_HELP",
    "FaultPlan",
    "FaultRule",
    "FaultSpec",
    "FaultSpecError",
    "garbled_body",
    "parse_faults",
]

ENDPOINTS = (
    "hubspot.list",
    "hubspot.read",
    "hubspot.search",
    "hubspot.batch_read",
    "hubspot.batch_update",
    "hubspot.associations",
    "hubspot.properties",
    "hubspot.schemas",
    "hubspot.merge",
    "salesforce.token",
    "salesforce.query",
    "salesforce.sobject",
    "salesforce.describe",
    "salesforce.limits",
    "salesforce.composite",
    "salesforce.bulk_ingest",
    "salesforce.bulk_query",
)

# A 200 whose body is not the endpoint's answer, as a proxy, load balancer or a failing
# backend behind a healthy front end sends now and then: the request was served, the answer
# lost on the way. Clients must retry them, never take them as an empty (final) page.
BODY_KINDS = ("empty", "braces", "html", "truncated")
# Salesforce query answers that are 200 but no usable answer (salesforce.query only).
SALESFORCE_ANSWER_KINDS = ("sf_empty_body", "sf_empty_object", "sf_no_locator")
# Whole-request faults, decided by one draw per request (in this order of precedence).
REQUEST_KINDS = ("drop", "slow", "session", "429", "500", "503", *BODY_KINDS,
                 *SALESFORCE_ANSWER_KINDS)
# Per-record faults inside batch writes, one draw per record.
RECORD_KINDS = ("partial", "lock")
FAULT_KINDS = REQUEST_KINDS + RECORD_KINDS

DEFAULT_SLOW_SECONDS = 3.0
_N = TypeVar("_N", int, float)

FAULT_SPEC_HELP = """\
Fault spec: comma-separated TARGET:KIND=RATE entries, plus optional seed=N and delay=SECONDS.
TARGET is an endpoint (hubspot.list, hubspot.read, hubspot.search, hubspot.batch_read,
hubspot.batch_update, hubspot.associations, hubspot.properties, hubspot.schemas,
hubspot.merge, salesforce.token,
salesforce.query, salesforce.sobject, salesforce.describe, salesforce.limits,
salesforce.composite, salesforce.bulk_ingest, salesforce.bulk_query), a system wildcard
(hubspot.*, salesforce.*) or * for all.
KIND (RATE is a probability 0..1):
  429      HubSpot: 429 TEN_SECONDLY_ROLLING with rate-limit headers; Salesforce: 403
           REQUEST_LIMIT_EXCEEDED (ConcurrentPerOrgLongTxn), which clients must retry
  500/503  server error in the system's error shape
  slow     answer only after `delay` seconds (default 3), past a short client timeout
  drop     close the connection without answering
  session  Salesforce: the access token expires now (401 INVALID_SESSION_ID)
  partial  per record in batch writes: HubSpot 207 error / Salesforce UNABLE_TO_LOCK_ROW
  lock     per record in Salesforce composite writes and Bulk API jobs: UNABLE_TO_LOCK_ROW
  empty    200 with an empty body (after the request was served)
  braces   200 with the body `{}`
  html     200 with an HTML page (a proxy's or maintenance page)
  truncated  200 with the real JSON answer cut off halfway
  sf_empty_body / sf_empty_object / sf_no_locator
           salesforce.query: a 200 with no body, with `{}`, or with `done: false` and no
           nextRecordsUrl (answers a client must not take for the end of a read)
Example (spaces after commas are allowed):
  hubspot.search:429=0.1, salesforce.query:503=0.05, *:drop=0.02,
  salesforce.composite:lock=0.1, seed=7
The most specific target wins per kind (endpoint over system.* over *)."""


class FaultSpecError(ValueError):
    """A fault spec string could not be parsed; the message says which entry and why."""


@dataclass(frozen=True)
class FaultRule:
    """One `TARGET:KIND=RATE` entry."""

    target: str
    kind: str
    rate: float


@dataclass(frozen=True)
class FaultSpec:
    """A parsed fault spec: rules, the seed of every draw, and how long `slow` waits."""

    rules: tuple[FaultRule, ...] = ()
    seed: int = 0
    slow_seconds: float = DEFAULT_SLOW_SECONDS

    def rate(self, endpoint: str, kind: str) -> float:
        """The rate of `kind` at `endpoint`, taking the most specific matching rule."""
        system = endpoint.split(".", 1)[0]
        best: tuple[int, float] = (-1, 0.0)
        for rule in self.rules:
            if rule.kind != kind:
                continue
            rank = _specificity(rule.target, endpoint, system)
            if rank > best[0]:
                best = (rank, rule.rate)
        return best[1]

    def __str__(self) -> str:
        parts = [f"{r.target}:{r.kind}={r.rate:g}" for r in self.rules]
        parts.append(f"seed={self.seed}")
        if self.slow_seconds != DEFAULT_SLOW_SECONDS:
            parts.append(f"delay={self.slow_seconds:g}")
        return ",".join(parts)


def _specificity(target: str, endpoint: str, system: str) -> int:
    if target == endpoint:
        return 2
    if target == f"{system}.*":
        return 1
    if target == "*":
        return 0
    return -1


def parse_faults(text: str) -> FaultSpec:
    """Parse a spec such as `hubspot.search:429=0.1,*:drop=0.02,seed=7` (see FAULT_SPEC_HELP)."""
    rules: list[FaultRule] = []
    seed = 0
    slow_seconds = DEFAULT_SLOW_SECONDS
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        key, sep, value = entry.partition("=")
        if not sep:
            raise FaultSpecError(f"fault entry {entry!r} has no '=RATE'")
        key = key.strip()
        if key == "seed":
            seed = _number(entry, value, int)
        elif key == "delay":
            slow_seconds = _number(entry, value, float)
        else:
            rules.append(_rule(entry, key, value))
    return FaultSpec(rules=tuple(rules), seed=seed, slow_seconds=slow_seconds)


def _rule(entry: str, key: str, value: str) -> FaultRule:
    target, sep, kind = key.partition(":")
    if not sep:
        raise FaultSpecError(f"fault entry {entry!r} needs TARGET:KIND=RATE")
    target, kind = target.strip(), kind.strip()
    if kind not in FAULT_KINDS:
        raise FaultSpecError(f"fault entry {entry!r}: kind {kind!r} not one of {FAULT_KINDS}")
    wildcard = target in {"*", "hubspot.*", "salesforce.*"}
    if not wildcard and target not in ENDPOINTS:
        raise FaultSpecError(f"fault entry {entry!r}: unknown target {target!r}")
    rate = _number(entry, value, float)
    if not 0.0 <= rate <= 1.0:
        raise FaultSpecError(f"fault entry {entry!r}: rate must be between 0 and 1")
    return FaultRule(target=target, kind=kind, rate=rate)


def _number(entry: str, value: str, kind: Callable[[str], _N]) -> _N:
    try:
        return kind(value.strip())
    except ValueError:
        raise FaultSpecError(f"fault entry {entry!r}: {value!r} is not a number") from None


@dataclass
class FaultPlan:
    """The live state of a spec: one random stream per endpoint, drawn in request order."""

    spec: FaultSpec
    _streams: dict[str, random.Random] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _stream(self, endpoint: str) -> random.Random:
        stream = self._streams.get(endpoint)
        if stream is None:
            stream = self._streams[endpoint] = random.Random(f"{self.spec.seed}:{endpoint}")
        return stream

    def request_fault(self, endpoint: str) -> str | None:
        """The whole-request fault for this request of `endpoint`, or None.

        One draw decides: the kinds' rates are stacked in a fixed order, so results do not
        depend on which other kinds are configured beyond their rates.
        """
        rates = [(kind, self.spec.rate(endpoint, kind)) for kind in REQUEST_KINDS]
        if not any(rate for _, rate in rates):
            return None
        with self._lock:
            draw = self._stream(endpoint).random()
        edge = 0.0
        for kind, rate in rates:
            edge += rate
            if draw < edge:
                return kind
        return None

    def record_faults(self, endpoint: str, kind: str, count: int) -> list[bool]:
        """For each of `count` records of a batch write, whether `kind` hits it."""
        rate = self.spec.rate(endpoint, kind)
        if rate <= 0.0:
            return [False] * count
        with self._lock:
            stream = self._stream(f"{endpoint}#{kind}")
            return [stream.random() < rate for _ in range(count)]


_HTML_PAGE = (b"<!DOCTYPE html><html><head><title>Service Temporarily Unavailable</title>"
              b"</head><body><h1>We'll be right back</h1></body></html>")


def garbled_body(kind: str, body: bytes) -> tuple[bytes, str]:
    """(body, content type) of a `BODY_KINDS` fault, given the answer it replaces."""
    if kind == "empty":
        return b"", "application/json;charset=UTF-8"
    if kind == "braces":
        return b"{}", "application/json;charset=UTF-8"
    if kind == "html":
        return _HTML_PAGE, "text/html;charset=UTF-8"
    if kind == "truncated":
        return body[: max(1, len(body) // 2)], "application/json;charset=UTF-8"
    raise ValueError(f"{kind!r} is not a body fault")
