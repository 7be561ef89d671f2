"""The Salesforce adapter against the sandbox through simple-salesforce."""

from __future__ import annotations

import logging
import math
from datetime import timedelta

import pytest
from pydantic import SecretStr
from simple_salesforce import Salesforce

from connector.exceptions import AuthenticationError, BudgetExhausted
from connector.sandbox import Sandbox
from connector.settings import SalesforceCredentials
from connector.systems.base import RecordUpdate
from connector.systems.salesforce import SalesforceAdapter

from .helpers import (
    BASE,
    FAST_LIMITS,
    boundary_tie_stamps,
    ids_of,
    salesforce_for,
)

# >= 10% of requests fail: concurrency limits (403), server errors, drops, expired sessions.
REQUEST_FAULTS = (
    "salesforce.*:429=0.05,salesforce.*:500=0.05,salesforce.*:503=0.04,"
    "salesforce.*:drop=0.03,salesforce.query:session=0.05"
)


def live_ids(sb: Sandbox, sobject: str) -> set[str]:
    return {r["Id"] for r in sb.salesforce_records(sobject) if not r.get("IsDeleted")}


def test_equal_systemmodstamp_at_the_batch_boundary_is_not_lost(big_salesforce: Sandbox) -> None:
    stamps, tie = boundary_tie_stamps()
    salesforce = salesforce_for(big_salesforce)
    pages = list(salesforce.read_changed("Lead", BASE, ["LastName"]))
    ids = ids_of(pages, "Id")
    assert len(ids) == len(stamps) == 2_500
    assert len(set(ids)) == len(ids)
    assert set(ids) == live_ids(big_salesforce, "Lead")
    assert len(pages) == 2  # 2,000-record batches
    assert pages[0].max_modified == tie  # the first batch ends inside the tie
    assert pages[1].max_modified == stamps[-1]


def test_incremental_from_the_tie_includes_the_whole_tie(big_salesforce: Sandbox) -> None:
    _, tie = boundary_tie_stamps()
    salesforce = salesforce_for(big_salesforce)
    ids = ids_of(salesforce.read_changed("Lead", tie, ["LastName"]), "Id")
    assert len(ids) == 301 + 299


def test_an_expired_query_cursor_resumes_without_loss_or_duplicates(
    big_salesforce: Sandbox,
) -> None:
    salesforce = salesforce_for(big_salesforce)
    pages = salesforce.read_changed("Contact", BASE, [])
    first = next(pages)
    # Open enough other cursors (through the real SDK) that the sandbox forgets ours,
    # as Salesforce does with idle or surplus cursors.
    token = big_salesforce.salesforce_token()
    other = Salesforce(
        instance_url=big_salesforce.salesforce_instance_url,
        session_id=token,
        session=salesforce._http,
    )
    for _ in range(201):
        other.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=200"})
    ids = [r["Id"] for r in first.records] + ids_of(pages, "Id")
    assert len(ids) == len(set(ids)) == 10_000
    statuses = big_salesforce.counters()["statuses"]
    assert any("400" in s for s in statuses.values()), "the cursor never expired"


def test_backfill_uses_one_query_call_per_2000_records(big_salesforce: Sandbox) -> None:
    n = len(live_ids(big_salesforce, "Contact"))
    assert n >= 10_000
    big_salesforce.reset_counters()
    salesforce = salesforce_for(big_salesforce)
    ids = ids_of(salesforce.read_all("Contact", ["LastName", "Email"]), "Id")
    assert sorted(ids) == sorted(live_ids(big_salesforce, "Contact"))
    requests = big_salesforce.counters()["requests"]
    assert requests["salesforce.query"] <= math.ceil(n / 2000)
    assert big_salesforce.counters()["total_requests"] <= math.ceil(n / 2000) + 1  # + token
    usage = salesforce.usage()
    assert usage.calls == big_salesforce.counters()["total_requests"]
    assert usage.daily_used is not None and usage.daily_allocation


def test_full_read_with_faults_returns_every_record_exactly_once(
    big_salesforce: Sandbox,
) -> None:
    big_salesforce.set_faults(REQUEST_FAULTS + ",seed=3")
    big_salesforce.reset_counters()
    try:
        salesforce = salesforce_for(big_salesforce)
        for sobject in ("Contact", "Lead"):
            for _ in range(6):
                ids = ids_of(salesforce.read_changed(sobject, BASE - timedelta(days=1), []), "Id")
                assert len(ids) == len(set(ids)), sobject
                assert set(ids) == live_ids(big_salesforce, sobject), sobject
        counters = big_salesforce.counters()
    finally:
        big_salesforce.set_faults(None)
    injected = sum(sum(kinds.values()) for kinds in counters["faults"].values())
    assert injected >= 0.10 * counters["total_requests"], (injected, counters)
    assert counters["requests"].get("salesforce.token", 0) >= 2  # sessions were refreshed


