"""The Salesforce sandbox behaving like a busy org: live cursors, cursor limits and expiry,
deletions and merges, logins other than client credentials, and the smaller REST resources.

Driven through simple-salesforce (or plain requests where the SDK has no call) over HTTPS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW, salesforce_client, salesforce_session

BASE = datetime(2024, 1, 1, tzinfo=UTC)
SMALL_BATCH = {"Sforce-Query-Options": "batchSize=200"}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def leads(count: int) -> list[dict[str, Any]]:
    """`count` leads, one a second from BASE, so ORDER BY SystemModstamp is their order."""
    return [
        {"LastName": f"Lead {n}", "Company": "Acme", "Status": "Open - Not Contacted",
         "Email": f"lead{n}@acme.example", "SystemModstamp": _stamp(BASE + timedelta(seconds=n)),
         "LastModifiedDate": _stamp(BASE + timedelta(seconds=n)),
         "CreatedDate": _stamp(BASE - timedelta(days=1))}
        for n in range(count)
    ]


@pytest.fixture
def org() -> Iterator[Sandbox]:
    """1,000 leads (five 200-record batches), 3 accounts with contacts and opportunities."""
    fixture = {"salesforce": {
        "Lead": leads(1_000),
        "Account": [{"Name": f"Org {n}"} for n in range(3)],
    }}
    with Sandbox(fixture=fixture, now=NOW) as sb:
        yield sb


def first_batch(sf: Salesforce, soql: str = "SELECT Id, LastName, SystemModstamp FROM Lead "
                "ORDER BY SystemModstamp, Id") -> dict[str, Any]:
    return sf.query(soql, headers=SMALL_BATCH)


# ---- cursors hold Ids; rows are read when their batch is fetched --------------------------


def test_a_row_edited_after_the_query_comes_back_in_its_old_place_with_new_values(
    org: Sandbox,
) -> None:
    # SOAP API Developer Guide, queryMore(): "Querying a standard or custom object gathers all
    # the IDs and creates a server-side cursor to page through."
    sf = salesforce_client(org)
    result = first_batch(sf)
    ids = [r["Id"] for r in org.salesforce_records("Lead")]
    by_stamp = sorted(org.salesforce_records("Lead"), key=lambda r: r["SystemModstamp"])
    target = by_stamp[450]["Id"]  # in the third batch
    org.update_salesforce("Lead", target, {"LastName": "Edited"})
    rows = list(result["records"])
    while not result["done"]:
        result = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True,
                               headers=SMALL_BATCH)
        rows.extend(result["records"])
    assert [r["Id"] for r in rows] == [r["Id"] for r in by_stamp]  # order fixed at query time
    assert len(rows) == len(ids)
    edited = rows[450]
    assert edited["Id"] == target and edited["LastName"] == "Edited"
    assert edited["SystemModstamp"] > rows[-1]["SystemModstamp"]  # newer than every later row


def test_a_row_deleted_after_the_query_is_left_out_of_its_batch(org: Sandbox) -> None:
    sf = salesforce_client(org)
    result = first_batch(sf)
    by_stamp = sorted(org.salesforce_records("Lead"), key=lambda r: r["SystemModstamp"])
    org.delete_salesforce("Lead", by_stamp[250]["Id"])
    second = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True, headers=SMALL_BATCH)
    assert len(second["records"]) == 199
    assert by_stamp[250]["Id"] not in {r["Id"] for r in second["records"]}


def test_the_eleventh_open_cursor_releases_the_oldest(org: Sandbox) -> None:
    # SOAP API Developer Guide, QueryLocator: "A user can have up to ten query cursors open at a
    # time ... the oldest of the ten cursors is released."
    sf = salesforce_client(org)
    cursors = [first_batch(sf)["nextRecordsUrl"] for _ in range(11)]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more(cursors[0], identifier_is_url=True, headers=SMALL_BATCH)
    assert caught.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    for url in cursors[1:]:
        assert len(sf.query_more(url, identifier_is_url=True, headers=SMALL_BATCH)["records"]) \
            == 200


def test_cursors_are_per_user_and_a_finished_cursor_is_closed(org: Sandbox) -> None:
    sf = salesforce_client(org)
    # A query read to its end holds no cursor: ten finished reads release nothing.
    kept = first_batch(sf)["nextRecordsUrl"]
    for _ in range(10):
        list(sf.query_all_iter("SELECT Id FROM Lead"))  # 1,000 rows: done in one batch
        done = first_batch(sf, "SELECT Id FROM Lead LIMIT 150")
        assert done["done"] and "nextRecordsUrl" not in done
    assert sf.query_more(kept, identifier_is_url=True, headers=SMALL_BATCH)["records"]


def test_an_idle_cursor_expires() -> None:
    # QueryLocator: "The queryLocator value expires automatically after 15 minutes of
    # inactivity" (scaled down here with cursor_idle_seconds).
    with Sandbox(fixture={"salesforce": {"Lead": leads(500)}}, now=NOW,
                 cursor_idle_seconds=0.3) as sb:
        sf = salesforce_client(sb)
        busy = first_batch(sf)
        idle = first_batch(sf)
        busy = sf.query_more(busy["nextRecordsUrl"], identifier_is_url=True, headers=SMALL_BATCH)
        time.sleep(0.5)
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.query_more(idle["nextRecordsUrl"], identifier_is_url=True, headers=SMALL_BATCH)
        assert caught.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_the_default_idle_expiry_is_fifteen_minutes() -> None:
    with Sandbox() as sb:
        assert sb.cursor_idle_seconds == 15 * 60


# ---- deletions and merges --------------------------------------------------------------------


def test_delete_hides_a_record_from_query_but_not_from_query_all(org: Sandbox) -> None:
    sf = salesforce_client(org)
    lead = org.salesforce_records("Lead")[0]
    deleted = org.delete_salesforce("Lead", lead["Id"])
    assert deleted["IsDeleted"] is True
    assert deleted["SystemModstamp"] > lead["SystemModstamp"]
    soql = f"SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE Id = '{lead['Id']}'"
    assert sf.query(soql)["records"] == []
    [row] = sf.query_all(soql, include_deleted=True)["records"]
    assert row["IsDeleted"] is True and row["MasterRecordId"] is None
    with pytest.raises(KeyError):
        org.delete_salesforce("Lead", lead["Id"])  # already in the recycle bin


def test_merge_deletes_the_loser_pointing_at_the_master(org: Sandbox) -> None:
    sf = salesforce_client(org)
    master, loser = (r["Id"] for r in org.salesforce_records("Account")[:2])
    contact = org.create_salesforce("Contact", {"LastName": "C", "AccountId": loser})
    before = org.salesforce_record("Account", master)["SystemModstamp"]
    org.merge_salesforce("Account", master, loser)
    [row] = sf.query_all("SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE "
                         "IsDeleted = true", include_deleted=True)["records"]
    assert (row["Id"], row["MasterRecordId"]) == (loser, master)
    assert org.salesforce_record("Account", master)["SystemModstamp"] > before
    moved = org.salesforce_record("Contact", contact["Id"])
    assert moved["AccountId"] == master and moved["SystemModstamp"] >= contact["SystemModstamp"]
    with pytest.raises(ValueError, match="cannot be merged"):
        org.merge_salesforce("Opportunity", master, loser)


def test_get_deleted_lists_deletions_in_the_timespan(org: Sandbox) -> None:
    # REST API Developer Guide, "sObject Get Deleted".
    sf = salesforce_client(org)
    gone = org.salesforce_records("Lead")[5]["Id"]
    org.delete_salesforce("Lead", gone)
    now = org.salesforce_record("Lead", gone)["SystemModstamp"]
    start = (datetime.fromisoformat(now.replace("+0000", "+00:00")) - timedelta(minutes=5))
    end = start + timedelta(minutes=10)
    answer = sf.restful("sobjects/Lead/deleted/", params={
        "start": start.isoformat(timespec="seconds"), "end": end.isoformat(timespec="seconds")})
    assert [r["id"] for r in answer["deletedRecords"]] == [gone]
    assert answer["deletedRecords"][0]["deletedDate"] == now
    assert answer["earliestDateAvailable"] < answer["latestDateCovered"]
    empty = sf.restful("sobjects/Lead/deleted/", params={
        "start": (start - timedelta(days=1)).isoformat(timespec="seconds"),
        "end": (start - timedelta(hours=1)).isoformat(timespec="seconds")})
    assert empty["deletedRecords"] == []
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("sobjects/Lead/deleted/", params={
            "start": (start - timedelta(days=40)).isoformat(timespec="seconds"),
            "end": end.isoformat(timespec="seconds")})


# ---- logins --------------------------------------------------------------------------------


def test_token_endpoint_grants(org: Sandbox) -> None:
    session = salesforce_session(org)

    def token(**form: str) -> requests.Response:
        return session.post(org.salesforce_token_url, data=form, timeout=10)

    refreshed = token(grant_type="refresh_token", client_id=org.salesforce_client_id,
                      refresh_token=org.salesforce_refresh_token)
    assert refreshed.status_code == 200 and refreshed.json()["access_token"]
    password = token(grant_type="password", client_id=org.salesforce_client_id,
                     client_secret=org.salesforce_client_secret,
                     username=org.salesforce_username,
                     password=org.salesforce_password + org.salesforce_security_token)
    assert password.status_code == 200
    wrong = token(grant_type="password", client_id=org.salesforce_client_id,
                  client_secret=org.salesforce_client_secret, username=org.salesforce_username,
                  password=org.salesforce_password)  # the security token is missing
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    unknown = token(grant_type="refresh_token", client_id="3MVGnobody", refresh_token="x")
    assert unknown.json()["error"] == "invalid_client_id"
    no_certificate = token(grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                           assertion="a.b.c")
    assert no_certificate.json() == {"error": "invalid_grant",
                                     "error_description": "invalid assertion"}


def test_soap_login_answers_session_and_server_url(org: Sandbox) -> None:
    from simple_salesforce import SalesforceLogin  # noqa: PLC0415
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed  # noqa: PLC0415

    session = salesforce_session(org)
    session_id, instance = SalesforceLogin(
        username=org.salesforce_username, password=org.salesforce_password,
        security_token=org.salesforce_security_token, scratch_url=org.base_url,
        session=session, sf_version="59.0")
    assert instance == f"127.0.0.1:{org.port}"
    sf = Salesforce(instance_url=org.base_url, session_id=session_id, session=session)
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 1_000
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        SalesforceLogin(username=org.salesforce_username, password="wrong",
                        security_token=org.salesforce_security_token,
                        scratch_url=org.base_url, session=session, sf_version="59.0")
    assert caught.value.code == "INVALID_LOGIN"


# ---- versions, global describe, limits, SOQL datetimes -------------------------------------


def test_only_the_listed_api_versions_are_served(org: Sandbox) -> None:
    session = salesforce_session(org)
    listed = session.get(org.base_url + "/services/data/", timeout=10).json()
    versions = [v["version"] for v in listed]
    assert "59.0" in versions and "99.0" not in versions
    assert listed[0] == {"label": f"v{versions[0]}", "url": f"/services/data/v{versions[0]}",
                         "version": versions[0]}
    token = org.salesforce_token(session)
    headers = {"Authorization": f"Bearer {token}"}
    good = session.get(org.base_url + f"/services/data/v{versions[-1]}/limits", headers=headers,
                       timeout=10)
    assert good.status_code == 200
    bad = session.get(org.base_url + "/services/data/v99.0/limits", headers=headers, timeout=10)
    assert bad.status_code == 404 and bad.json()[0]["errorCode"] == "NOT_FOUND"


def test_global_describe_lists_the_objects(org: Sandbox) -> None:
    answer = salesforce_client(org).describe()
    names = {s["name"]: s for s in answer["sobjects"]}
    assert {"Lead", "Contact", "Account", "Opportunity"} <= set(names)
    assert names["Lead"]["keyPrefix"] == "00Q" and names["Lead"]["queryable"] is True
    assert names["Lead"]["urls"]["describe"].endswith("/sobjects/Lead/describe")


def test_limits_has_the_usual_keys(org: Sandbox) -> None:
    limits = salesforce_client(org).limits()
    for key in ("DailyApiRequests", "DailyBulkApiBatches", "DailyBulkV2QueryJobs",
                "DailyBulkV2QueryFileStorageMB", "DailyAsyncApexExecutions", "DataStorageMB"):
        assert set(limits[key]) == {"Max", "Remaining"}, key
        assert limits[key]["Remaining"] <= limits[key]["Max"]
    assert limits["DailyApiRequests"]["Remaining"] < limits["DailyApiRequests"]["Max"]


@pytest.mark.parametrize("fraction", ["", ".5", ".25", ".125", ".0625", ".03125", ".015625"])
def test_soql_datetimes_take_one_to_six_fractional_digits(org: Sandbox, fraction: str) -> None:
    # Leads are stamped 00:00:00, 00:00:01, ...: from 00:10:00 exactly, 400 of them; from any
    # moment within the second after, 399.
    sf = salesforce_client(org)
    soql = f"SELECT COUNT() FROM Lead WHERE SystemModstamp >= 2024-01-01T00:10:00{fraction}Z"
    assert sf.query(soql)["totalSize"] == (400 if not fraction else 399)
