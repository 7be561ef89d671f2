"""The Salesforce emulation, driven through the real simple-salesforce over HTTPS."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW, salesforce_client, salesforce_session


@pytest.fixture(scope="module")
def large() -> Iterator[Sandbox]:
    """Enough Contacts (> 2,000) for several query batches."""
    with Sandbox(seed=1700, now=NOW) as sb:
        yield sb


def _composite(sf: Salesforce, records: list[dict], all_or_none: bool = False) -> list[dict]:
    return sf.restful("composite/sobjects", method="PATCH",
                      json={"allOrNone": all_or_none, "records": records})


def _lead(sb: Sandbox, **fields) -> dict:
    base = {"LastName": "Jansen", "Company": "Polder B.V.", "Status": "Open - Not Contacted",
            "Email": "anna.jansen@polder.nl"}
    return sb.create_salesforce("Lead", {**base, **fields})


# ---- OAuth --------------------------------------------------------------------------------


def test_token_endpoint_issues_tokens_for_the_right_client_only(seeded: Sandbox) -> None:
    session = salesforce_session(seeded)
    good = session.post(seeded.salesforce_token_url, data={
        "grant_type": "client_credentials", "client_id": seeded.salesforce_client_id,
        "client_secret": seeded.salesforce_client_secret})
    assert good.status_code == 200
    assert good.json()["instance_url"] == seeded.salesforce_instance_url
    assert good.json()["token_type"] == "Bearer"
    bad = session.post(seeded.salesforce_token_url, data={
        "grant_type": "client_credentials", "client_id": seeded.salesforce_client_id,
        "client_secret": "wrong"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_client"


def test_expired_session_is_401_and_a_new_token_works(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    sf.query("SELECT Id FROM Account LIMIT 1")
    fresh.expire_salesforce_sessions()
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert expired.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    refreshed = salesforce_client(fresh)
    assert refreshed.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1


def test_sessions_expire_after_their_ttl() -> None:
    with Sandbox(seed=3, now=NOW, session_ttl_seconds=1.0) as sb:
        sf = salesforce_client(sb)
        sf.query("SELECT Id FROM Lead LIMIT 1")
        time.sleep(1.1)
        with pytest.raises(SalesforceExpiredSession):
            sf.query("SELECT Id FROM Lead LIMIT 1")


def test_wrong_token_is_401(seeded: Sandbox) -> None:
    sf = Salesforce(instance_url=seeded.salesforce_instance_url, session_id="00D!nope",
                    session=salesforce_session(seeded), version="59.0")
    with pytest.raises(SalesforceExpiredSession):
        sf.limits()


# ---- query --------------------------------------------------------------------------------


def test_query_pages_in_2000_record_batches_to_the_end(large: Sandbox) -> None:
    sf = salesforce_client(large)
    first = sf.query("SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id")
    assert len(first["records"]) == 2000
    assert first["done"] is False
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    records, page = list(first["records"]), first
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        records.extend(page["records"])
    ids = [r["Id"] for r in records]
    live = {r["Id"] for r in large.salesforce_records("Contact") if not r["IsDeleted"]}
    assert len(ids) == len(set(ids)) == first["totalSize"]
    assert set(ids) == live
    stamps = [r["SystemModstamp"] for r in records]
    assert stamps == sorted(stamps)
    # The generator makes records share a SystemModstamp across the batch boundary.
    assert records[1999]["SystemModstamp"] == records[2000]["SystemModstamp"]


def test_batch_size_header_is_honoured(large: Sandbox) -> None:
    sf = salesforce_client(large)
    page = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=300"})
    assert len(page["records"]) == 300
    more = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert len(more["records"]) == 300
    assert not {r["Id"] for r in page["records"]} & {r["Id"] for r in more["records"]}


def test_query_all_iter_sees_every_record(large: Sandbox) -> None:
    sf = salesforce_client(large)
    ids = [r["Id"] for r in sf.query_all_iter("SELECT Id FROM Lead")]
    assert len(ids) == len({r["Id"] for r in large.salesforce_records("Lead")
                            if not r["IsDeleted"]})


def test_query_all_includes_deleted_records(seeded: Sandbox) -> None:
    sf = salesforce_client(seeded)
    deleted = {r["Id"] for r in seeded.salesforce_records("Lead") if r["IsDeleted"]}
    assert deleted, "the generator deletes a few leads"
    live = {r["Id"] for r in sf.query_all("SELECT Id FROM Lead")["records"]}
    everything = {r["Id"] for r in sf.query_all("SELECT Id, IsDeleted FROM Lead",
                                                include_deleted=True)["records"]}
    assert not deleted & live
    assert deleted <= everything


def test_where_modstamp_and_email_in_are_case_insensitive(seeded: Sandbox) -> None:
    sf = salesforce_client(seeded)
    contacts = seeded.salesforce_records("Contact")
    emails = [c["Email"] for c in contacts[:3]]
    listed = ", ".join(f"'{e.upper()}'" for e in emails)
    found = sf.query(f"SELECT Id, Email FROM Contact WHERE Email IN ({listed})")["records"]
    assert {r["Email"].lower() for r in found} == {e.lower() for e in emails}
    watermark = "2025-05-01T00:00:00Z"
    recent = sf.query_all(
        f"SELECT Id FROM Contact WHERE SystemModstamp >= {watermark} AND IsDeleted = false "
        "ORDER BY SystemModstamp, Id")["records"]
    expected = {c["Id"] for c in contacts
                if c["SystemModstamp"] >= "2025-05-01T00:00:00.000+0000" and not c["IsDeleted"]}
    assert {r["Id"] for r in recent} == expected
    limited = sf.query("SELECT Id FROM Contact ORDER BY Id DESC LIMIT 5")["records"]
    assert [r["Id"] for r in limited] == sorted((c["Id"] for c in contacts
                                                 if not c["IsDeleted"]), reverse=True)[:5]


def test_ids_match_in_15_character_form(seeded: Sandbox) -> None:
    sf = salesforce_client(seeded)
    account = seeded.salesforce_records("Account")[0]["Id"]
    found = sf.query(f"SELECT Id FROM Account WHERE Id = '{account[:15]}'")["records"]
    assert [r["Id"] for r in found] == [account]
    assert sf.Account.get(account[:15])["Id"] == account


def test_count_answers_total_size_without_records(seeded: Sandbox) -> None:
    sf = salesforce_client(seeded)
    leads = seeded.salesforce_records("Lead")
    live = [r for r in leads if not r["IsDeleted"]]
    assert len(live) < len(leads), "the generator deletes a few leads"
    seeded.reset_counters()
    answer = sf.query("SELECT COUNT() FROM Lead")
    assert answer == {"totalSize": len(live), "done": True, "records": []}
    counters = seeded.counters()
    assert counters["requests"] == {"salesforce.query": 1}
    assert counters["records_returned"] == {"salesforce.query": 0}
    assert counters["statuses"] == {"salesforce.query": {"200": 1}}
    everything = sf.query("SELECT COUNT() FROM Lead", include_deleted=True)  # queryAll
    assert everything == {"totalSize": len(leads), "done": True, "records": []}


def test_count_with_where_matches_the_records_query(seeded: Sandbox) -> None:
    sf = salesforce_client(seeded)
    where = ("WHERE SystemModstamp >= 2025-03-01T00:00:00Z AND SystemModstamp < "
             "2025-05-01T00:00:00Z AND IsConverted = false")
    records = sf.query_all(f"SELECT Id FROM Lead {where}")["records"]
    assert 0 < len(records) < len(seeded.salesforce_records("Lead"))
    counted = sf.query(f"SELECT COUNT() FROM Lead {where}")
    assert counted == {"totalSize": len(records), "done": True, "records": []}
    assert sf.query("SELECT COUNT() FROM Lead LIMIT 3")["totalSize"] == 3


def test_count_of_more_than_a_batch_has_no_cursor(large: Sandbox) -> None:
    sf = salesforce_client(large)
    live = [r for r in large.salesforce_records("Contact") if not r["IsDeleted"]]
    assert len(live) > 2000
    answer = sf.query("SELECT COUNT() FROM Contact")
    assert answer == {"totalSize": len(live), "done": True, "records": []}


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT COUNT(Id) FROM Lead GROUP BY Status", "MALFORMED_QUERY"),
        ("SELECT Status, COUNT(Id) FROM Lead GROUP BY Status", "MALFORMED_QUERY"),
        ("SELECT COUNT(Id) FROM Lead", "MALFORMED_QUERY"),
        ("SELECT COUNT() FROM Lead GROUP BY Status", "MALFORMED_QUERY"),
        ("SELECT COUNT() n FROM Lead", "MALFORMED_QUERY"),
        ("SELECT COUNT() FROM Lead ORDER BY Id", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE Email = 'a' OR Email = 'b'", "MALFORMED_QUERY"),
        ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE CreatedDate > TODAY", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE SystemModstamp >= '2024-01-01T00:00:00Z'", "INVALID_FIELD"),
        ("SELECT Id, Account.Name FROM Contact", "MALFORMED_QUERY"),
        ("SELEKT Id FROM Lead", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Lead", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
    ],
)
def test_unsupported_soql_is_400_with_the_error_code(seeded: Sandbox, soql: str, code: str) -> None:
    sf = salesforce_client(seeded)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query(soql)
    assert refused.value.status == 400
    assert refused.value.content[0]["errorCode"] == code


# ---- describe, limits, headers ------------------------------------------------------------


def test_describe_lists_restricted_picklists_with_localised_values(seeded: Sandbox) -> None:
    sf = salesforce_client(seeded)
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    status = fields["Status"]
    assert status["restrictedPicklist"] is True
    values = [v["value"] for v in status["picklistValues"]]
    assert {"Open - Not Contacted", "Liidi", "Salgskvalifisert lead", "Nieuw"} <= set(values)
    assert fields["IsConverted"]["updateable"] is False
    account = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert {"Prospect", "Kunde", "Klant"} <= {v["value"] for v in account["Type"]["picklistValues"]}
    assert sf.Contact.describe()["keyPrefix"] == "003"


def test_every_response_carries_sforce_limit_info(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    seen: list[str | None] = []
    sf.session.hooks["response"].append(
        lambda response, **_: seen.append(response.headers.get("Sforce-Limit-Info")))
    sf.limits()
    sf.query("SELECT Id FROM Lead LIMIT 1")
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT Id FROM Lead WHERE")
    assert len(seen) == 3
    assert all(v is not None and v.startswith("api-usage=") for v in seen)
    used = [int(v.split("=")[1].split("/")[0]) for v in seen if v]
    assert used == sorted(used) and used[-1] == used[0] + 2
    assert sf.limits()["DailyApiRequests"]["Max"] == 100_000


def test_daily_allocation_exhausted_is_403_request_limit_exceeded() -> None:
    with Sandbox(seed=3, now=NOW, salesforce_daily_limit=3) as sb:
        sf = salesforce_client(sb)
        for _ in range(3):
            sf.query("SELECT Id FROM Lead LIMIT 1")
        assert sf.api_usage["api-usage"].used == 3
        with pytest.raises(SalesforceRefusedRequest) as refused:
            sf.query("SELECT Id FROM Lead LIMIT 1")
        assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


# ---- composite updates ----------------------------------------------------------------------


def test_composite_update_writes_and_bumps_system_modstamp(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    account = fresh.salesforce_records("Account")[0]
    results = _composite(sf, [{"attributes": {"type": "Account"}, "id": account["Id"],
                               "Buying_Signal__c": True, "Priority__c": "trigger_fit",
                               "Buying_Signal_Date__c": "2025-05-20"}])
    assert results == [{"id": account["Id"], "success": True, "errors": []}]
    stored = fresh.salesforce_record("Account", account["Id"])
    assert stored["Buying_Signal__c"] is True
    assert stored["Priority__c"] == "trigger_fit"
    assert stored["SystemModstamp"] > account["SystemModstamp"]
    assert stored["LastModifiedDate"] == stored["SystemModstamp"]


def test_converted_lead_and_restricted_picklist_are_rejected_per_record(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    converted = next(r for r in fresh.salesforce_records("Lead") if r["IsConverted"])
    assert fresh.salesforce_record("Contact", converted["ConvertedContactId"])
    open_lead = _lead(fresh)
    contact = fresh.salesforce_records("Contact")[0]
    results = _composite(sf, [
        {"attributes": {"type": "Lead"}, "id": converted["Id"], "Priority__c": "fit"},
        {"attributes": {"type": "Lead"}, "id": open_lead["Id"], "Status": "Maybe Later"},
        {"attributes": {"type": "Contact"}, "id": contact["Id"], "Lifecycle_Stage__c": "SQL"},
    ])
    assert results[0]["success"] is False
    assert results[0]["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert "id" not in results[0]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[1]["errors"][0]["fields"] == ["Status"]
    assert results[2] == {"id": contact["Id"], "success": True, "errors": []}
    assert fresh.salesforce_record("Lead", open_lead["Id"])["Status"] == "Open - Not Contacted"


def test_all_or_none_rolls_back_every_record(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    lead = _lead(fresh)
    contact = fresh.salesforce_records("Contact")[0]
    results = _composite(sf, [
        {"attributes": {"type": "Contact"}, "id": contact["Id"], "Lifecycle_Stage__c": "Customer"},
        {"attributes": {"type": "Lead"}, "id": lead["Id"], "Priority__c": "urgent"},
    ], all_or_none=True)
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert fresh.salesforce_record("Contact", contact["Id"]) == contact


def test_composite_refuses_more_than_200_and_unknown_fields(fresh: Sandbox) -> None:
    sf = salesforce_client(fresh)
    lead = _lead(fresh)
    record = {"attributes": {"type": "Lead"}, "id": lead["Id"], "Priority__c": "fit"}
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        _composite(sf, [record] * 201)
    assert too_many.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        _composite(sf, [{**record, "Nope__c": 1}])
    assert unknown.value.content[0]["errorCode"] == "INVALID_FIELD"
    read_only = _composite(sf, [{**record, "IsConverted": True}])
    assert read_only[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_user_update_helper_moves_system_modstamp(fresh: Sandbox) -> None:
    lead = _lead(fresh)
    time.sleep(0.002)
    changed = fresh.update_salesforce("Lead", lead["Id"], {"Status": "Working - Contacted"})
    assert changed["SystemModstamp"] > lead["SystemModstamp"]
    sf = salesforce_client(fresh)
    found = sf.query(f"SELECT Status FROM Lead WHERE SystemModstamp > "
                     f"{lead['SystemModstamp'].replace('+0000', 'Z')}")["records"]
    assert [r["Status"] for r in found] == ["Working - Contacted"]


def test_plain_requests_session_can_use_the_api(seeded: Sandbox) -> None:
    """No SDK: the raw shape a client would see, including the attributes block."""
    session = requests.Session()
    session.verify = seeded.ca_path
    session.trust_env = False
    token = seeded.salesforce_token(session)
    response = session.get(
        f"{seeded.salesforce_instance_url}/services/data/v59.0/query",
        params={"q": "SELECT Id, Name FROM Account LIMIT 2"},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert body["records"][0]["attributes"]["type"] == "Account"
    assert body["records"][0]["attributes"]["url"].endswith(body["records"][0]["Id"])
