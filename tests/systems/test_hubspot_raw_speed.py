"""Measure: the SDK's model deserialisation vs raw JSON (`_preload_content=False`).

The adapter reads raw JSON; this test keeps that choice honest. It times the same list pages
both ways through the real SDK against the sandbox (end to end), and the client-side parse
alone on identical bytes, and fails if raw JSON stops being the faster path.
Run with `-s` to see the ratios.
"""

from __future__ import annotations

import json
import time

from hubspot import HubSpot
from hubspot.crm.contacts.rest import RESTResponse

from connector.sandbox import Sandbox

from .conftest import BASE, hubspot_contacts

PROPERTIES = ["email", "firstname", "lastname", "lifecyclestage", "lastmodifieddate"]
PAGES = 25
MODEL = "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging"


def test_raw_json_is_faster_than_sdk_models() -> None:
    contacts = hubspot_contacts([BASE] * (PAGES * 100))
    # No rate limit: this measures parsing, not throttling.
    with Sandbox(
        fixture={"hubspot": {"contacts": contacts}}, hubspot_requests_per_window=1_000_000
    ) as sb:
        measure(sb)


def measure(sb: Sandbox) -> None:
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
        f"\nHubSpot list, {records} records: model {records / model_s:,.0f} rec/s, "
        f"raw {records / raw_s:,.0f} rec/s, end-to-end ratio {end_to_end:.2f}x; "
        f"parse only: model {rounds * 100 / model_parse:,.0f} rec/s, "
        f"raw {rounds * 100 / raw_parse:,.0f} rec/s, ratio {parse_only:.1f}x"
    )
    assert parse_only > 3.0
    assert end_to_end > 1.1
