"""The HubSpot adapter against a busy portal: garbled 200s, edits between search pages, paged
associations, deletions and merges, and TLS failures, all through the real SDK."""

from __future__ import annotations

import math
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from connector.exceptions import ApiError, RetriableApiError
from connector.sandbox import Sandbox
from connector.sandbox._tls import SandboxTls
from connector.systems.base import Tombstone, parse_timestamp
from connector.systems.hubspot import HubSpotAdapter

from .helpers import (
    BASE,
    FAST_LIMITS,
    hubspot_contacts,
    hubspot_deals,
    hubspot_for,
    ids_of,
)


def _contacts_sandbox(count: int, **kwargs) -> Sandbox:
    stamps = [BASE + timedelta(seconds=n) for n in range(count)]
    return Sandbox(fixture={"hubspot": {"contacts": hubspot_contacts(stamps)}},
                   **{**FAST_LIMITS, **kwargs})


# ---- 1. a 200 that is not an answer is never the end of a read ------------------------------


@pytest.mark.parametrize("kind", ["empty", "braces", "html", "truncated"])
def test_a_garbled_200_mid_read_is_retried_not_the_end(kind: str) -> None:
    with _contacts_sandbox(1000) as sb:
        hubspot = hubspot_for(sb)
        # The 2nd list page and the 3rd search page come back broken once.
        sb.before_request("hubspot.list", 2, lambda: sb.set_faults(f"hubspot.list:{kind}=1"))
        sb.before_request("hubspot.list", 3, lambda: sb.set_faults(None))
        listed = ids_of(hubspot.read_all("contacts", ["firstname"]))
        assert len(set(listed)) == len(listed) == 1000
        sb.before_request("hubspot.search", 3, lambda: sb.set_faults(f"hubspot.search:{kind}=1"))
        sb.before_request("hubspot.search", 4, lambda: sb.set_faults(None))
        searched = ids_of(hubspot.read_changed("contacts", BASE, ["firstname"]))
        assert len(set(searched)) == len(searched) == 1000


def test_garbled_200s_that_never_stop_fail_with_a_clear_error() -> None:
    with _contacts_sandbox(10, faults="hubspot.search:braces=1") as sb:
        hubspot = hubspot_for(sb, retry_max_attempts=3)
        with pytest.raises(ApiError) as failed:
            list(hubspot.read_changed("contacts", BASE, ["firstname"]))
        assert isinstance(failed.value, RetriableApiError)
        message = str(failed.value)
        assert "/crm/v3/objects/contacts/search" in message
        assert "results" in message
        assert sb.counters()["requests"]["hubspot.search"] == 3


# ---- TLS --------------------------------------------------------------------------------------