def test_writes_with_faults_lose_nothing(small_sandbox: Sandbox) -> None:
    small_sandbox.set_faults(
        "salesforce.*:500=0.05,salesforce.*:503=0.05,salesforce.*:drop=0.03,"
        "salesforce.composite:lock=0.15,seed=9"
    )
    salesforce = salesforce_for(small_sandbox)
    contacts = sorted(live_ids(small_sandbox, "Contact"))
    assert len(contacts) > COLLECTION_TEST_MIN
    updates = [RecordUpdate(i, {"FirstName": f"Renamed {i[-6:]}"}) for i in contacts]
    results = salesforce.write("Contact", updates)
    assert [r.record_id for r in results] == contacts
    assert {r.status for r in results} == {"applied"}
    for record_id in contacts:
        assert small_sandbox.salesforce_record("Contact", record_id)["FirstName"] == (
            f"Renamed {record_id[-6:]}"
        )
    assert small_sandbox.counters()["requests"]["salesforce.composite"] >= math.ceil(
        len(contacts) / 200
    )


COLLECTION_TEST_MIN = 200


def test_per_record_errors_are_returned_not_raised(small_sandbox: Sandbox) -> None:
    salesforce = salesforce_for(small_sandbox)
    leads = small_sandbox.salesforce_records("Lead")
    converted = next(r["Id"] for r in leads if r["IsConverted"])
    open_leads = [r["Id"] for r in leads if not r["IsConverted"]][:3]
    updates = [
        RecordUpdate(open_leads[0], {"Status": "Working - Contacted"}),
        RecordUpdate(converted, {"Status": "Working - Contacted"}),
        RecordUpdate(open_leads[1], {"Status": "Not a status"}),
        RecordUpdate(open_leads[2], {"Status": "Working - Contacted"}),
    ]
    results = salesforce.write("Lead", updates)
    assert [(r.status, r.code) for r in results] == [
        ("applied", None),
        ("rejected", "CANNOT_UPDATE_CONVERTED_LEAD"),
        ("rejected", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ("applied", None),
    ]
    assert small_sandbox.counters()["requests"]["salesforce.composite"] == 1


def test_lookups_by_id_and_email_chunk_the_in_list(big_salesforce: Sandbox) -> None:
    salesforce = salesforce_for(big_salesforce)
    contacts = big_salesforce.salesforce_records("Contact")
    wanted = [r["Id"] for r in contacts[:3000]]
    found = salesforce.read_by_ids("Contact", [*wanted, "003Dn00000ZZZZZ"], ["LastName"])
    assert sorted(r["Id"] for r in found) == sorted(wanted)
    queries = salesforce.usage().by_operation["query"]
    assert 2 <= queries <= 6
    emails = [r["Email"].upper() for r in contacts[:50]]
    by_email = salesforce.read_by_emails("Contact", [*emails, "o'brien@nowhere.test"], [])
    assert {r["Email"].lower() for r in by_email} >= {e.lower() for e in emails}


def test_session_refresh_with_client_credentials(small_sandbox: Sandbox) -> None:
    salesforce = salesforce_for(small_sandbox)
    assert ids_of(salesforce.read_all("Account", []), "Id")
    small_sandbox.expire_salesforce_sessions()
    assert ids_of(salesforce.read_all("Account", []), "Id")
    assert small_sandbox.counters()["requests"]["salesforce.token"] == 2


def test_an_expired_bare_access_token_is_a_clear_authentication_error(
    small_sandbox: Sandbox, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    token = small_sandbox.salesforce_token()
    salesforce = SalesforceAdapter(
        SalesforceCredentials(
            kind="access_token",
            instance_url=small_sandbox.salesforce_instance_url,
            access_token=SecretStr(token),
        ),
        ca_bundle=small_sandbox.ca_path,
    )
    assert ids_of(salesforce.read_all("Account", []), "Id")
    small_sandbox.expire_salesforce_sessions()
    with pytest.raises(AuthenticationError, match="cannot be refreshed") as caught:
        list(salesforce.read_all("Account", []))
    for text in (str(caught.value), repr(salesforce), caplog.text):
        assert token not in text
        assert small_sandbox.salesforce_client_secret not in text


def test_wrong_client_secret_is_an_authentication_error(small_sandbox: Sandbox, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-" + "s" * 30
    salesforce = salesforce_for(small_sandbox, salesforce_client_secret=secret)
    with pytest.raises(AuthenticationError, match="invalid_client") as caught:
        list(salesforce.read_all("Account", []))
    assert secret not in str(caught.value) and secret not in caplog.text


def test_the_run_stops_before_its_share_of_the_daily_allocation() -> None:
    with Sandbox(seed=200, salesforce_daily_limit=40, **FAST_LIMITS) as sb:
        salesforce = salesforce_for(sb, salesforce_max_daily_share=0.5)
        with pytest.raises(BudgetExhausted, match="CRMSYNC_SALESFORCE_MAX_DAILY_SHARE"):
            for _ in range(100):
                salesforce.read_by_ids("Account", ["001Dn000000001"], [])
        used, allocation = salesforce.usage().daily_used, salesforce.usage().daily_allocation
        assert allocation == 40
        assert used is not None and used <= 20
        statuses = sb.counters()["statuses"]
        assert "403" not in statuses.get("salesforce.query", {})


def test_a_timeout_is_retried(small_sandbox: Sandbox) -> None:
    small_sandbox.set_faults("salesforce.query:slow=0.4,delay=0.6,seed=1")
    salesforce = salesforce_for(small_sandbox, http_timeout_seconds=0.3)
    ids = ids_of(salesforce.read_all("Lead", []), "Id")
    assert set(ids) == live_ids(small_sandbox, "Lead")
