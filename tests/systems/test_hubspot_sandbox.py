"""The HubSpot adapter against the sandbox through hubspot-api-client: reads, writes, limits."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connector.exceptions import AuthenticationError
from connector.sandbox import Sandbox
from connector.systems.base import Page, RecordUpdate
from connector.systems.hubspot import HubSpotAdapter, HubSpotLimits

from .helpers import (
    BASE,
    FAST_LIMITS,
    deal_links,
    hs_time,
    hubspot_companies,
    hubspot_contacts,
    hubspot_deals,
    hubspot_for,
    ids_of,
    one_instant_stamps,
    tie_at_cap_stamps,
)

# >= 10% of requests fail: throttled, server errors, dropped connections.
REQUEST_FAULTS = "hubspot.*:429=0.04,hubspot.*:500=0.03,hubspot.*:503=0.03,hubspot.*:drop=0.02"


def live_ids(sb: Sandbox, object_type: str) -> set[str]:
    return {r["id"] for r in sb.hubspot_records(object_type) if not r["archived"]}


def linked(sb: Sandbox, deal_id: str) -> dict[str, list[str]]:
    return {t: sb.hubspot_associations("deals", t, deal_id) for t in ("contacts", "companies")}


def received_complete(sb: Sandbox, pages: Iterator[Page]) -> list[Page]:
    """Consume pages as the engine does, checking each one's associations when it arrives (the
    engine commits a page with its watermark straight away)."""
    received = []
    for page in pages:
        for deal in page.records:
            assert deal["associations"] == linked(sb, deal["id"]), deal["id"]
        received.append(page)
    return received


def assert_in_order(pages: list[Page], modified: str) -> None:
    """Records oldest first across pages; each page's max_modified is its own newest time."""
    stamps = [r["properties"][modified] for p in pages for r in p.records]
    assert stamps == sorted(stamps)
    for page in pages:
        newest = max(r["properties"][modified] for r in page.records)
        assert page.max_modified is not None and hs_time(page.max_modified) == newest


# --- incremental reads past the search cap ----------------------------------------------------


def test_incremental_past_10000_with_250_sharing_a_time_at_the_cap(big_hubspot: Sandbox) -> None:
    stamps, tie = tie_at_cap_stamps()
    hubspot = hubspot_for(big_hubspot)
    pages = list(hubspot.read_changed("contacts", BASE, ["firstname"]))
    ids = ids_of(pages)
    assert len(ids) == len(stamps) == 10_550
    assert len(set(ids)) == len(ids), "a record was returned twice"
    assert set(ids) == live_ids(big_hubspot, "contacts")
    # Pages come oldest first, each carrying its newest modified time for checkpointing.
    maxima = [p.max_modified for p in pages]
    assert maxima == sorted(maxima)
    assert maxima[-1] == stamps[-1]
    assert any(p.max_modified == tie for p in pages)
    # A restart, not an endless walk: about one search per 200 records.
    assert hubspot.usage().by_operation["search"] <= math.ceil(10_550 / 200) + 3


def test_more_than_10000_at_one_instant_are_read_in_id_order(big_hubspot: Sandbox) -> None:
    stamps, _ = one_instant_stamps()
    hubspot = hubspot_for(big_hubspot)
    ids = ids_of(hubspot.read_changed("companies", BASE, ["name"]))
    assert len(ids) == len(stamps) == 10_150
    assert len(set(ids)) == len(ids)
    assert set(ids) == live_ids(big_hubspot, "companies")


def test_incremental_from_a_watermark_returns_only_later_changes(big_hubspot: Sandbox) -> None:
    stamps, tie = tie_at_cap_stamps()
    hubspot = hubspot_for(big_hubspot)
    ids = ids_of(hubspot.read_changed("contacts", tie, ["firstname"]))
    assert len(ids) == 250 + 400
    bounded = ids_of(hubspot.read_all("contacts", ["firstname"], since=tie, until=stamps[-1]))
    assert len(bounded) == 250 + 399  # `until` is exclusive


