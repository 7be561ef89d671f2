"""The Salesforce adapter against a busy org: answers that are not what they seem, records
edited, deleted and merged while a read pages through them, cursors released under it, and
every login method end to end. All through the real SDK against the sandbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from connector.exceptions import ApiError, AuthenticationError, ConfigurationError
from connector.sandbox import Sandbox
from connector.systems.base import Page
from connector.systems.salesforce import SalesforceAdapter
from tests.sandbox.clients import salesforce_client

from .helpers import BASE, FAST_LIMITS, ids_of, salesforce_for, salesforce_rows

LEADS = 5_000  # three 2,000-record batches
LEAD_FIELDS = {"Company": "Acme", "Status": "Open - Not Contacted"}


def lead_stamps() -> list[datetime]:
    return [BASE + timedelta(seconds=n) for n in range(LEADS)]


@pytest.fixture
def org() -> Iterator[Sandbox]:
    """5,000 leads, one a second from BASE (so their order by SystemModstamp is known), and a
    few accounts with contacts and opportunities for merges."""
    fixture = {"salesforce": {
        "Lead": salesforce_rows("Lead", lead_stamps(), LEAD_FIELDS),
        "Account": [{"Name": f"Org {n}"} for n in range(3)],
    }}
    with Sandbox(fixture=fixture, **FAST_LIMITS) as sb:
        yield sb


def leads_in_order(sb: Sandbox) -> list[dict[str, Any]]:
    return sorted(sb.salesforce_records("Lead"), key=lambda r: (r["SystemModstamp"], r["Id"]))


def release_every_cursor(sb: Sandbox) -> None:
    """Another tool signed in as the same API user opens ten cursors: the user's oldest
    (ours) is released, as a real org does with an integration user shared by several tools."""
    other = salesforce_client(sb)
    for _ in range(10):
        other.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=200"})


# ---- 1. a 200 that is no answer is never the end of a read ---------------------------------


@pytest.mark.parametrize("kind", ["sf_empty_body", "sf_empty_object", "sf_no_locator"])
def test_a_broken_answer_mid_read_is_retried_not_taken_for_the_end(org: Sandbox,
                                                                   kind: str) -> None:
    org.before_request("salesforce.query", 2, lambda: org.set_faults(f"salesforce.query:{kind}=1"))
    org.before_request("salesforce.query", 3, lambda: org.set_faults(None))
    ids = ids_of(salesforce_for(org).read_changed("Lead", BASE, []), "Id")
    assert len(ids) == len(set(ids)) == LEADS


@pytest.mark.parametrize("kind", ["sf_empty_object", "sf_no_locator"])
def test_a_broken_answer_that_persists_is_an_api_error(org: Sandbox, kind: str) -> None:
    org.before_request("salesforce.query", 2, lambda: org.set_faults(f"salesforce.query:{kind}=1"))
    adapter = salesforce_for(org, retry_max_attempts=3)
    with pytest.raises(ApiError, match="not a complete query answer"):
        list(adapter.read_changed("Lead", BASE, []))
    assert org.counters()["requests"]["salesforce.query"] == 1 + 3


# ---- 2. live cursors: a record edited mid-read ---------------------------------------------


@pytest.mark.parametrize("position", [2_500, 3_999])  # inside, and last of, the second batch
def test_a_record_edited_mid_read_loses_nothing(org: Sandbox, position: int) -> None:
    target = leads_in_order(org)[position]["Id"]
    org.before_request("salesforce.query", 2,
                       lambda: org.update_salesforce("Lead", target, {"LastName": "Edited"}))
    pages = list(salesforce_for(org).read_changed("Lead", BASE, ["LastName"]))
    ids = ids_of(pages, "Id")
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(r["Id"] for r in org.salesforce_records("Lead"))
    edited = next(r for page in pages for r in page.records if r["Id"] == target)
    assert edited["LastName"] == "Edited"


@pytest.mark.parametrize("position", [2_500, 3_999])
def test_no_page_lets_the_watermark_pass_an_unread_record(org: Sandbox, position: int) -> None:
    """After each page, every record not read yet must be at or after its max_modified, or a
    run that stops there (the engine checkpoints every page) never reads it."""
    stamps = lead_stamps()
    target = leads_in_order(org)[position]["Id"]
    org.before_request("salesforce.query", 2,
                       lambda: org.update_salesforce("Lead", target, {"LastName": "Edited"}))
    pages = list(salesforce_for(org).read_changed("Lead", BASE, []))
    read = 0
    for page in pages:
        read += len(page.records)
        if read < LEADS:
            assert page.max_modified is not None
            assert page.max_modified <= stamps[read], (read, page.max_modified)
    assert pages[-1].max_modified == stamps[-1]


def test_a_released_cursor_resumes_from_the_last_complete_stamp(org: Sandbox) -> None:
    target = leads_in_order(org)[2_100]["Id"]
    org.before_request("salesforce.query", 2,
                       lambda: org.update_salesforce("Lead", target, {"LastName": "Edited"}))
    org.before_request("salesforce.query", 3, lambda: release_every_cursor(org))
    adapter = salesforce_for(org)
    pages = list(adapter.read_changed("Lead", BASE, []))
    ids = ids_of(pages, "Id")
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(r["Id"] for r in org.salesforce_records("Lead"))
    statuses = org.counters()["statuses"]["salesforce.query"]
    assert statuses.get("400", 0) >= 1, "the cursor was never released"


def test_resumes_are_bounded_when_every_cursor_is_released(org: Sandbox) -> None:
    adapter = salesforce_for(org)
    for n in range(2, 40):
        org.before_request("salesforce.query", n, lambda: release_every_cursor(org))
    ids = ids_of(adapter.read_changed("Lead", BASE, []), "Id")
    assert len(ids) == len(set(ids)) == LEADS  # every resumed query still makes progress


# ---- 3. a backfill survives a released cursor ----------------------------------------------


def test_a_backfill_resumes_after_its_cursor_is_released(org: Sandbox) -> None:
    org.before_request("salesforce.query", 2, lambda: release_every_cursor(org))
    ids = ids_of(salesforce_for(org).read_all("Lead", ["LastName"]), "Id")
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(r["Id"] for r in org.salesforce_records("Lead"))


def test_a_backfill_still_costs_one_call_per_batch(org: Sandbox) -> None:
    ids = ids_of(salesforce_for(org).read_all("Lead", []), "Id")
    assert len(ids) == LEADS
    assert org.counters()["requests"]["salesforce.query"] == 3


# ---- 4. deletions and merges ---------------------------------------------------------------


def tombstones(pages: list[Page]) -> dict[str, Any]:
    return {t.record_id: t for page in pages for t in page.tombstones}


def test_deletions_and_merges_are_read_as_tombstones(org: Sandbox) -> None:
    now = datetime.now(UTC)
    leads = leads_in_order(org)
    gone, master, loser = leads[10]["Id"], leads[20]["Id"], leads[30]["Id"]
    deleted = org.delete_salesforce("Lead", gone)
    org.merge_salesforce("Lead", master, loser)
    adapter = salesforce_for(org)
    pages = list(adapter.read_deleted("Lead", now - timedelta(minutes=5)))
    found = tombstones(pages)
    assert set(found) == {gone, loser}
    assert found[gone].merged_into is None
    assert found[loser].merged_into == master
    assert found[gone].deleted_at == datetime.fromisoformat(
        deleted["SystemModstamp"].replace("+0000", "+00:00"))
    assert all(not page.records for page in pages)
    assert pages[-1].max_modified == max(t.deleted_at for t in found.values())
    # the survivor is read as changed, the deleted ones no longer are
    changed = ids_of(adapter.read_changed("Lead", now - timedelta(minutes=5), []), "Id")
    assert changed == [master]


def test_deletions_before_since_are_not_read_again(org: Sandbox) -> None:
    leads = leads_in_order(org)
    org.delete_salesforce("Lead", leads[0]["Id"])
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert not tombstones(list(salesforce_for(org).read_deleted("Lead", later)))
    assert set(tombstones(list(salesforce_for(org).read_deleted("Lead", None)))) == {
        leads[0]["Id"]}


def test_account_merge_and_opportunity_delete(org: Sandbox) -> None:
    accounts = org.salesforce_records("Account")
    master, loser = accounts[0]["Id"], accounts[1]["Id"]
    contact = org.create_salesforce("Contact", {"LastName": "C", "AccountId": loser})
    deal = org.create_salesforce("Opportunity", {"Name": "D", "StageName": "Prospecting",
                                                 "CloseDate": "2025-01-01", "AccountId": loser})
    since = datetime.now(UTC) - timedelta(minutes=1)
    org.merge_salesforce("Account", master, loser)
    org.delete_salesforce("Opportunity", deal["Id"])
    adapter = salesforce_for(org)
    assert tombstones(list(adapter.read_deleted("Account", since)))[loser].merged_into == master
    opportunity = tombstones(list(adapter.read_deleted("Opportunity", since)))
    assert set(opportunity) == {deal["Id"]} and opportunity[deal["Id"]].merged_into is None
    assert org.salesforce_record("Contact", contact["Id"])["AccountId"] == master


def test_reading_no_deletions_costs_one_call_per_object(org: Sandbox) -> None:
    adapter = salesforce_for(org)
    before = org.counters()["requests"].get("salesforce.query", 0)
    for sobject in ("Lead", "Contact", "Account", "Opportunity"):
        assert not list(adapter.read_deleted(sobject, datetime.now(UTC) - timedelta(days=1)))
    assert org.counters()["requests"]["salesforce.query"] - before == 4


# ---- 5. every login method, end to end -----------------------------------------------------


def key_and_certificate(tmp_path: Path) -> tuple[Path, bytes]:
    """An RSA key (the integration keeps it) and a self-signed certificate (uploaded to the
    connected app), as the JWT bearer flow needs."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "server.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crmsync")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(days=1))
                   .not_valid_after(now + dt.timedelta(days=30))
                   .sign(key, hashes.SHA256()))
    return key_file, certificate.public_bytes(serialization.Encoding.PEM)


