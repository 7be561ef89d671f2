"""`python -m bench.raw_json`: SDK model deserialisation vs raw JSON (`_preload_content`).

The adapters read raw JSON (design.md measured the SDK models as the bottleneck); this keeps
that choice honest. It times the same HubSpot list pages both ways through the real SDK
against the sandbox, end to end, and the client-side parse alone on identical bytes, and
prints the ratios. A benchmark, not a test: timings on a shared machine are too noisy to assert.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from hubspot import HubSpot
from hubspot.crm.contacts.rest import RESTResponse

from connector.sandbox import Sandbox

PROPERTIES = ["email", "firstname", "lastname", "lifecyclestage", "lastmodifieddate"]
PAGES = 25
MODEL = "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging"
MODIFIED = str(int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000))


def contacts(count: int) -> list[dict]:
    return [
        {"id": str(100001 + n),
         "properties": {"email": f"person{n}@example{n % 97}.com", "firstname": f"P{n}",
                        "lastmodifieddate": MODIFIED}}
        for n in range(count)
    ]


def main() -> None:
    # No rate limit: this measures parsing, not throttling.
    with Sandbox(fixture={"hubspot": {"contacts": contacts(PAGES * 100)}},
                 hubspot_requests_per_window=1_000_000) as sb:
        end_to_end, parse_only = measure(sb)
    print(f"raw JSON / SDK models: {end_to_end:.1f}x end to end, {parse_only:.0f}x parse only")


def measure(sb: Sandbox) -> tuple[float, float]:
    client = HubSpot(
        access_token=sb.hubspot_access_token,
        host=sb.hubspot_base_url,
        ssl_ca_cert=sb.ca_path,
        retry=False,
    )
    api = client.crm.contacts.basic_api  # built once: see design.md

    def page(after: str | None, raw: bool):
        kwargs = {"limit": 100, "properties": PROPERTIES, "_request_timeout": 10}
        if after:
            kwargs["after"] = after
        if raw:
            response = api.get_page(**kwargs, _preload_content=False)
            data = json.loads(response.data)
            return data, ((data.get("paging") or {}).get("next") or {}).get("after")
        result = api.get_page(**kwargs)
        return result, result.paging.next.after if result.paging else None

    def timed(raw: bool) -> tuple[float, int]:
        started, after, records = time.perf_counter(), None, 0
        for _ in range(PAGES):
            data, after = page(after, raw)
            records += len(data["results"] if raw else data.results)
        return time.perf_counter() - started, records

    timed(True), timed(False)  # warm up both paths (connections, caches)
    model_s = min(timed(False)[0] for _ in range(3))
    raw_s, records = min((timed(True) for _ in range(3)), key=lambda t: t[0])

    # Client-side parse only, on identical bytes.
    response = api.get_page(limit=100, properties=PROPERTIES, _preload_content=False)
    body = RESTResponse(response)
    rounds = 40
    started = time.perf_counter()
    for _ in range(rounds):
        api.api_client.deserialize(body, MODEL)
    model_parse = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(rounds):
        json.loads(body.data)
    raw_parse = time.perf_counter() - started

    end_to_end = model_s / raw_s
    parse_only = model_parse / raw_parse
    print(
        f"HubSpot list, {records} records: model {records / model_s:,.0f} rec/s, "
        f"raw {records / raw_s:,.0f} rec/s, end-to-end ratio {end_to_end:.2f}x; "
        f"parse only: model {rounds * 100 / model_parse:,.0f} rec/s, "
        f"raw {rounds * 100 / raw_parse:,.0f} rec/s, ratio {parse_only:.1f}x"
    )
    return end_to_end, parse_only


if __name__ == "__main__":
    main()