# --- backfill and its call budget ------------------------------------------------------------


def test_backfill_uses_one_list_call_per_100_records(big_hubspot: Sandbox) -> None:
    n = len(live_ids(big_hubspot, "contacts"))
    assert n >= 10_000
    big_hubspot.reset_counters()
    hubspot = hubspot_for(big_hubspot)
    ids = ids_of(hubspot.read_all("contacts", ["firstname", "lifecyclestage"]))
    assert sorted(ids) == sorted(live_ids(big_hubspot, "contacts"))
    counters = big_hubspot.counters()
    assert counters["requests"]["hubspot.list"] <= math.ceil(n / 100) + 1
    assert counters["total_requests"] <= math.ceil(n / 100) + 2
    assert hubspot.api_calls == counters["total_requests"]
    # The client-side window kept us under the server's: no 429 on the way.
    assert "429" not in counters["statuses"]["hubspot.list"]


# --- deals and their associations ---------------------------------------------------------------

CUT_OFF_PAGES = 13


@pytest.fixture(scope="module")
def deals_hubspot() -> Iterator[Sandbox]:
    """1,260 deals, 100 a list page: deal n links company n % 20 and contact n % 150, except
    every 7th (none at all) and one per page (n % 100 == 50) that links all 150 contacts,
    more than the 100 a list response inlines."""
    count = 100 * (CUT_OFF_PAGES - 1) + 60
    stamps = [BASE + timedelta(seconds=n) for n in range(count)]
    links = deal_links(count, 20, 150)
    crowded = [str(900001 + n) for n in range(count) if n % 100 == 50]
    alone = {str(900001 + n) for n in range(count) if n % 7 == 3} - set(crowded)
    for key in links:
        links[key] = [pair for pair in links[key] if pair[0] not in alone]
    links["deals/contacts"] = [pair for pair in links["deals/contacts"]
                               if pair[0] not in crowded]
    links["deals/contacts"] += [[d, str(100001 + c)] for d in crowded for c in range(150)]
    fixture = {"hubspot": {
        "contacts": hubspot_contacts([BASE] * 150),
        "companies": hubspot_companies([BASE] * 20),
        "deals": hubspot_deals(stamps),
        "associations": links,
    }}
    with Sandbox(fixture=fixture, **FAST_LIMITS) as sb:
        yield sb


def test_deal_backfill_reads_associations_inline(small_sandbox: Sandbox) -> None:
    n = len(live_ids(small_sandbox, "deals"))
    assert n > 100
    small_sandbox.reset_counters()
    hubspot = hubspot_for(small_sandbox)
    pages = received_complete(small_sandbox, hubspot.read_all("deals", ["dealname"]))
    assert sorted(ids_of(pages)) == sorted(live_ids(small_sandbox, "deals"))
    # One list call per 100 deals and nothing else: no lookup per page, none at all.
    assert small_sandbox.counters()["requests"] == {"hubspot.list": math.ceil(n / 100)}
    assert [len(p.records) for p in pages[:-1]] == [100] * (len(pages) - 1)


def test_deals_without_associations_cost_no_lookup(deals_hubspot: Sandbox) -> None:
    deals_hubspot.reset_counters()
    hubspot = hubspot_for(deals_hubspot)
    pages = received_complete(deals_hubspot, hubspot.read_all("deals", []))
    none = {"contacts": [], "companies": []}
    alone = [r for p in pages for r in p.records if linked(deals_hubspot, r["id"]) == none]
    assert len(alone) > 100  # received_complete checked each against the sandbox
    # Only the cut-off deals were looked up: a deal without associations would have made the
    # lookup answer 207 (NO_ASSOCIATIONS_FOUND for it).
    counters = deals_hubspot.counters()
    assert counters["statuses"]["hubspot.associations"] == {"200": 2}
    assert counters["records_returned"]["hubspot.associations"] == CUT_OFF_PAGES