def jwt_adapter(sb: Sandbox, key_file: Path, **overrides: Any) -> SalesforceAdapter:
    values = {"salesforce_client_secret": None, "salesforce_username": sb.salesforce_username,
              "salesforce_private_key_file": key_file, **overrides}
    return salesforce_for(sb, **values)


def password_adapter(sb: Sandbox, **overrides: Any) -> SalesforceAdapter:
    values = {"salesforce_client_id": None, "salesforce_client_secret": None,
              "salesforce_username": sb.salesforce_username,
              "salesforce_password": sb.salesforce_password,
              "salesforce_security_token": sb.salesforce_security_token, **overrides}
    return salesforce_for(sb, **values)


def test_jwt_bearer_login_end_to_end(tmp_path: Path) -> None:
    key_file, certificate = key_and_certificate(tmp_path)
    fixture = {"salesforce": {"Lead": salesforce_rows("Lead", lead_stamps()[:50], LEAD_FIELDS)}}
    with Sandbox(fixture=fixture, salesforce_jwt_certificate=certificate, **FAST_LIMITS) as sb:
        adapter = jwt_adapter(sb, key_file)
        assert "jwt" in repr(adapter)
        assert len(ids_of(adapter.read_all("Lead", []), "Id")) == 50
        sb.expire_salesforce_sessions()  # a new assertion is signed for the new session
        assert len(ids_of(adapter.read_all("Lead", []), "Id")) == 50
        assert sb.counters()["requests"]["salesforce.token"] == 2