@pytest.fixture
def untrusted_server(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server whose certificate is signed by a CA the client does not know."""
    tls = SandboxTls.create(tmp_path)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_certificate_the_client_does_not_trust_is_a_clear_api_error(
    untrusted_server: str, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    other_ca = SandboxTls.create(tmp_path / "other")
    hubspot = HubSpotAdapter("pat-na1-test", untrusted_server, ca_bundle=str(other_ca.ca_path))
    with pytest.raises(ApiError) as failed:
        list(hubspot.read_all("contacts", ["email"]))
    message = str(failed.value)
    assert f"TLS verification failed for {untrusted_server}" in message
    assert not isinstance(failed.value, RetriableApiError)
    assert ssl.SSLError.__name__ not in type(failed.value).__name__


# ---- 2. keyset paging: an edit between search pages loses nothing ---------------------------


def test_an_edit_to_an_already_read_record_between_search_pages_loses_nothing() -> None:
    with _contacts_sandbox(1000) as sb:
        hubspot = hubspot_for(sb)
        # Before the 2nd search page: a user edits the first contact, already read.
        sb.before_request("hubspot.search", 2,
                          lambda: sb.update_hubspot("contacts", "100001", {"firstname": "x"}))
        ids = ids_of(hubspot.read_changed("contacts", BASE - timedelta(minutes=2), ["email"]))
        assert set(ids) == {str(100001 + n) for n in range(1000)}, (
            f"{len(set(ids))} of 1000 unique")
        # The edited record is read again with its new value, at the end; nothing else twice.
        assert len(ids) == 1001 and ids[-1] == "100001"
        # One search per 200 rows read, as offset paging would spend on the same rows.
        assert hubspot.usage().by_operation["search"] == math.ceil(len(ids) / 200)


def test_an_edit_to_the_last_record_read_between_pages_loses_nothing() -> None:
    with _contacts_sandbox(1000) as sb:
        hubspot = hubspot_for(sb)
        sb.before_request("hubspot.search", 2,
                          lambda: sb.update_hubspot("contacts", "100200", {"firstname": "x"}))
        ids = ids_of(hubspot.read_changed("contacts", BASE, ["email"]))
        assert set(ids) == {str(100001 + n) for n in range(1000)}


# ---- 4. association pages are followed to the end -------------------------------------------


def test_a_deal_with_more_contacts_than_an_association_page_keeps_every_link() -> None:
    contacts = hubspot_contacts([BASE] * 8)
    deals = hubspot_deals([BASE + timedelta(seconds=n) for n in range(3)])
    links = {"deals/contacts": [["900001", c["id"]] for c in contacts]
             + [["900002", "100001"]]}
    fixture = {"hubspot": {"contacts": contacts, "deals": deals, "associations": links}}
    with Sandbox(fixture=fixture, association_page_size=3, **FAST_LIMITS) as sb:
        hubspot = hubspot_for(sb)
        pages = list(hubspot.read_changed("deals", BASE, ["dealname"]))
        deals_read = {r["id"]: r for p in pages for r in p.records}
        assert deals_read["900001"]["associations"]["contacts"] == [c["id"] for c in contacts]
        assert deals_read["900002"]["associations"]["contacts"] == ["100001"]
        assert deals_read["900003"]["associations"]["contacts"] == []
        # Only the crowded deal needs more pages: ceil(8 / 3) calls.
        assert hubspot.usage().by_operation["associations"] == 3 + 1  # + companies
        by_id = {r["id"]: r for r in hubspot.read_by_ids("deals", ["900001"], [])}
        assert len(by_id["900001"]["associations"]["contacts"]) == 8


# ---- 5. deletions and merges --------------------------------------------------------------


def test_read_deleted_yields_tombstones_since_a_time() -> None:
    with _contacts_sandbox(20) as sb:
        hubspot = hubspot_for(sb)
        assert [t for p in hubspot.read_deleted("contacts", None) for t in p.tombstones] == []
        first = _instant(sb.delete_hubspot("contacts", "100003")["archivedAt"])
        time.sleep(0.005)  # a later millisecond for the second deletion (not a timing check)
        second = _instant(sb.delete_hubspot("contacts", "100007")["archivedAt"])
        assert second > first
        pages = list(hubspot.read_deleted("contacts", None))
        tombstones = [t for p in pages for t in p.tombstones]
        assert sorted(tombstones, key=lambda t: t.record_id) == [
            Tombstone("100003", deleted_at=first), Tombstone("100007", deleted_at=second)]
        assert all(p.records == [] for p in pages)
        assert max(p.max_modified for p in pages) == second
        later = [t for p in hubspot.read_deleted("contacts", second) for t in p.tombstones]
        assert later == [Tombstone("100007", deleted_at=second)]


def test_a_merge_puts_tombstones_for_the_merged_ids_on_the_survivors_page() -> None:
    with _contacts_sandbox(20) as sb:
        hubspot = hubspot_for(sb)
        sb.merge_hubspot("contacts", "100002", "100005")
        sb.merge_hubspot("contacts", "100002", "100009")
        for read in (hubspot.read_changed("contacts", BASE, ["email"]),
                     hubspot.read_all("contacts", ["email"])):
            pages = list(read)
            tombstones = [t for p in pages for t in p.tombstones]
            assert sorted(tombstones, key=lambda t: t.record_id) == [
                Tombstone("100005", merged_into="100002"),
                Tombstone("100009", merged_into="100002")]
            survivor = next(r for p in pages for r in p.records if r["id"] == "100002")
            assert survivor["properties"]["hs_merged_object_ids"] == "100005;100009"
            assert "100005" not in ids_of(pages)


def _instant(text: str) -> datetime:
    moment = parse_timestamp(text)
    assert moment is not None
    return moment