def test_cut_off_inline_lists_are_completed_across_pages(deals_hubspot: Sandbox) -> None:
    deals_hubspot.reset_counters()
    hubspot = hubspot_for(deals_hubspot)
    pages = received_complete(deals_hubspot, hubspot.read_all("deals", ["dealname"]))
    crowded = [r for p in pages for r in p.records if len(r["associations"]["contacts"]) == 150]
    assert len(crowded) == CUT_OFF_PAGES
    assert_in_order(pages, "hs_lastmodifieddate")
    assert ids_of(pages) == sorted(live_ids(deals_hubspot, "deals"), key=int)
    requests = deals_hubspot.counters()["requests"]
    assert requests["hubspot.list"] == CUT_OFF_PAGES
    # One lookup for the first ten pages' cut-off deals, one for the last three; not 13.
    assert requests["hubspot.associations"] == math.ceil(CUT_OFF_PAGES / 10)


def test_incremental_deal_reads_share_association_lookups(big_hubspot: Sandbox) -> None:
    stamps, tie = tie_at_cap_stamps()
    big_hubspot.reset_counters()
    hubspot = hubspot_for(big_hubspot)
    pages = received_complete(big_hubspot, hubspot.read_changed("deals", BASE, ["dealname"]))
    ids = ids_of(pages)
    assert len(ids) == len(set(ids)) == len(stamps)
    assert set(ids) == live_ids(big_hubspot, "deals")
    assert_in_order(pages, "hs_lastmodifieddate")
    assert any(p.max_modified == tie for p in pages)
    assert pages[-1].max_modified == stamps[-1]
    requests = big_hubspot.counters()["requests"]
    searches = requests["hubspot.search"]
    assert searches <= math.ceil(len(stamps) / 200) + 3
    # Search cannot inline associations: each type is looked up 1,000 deals a call (a few
    # more where the cap's restart cuts a batch short), not once per 200-record page.
    lookups = requests["hubspot.associations"]
    assert 2 * math.ceil(len(stamps) / 1_000) <= lookups <= 2 * (math.ceil(len(stamps) / 1_000) + 2)
    assert lookups < searches


def test_deals_read_by_id_are_looked_up_together(deals_hubspot: Sandbox) -> None:
    wanted = sorted(live_ids(deals_hubspot, "deals"), key=int)[:250]
    deals_hubspot.reset_counters()
    hubspot = hubspot_for(deals_hubspot)
    deals = hubspot.read_by_ids("deals", wanted, [])
    assert sorted(d["id"] for d in deals) == wanted
    for deal in deals:
        assert deal["associations"] == linked(deals_hubspot, deal["id"])
    requests = deals_hubspot.counters()["requests"]
    assert requests == {"hubspot.batch_read": 3, "hubspot.associations": 2}


# --- faults ------------------------------------------------------------------------------------


def test_full_reads_with_faults_return_every_record_exactly_once(big_hubspot: Sandbox) -> None:
    big_hubspot.set_faults(REQUEST_FAULTS + ",seed=11")
    big_hubspot.reset_counters()
    try:
        hubspot = hubspot_for(big_hubspot)
        for object_type in ("contacts", "companies"):
            listed = ids_of(hubspot.read_all(object_type, []))
            assert len(listed) == len(set(listed)), object_type
            assert set(listed) == live_ids(big_hubspot, object_type), object_type
            searched = ids_of(hubspot.read_changed(object_type, BASE - timedelta(days=1), []))
            assert sorted(searched) == sorted(listed), object_type
        counters = big_hubspot.counters()
    finally:
        big_hubspot.set_faults(None)
    injected = sum(sum(kinds.values()) for kinds in counters["faults"].values())
    assert injected >= 0.10 * counters["total_requests"], (injected, counters["total_requests"])
    assert hubspot.usage().retries >= injected