def test_a_jwt_signed_with_another_key_is_a_configuration_error(tmp_path: Path) -> None:
    _, certificate = key_and_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    other_key, _ = key_and_certificate(tmp_path / "other")
    with Sandbox(salesforce_jwt_certificate=certificate, **FAST_LIMITS) as sb:
        with pytest.raises(ConfigurationError, match="invalid assertion") as caught:
            list(jwt_adapter(sb, other_key).read_all("Lead", []))
        assert isinstance(caught.value, AuthenticationError)
        with pytest.raises(ConfigurationError, match="audience is invalid"):
            list(jwt_adapter(sb, tmp_path / "server.key",
                             salesforce_jwt_audience="https://test.salesforce.com")
                 .read_all("Lead", []))


def test_password_login_end_to_end(org: Sandbox) -> None:
    adapter = password_adapter(org)
    assert "password" in repr(adapter)
    assert len(ids_of(adapter.read_changed("Lead", BASE, []), "Id")) == LEADS
    org.expire_salesforce_sessions()
    assert adapter.describe_fields("Lead")["Status"].options
    assert org.counters()["requests"]["salesforce.token"] == 2  # SOAP login() twice


def test_a_wrong_password_is_a_configuration_error(org: Sandbox) -> None:
    wrong = "not-the-password-123"
    adapter = password_adapter(org, salesforce_password=wrong)
    with pytest.raises(ConfigurationError, match="INVALID_LOGIN") as caught:
        list(adapter.read_all("Lead", []))
    assert wrong not in str(caught.value)
    assert org.salesforce_security_token not in str(caught.value)


def test_a_wrong_client_secret_is_a_configuration_error(org: Sandbox) -> None:
    adapter = salesforce_for(org, salesforce_client_secret="wrong-" + "s" * 30)
    with pytest.raises(ConfigurationError, match="invalid_client"):
        list(adapter.read_all("Lead", []))
