"""The I/O floor: the same read requests a run made, sent again raw, in the same process.

While a run executes, `capture()` records every HTTP request both SDKs send (they both end in
urllib3's `HTTPConnectionPool.urlopen`). `replay()` then sends the reads among them again over a
plain keep-alive urllib3 pool and decodes each JSON answer, nothing more: no SDK, no shaping, no
normalising, no state. Reads are replayed only from runs that wrote nothing (dry-run backfills,
syncs that planned nothing), so the sandbox answers the replay with the very same pages.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import urllib3
from urllib3.connectionpool import HTTPConnectionPool

__all__ = ["Captured", "capture", "replay"]

# Request paths that read (HubSpot search and batch reads are POSTs).
_READ_MARKERS = ("/search", "/batch/read", "/services/oauth2/token")


@dataclass(frozen=True)
class Captured:
    """One request as sent: enough to send it again byte for byte."""

    scheme: str
    host: str
    port: int | None
    method: str
    url: str
    body: Any
    headers: dict[str, str]

    @property
    def is_read(self) -> bool:
        path = self.url.split("?", 1)[0]
        return self.method == "GET" or any(marker in path for marker in _READ_MARKERS)


@dataclass
class Capture:
    requests: list[Captured] = field(default_factory=list)

    def reads(self) -> list[Captured]:
        return [r for r in self.requests if r.is_read]

    def writes(self) -> list[Captured]:
        return [r for r in self.requests if not r.is_read]


@contextmanager
def capture() -> Iterator[Capture]:
    """Record every urllib3 request made inside the block (both SDKs use urllib3)."""
    original = HTTPConnectionPool.urlopen
    captured = Capture()

    def recording(pool: HTTPConnectionPool, method: str, url: str, body: Any = None,
                  headers: Any = None, *args: Any, **kwargs: Any) -> Any:
        captured.requests.append(Captured(pool.scheme, pool.host, pool.port, method, url, body,
                                          dict(headers or {})))
        return original(pool, method, url, body, headers, *args, **kwargs)

    HTTPConnectionPool.urlopen = recording  # type: ignore[method-assign]
    try:
        yield captured
    finally:
        HTTPConnectionPool.urlopen = original  # type: ignore[method-assign]


# A Salesforce queryMore request: /services/data/vXX.X/query/<cursor>-<offset>
_QUERY_MORE = re.compile(r"/query(All)?/[^/?]+-\d+$")


def replay(requests: list[Captured], ca_path: str) -> float:
    """Send `requests` again over one keep-alive pool; seconds taken, JSON decoded each time."""
    if any(not r.is_read for r in requests):
        raise ValueError("only reads are replayed: a write would change what later reads see")
    manager = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca_path, retries=False)
    try:
        started = time.perf_counter()
        next_batch: str | None = None
        for request in requests:
            pool = manager.connection_from_host(request.host, request.port, request.scheme)
            url = request.url
            if next_batch is not None and _QUERY_MORE.search(url):
                # A Salesforce cursor read to its end is closed, as a real org closes it: the
                # replay follows the cursor of its own replayed query instead.
                url = next_batch
            response = pool.urlopen(request.method, url, body=request.body,
                                    headers=request.headers, retries=False)
            if response.status >= 400:
                raise RuntimeError(f"replay got {response.status} for {request.method} "
                                   f"{url[:80]}")
            answer = json.loads(response.data)
            if isinstance(answer, dict) and "done" in answer:
                next_batch = answer.get("nextRecordsUrl")
        return time.perf_counter() - started
    finally:
        manager.clear()