def test_deal_reads_with_faults(small_sandbox: Sandbox) -> None:
    small_sandbox.set_faults(REQUEST_FAULTS + ",hubspot.associations:503=0.3,seed=4")
    hubspot = hubspot_for(small_sandbox)
    everything = datetime(2000, 1, 1, tzinfo=UTC)
    for pages in (hubspot.read_all("deals", []), hubspot.read_changed("deals", everything, [])):
        received = received_complete(small_sandbox, pages)
        assert sorted(ids_of(received)) == sorted(live_ids(small_sandbox, "deals"))
    # The incremental read looked associations up, through injected failures.
    faults = small_sandbox.counters()["faults"]
    assert sum(faults["hubspot.associations"].values()) > 0


def test_writes_with_faults_lose_nothing(small_sandbox: Sandbox) -> None:
    small_sandbox.set_faults(REQUEST_FAULTS + ",hubspot.batch_update:partial=0.15,seed=5")
    hubspot = hubspot_for(small_sandbox)
    contacts = sorted(live_ids(small_sandbox, "contacts"), key=int)
    updates = [RecordUpdate(i, {"firstname": f"Renamed {i}"}) for i in contacts]
    results = hubspot.write("contacts", updates)
    assert [r.record_id for r in results] == contacts
    assert {r.status for r in results} == {"applied"}
    for record_id in contacts:
        stored = small_sandbox.hubspot_record("contacts", record_id)
        assert stored["properties"]["firstname"] == f"Renamed {record_id}"
    # Per-record failures came back as 207s (the sandbox counts them as statuses, not faults).
    assert small_sandbox.counters()["statuses"]["hubspot.batch_update"].get("207", 0) > 0


def test_a_timeout_is_retried(small_sandbox: Sandbox) -> None:
    small_sandbox.set_faults("hubspot.list:slow=0.3,delay=0.6,seed=2")
    hubspot = hubspot_for(small_sandbox, http_timeout_seconds=0.3)
    ids = ids_of(hubspot.read_all("companies", []))
    assert sorted(ids) == sorted(live_ids(small_sandbox, "companies"))
    assert small_sandbox.counters()["faults"]["hubspot.list"]["slow"] > 0


# --- writes: per-record results and the lifecycle stage ----------------------------------------


def test_only_the_bad_records_are_rejected(small_sandbox: Sandbox) -> None:
    # An unknown id fails per input (207); an invalid value refuses the whole batch (400) and
    # only the record carrying it is rejected. (This test wrote an hs_lead_status option the
    # portal lacks before the sandbox was strict: that is now a ConfigurationError, see
    # test_hubspot_writes_strict.py.)
    hubspot = hubspot_for(small_sandbox)
    ids = sorted(live_ids(small_sandbox, "contacts"), key=int)[:5]
    updates = [RecordUpdate(i, {"hs_lead_status": "OPEN", "associatedcompanyid": "7"})
               for i in ids]
    updates[2] = RecordUpdate(ids[2], {"hs_lead_status": "OPEN", "associatedcompanyid": "x7"})
    updates.append(RecordUpdate("999999999", {"hs_lead_status": "OPEN"}))
    results = hubspot.write("contacts", updates)
    statuses = [(r.record_id, r.status, r.code) for r in results]
    assert statuses[2] == (ids[2], "rejected", "INVALID_NUMBER")
    assert statuses[5] == ("999999999", "rejected", "OBJECT_NOT_FOUND")
    assert [s for _, s, _ in statuses] == ["applied"] * 2 + ["rejected"] + ["applied"] * 2 + [
        "rejected"
    ]
    assert "x7" in (results[2].message or "")


def test_lifecycle_moves_back_in_two_requests_and_is_confirmed(small_sandbox: Sandbox) -> None:
    hubspot = hubspot_for(small_sandbox)
    ids = sorted(live_ids(small_sandbox, "contacts"), key=int)[:2]
    for record_id in ids:
        small_sandbox.update_hubspot("contacts", record_id, {"lifecyclestage": "customer"})
    small_sandbox.reset_counters()
    # A plain backward write answers 2xx and changes nothing; confirmation catches it.
    naive = hubspot.write(
        "contacts",
        [RecordUpdate(ids[0], {"lifecyclestage": "lead"})],
        confirm_fields={"lifecyclestage"},
    )
    assert (naive[0].status, naive[0].code) == ("rejected", "NOT_CONFIRMED")
    # Clear, then set, in two separate requests.
    two_step = hubspot.write(
        "contacts",
        [
            RecordUpdate(ids[1], {"lifecyclestage": ""}, step=0),
            RecordUpdate(ids[1], {"lifecyclestage": "lead"}, step=1),
        ],
        confirm_fields={"lifecyclestage"},
    )
    assert [r.status for r in two_step] == ["applied", "applied"]
    assert small_sandbox.hubspot_record("contacts", ids[1])["properties"]["lifecyclestage"] == (
        "lead"
    )
    assert small_sandbox.counters()["requests"]["hubspot.batch_update"] == 3


# --- lookups -------------------------------------------------------------------------------------


def test_read_by_ids_and_emails(small_sandbox: Sandbox) -> None:
    hubspot = hubspot_for(small_sandbox)
    contacts = [r for r in small_sandbox.hubspot_records("contacts") if not r["archived"]]
    wanted = [r["id"] for r in contacts[:150]] + ["424242424"]
    found = hubspot.read_by_ids("contacts", wanted, ["firstname"])
    assert sorted(r["id"] for r in found) == sorted(wanted[:150])
    emails = [r["properties"]["email"].upper() for r in contacts[:120] if r["properties"]["email"]]
    by_email = hubspot.read_by_emails("contacts", [*emails, "nobody@nowhere.test"], [])
    assert {r["properties"]["email"].lower() for r in by_email} == {e.lower() for e in emails}
    assert hubspot.usage().by_operation["batch_read"] == 4


def test_contacts_carry_their_company(small_sandbox: Sandbox) -> None:
    hubspot = hubspot_for(small_sandbox)
    contact = next(r for p in hubspot.read_all("contacts", []) for r in p.records)
    company = contact["properties"]["associatedcompanyid"]
    assert contact["associations"]["companies"] == ([company] if company else [])


# --- budgets, auth, secrets ----------------------------------------------------------------------


def test_search_stays_within_five_per_second() -> None:
    with Sandbox(seed=200, search_requests_per_second=5) as sb:
        hubspot = HubSpotAdapter(
            sb.hubspot_access_token,
            sb.hubspot_base_url,
            ca_bundle=sb.ca_path,
            limits=HubSpotLimits(search_per_second=5),
        )
        started = time.monotonic()
        for _ in range(8):
            list(hubspot.read_changed("companies", BASE + timedelta(days=3650), []))
        elapsed = time.monotonic() - started
        assert "429" not in sb.counters()["statuses"]["hubspot.search"]
        assert elapsed >= 0.5  # 8 searches at 5/s cannot all go in the first second


def test_a_bad_token_is_an_authentication_error_without_the_token(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with Sandbox(seed=20, **FAST_LIMITS) as sb:
        secret = "pat-na1-" + "f" * 32
        hubspot = hubspot_for(sb, hubspot_access_token=secret)
        with pytest.raises(AuthenticationError) as caught:
            list(hubspot.read_all("contacts", []))
        assert caught.value.status == 401
        good = hubspot_for(sb)
        list(good.read_changed("contacts", BASE, ["firstname"]))
        good.write("contacts", [RecordUpdate("1", {"firstname": "x"})])
        texts = [str(caught.value), repr(caught.value), repr(hubspot), repr(good), caplog.text]
        for text in texts:
            assert secret not in text
            assert sb.hubspot_access_token not in text
