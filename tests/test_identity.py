"""Which values may tie records into one person or organisation, and which never may.

Seen in real data: a Website of `N/A` read as the domain `n` merged two unrelated accounts
(the non-fit one became ICP-fit); a shared `info@example.com` on three leads and a customer's
contact gave the leads ICP fit and trigger_fit; and the merge outlived fixing the data,
because every derived link was saved and re-applied forever.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from connector import identity as _identity
from connector.catalog import identity_keys
from connector.identity import FREE_MAIL_DOMAINS, PLACEHOLDER_DOMAINS, ROLE_LOCAL_PARTS
from connector.mapping import email_key, normalise_domain
from connector.model import Priority
from connector.sandbox import Sandbox
from connector.state import MIGRATIONS, StateStore
from connector.sync import planning_groups
from tests.helpers import engine_for, hs, org_with, person_with, run_core, sf

# ---- domains --------------------------------------------------------------------------------


@pytest.mark.parametrize("website", [
    "N/A", "n/a", "none", "None", "-", "--", ".", "localhost", "http://localhost:8080/x",
    "127.0.0.1", "https://10.0.0.1/", "[::1]", "acme", "unknown", "tbd", "a..b", "-.com",
    "acme corp.com", "gmail.com", "https://www.gmail.com", "outlook.com", "example.com",
    "www.example.org", "test", "foo.test", "invalid", "x.invalid", "mailinator.com",
])
def test_placeholders_free_mail_and_non_domains_give_no_domain(website):
    assert normalise_domain(website) is None


@pytest.mark.parametrize(("website", "domain"), [
    ("https://www.Acme.com/about?x=1", "acme.com"),
    ("acme.com.", "acme.com"),
    ("http://shop.acme.co.uk:8080", "acme.co.uk"),
    ("WWW.NORDLYS.NO", "nordlys.no"),
    ("https://www.fintech.fi/fi", "fintech.fi"),
    ("kunde.blogspot.com", "kunde.blogspot.com"),  # a private suffix: one site, not blogspot
])
def test_real_domains_are_their_registrable_domain(website, domain):
    assert normalise_domain(website) == domain


def test_domains_are_found_offline(monkeypatch):
    """The public suffix list is the copy bundled with tldextract: no network call, ever."""
    def no_network(*args, **kwargs):
        raise AssertionError("network call")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "https://publicsuffix.org/list/")
    _identity._extractor.cache_clear()  # load the suffix list afresh, network blocked
    _identity._registrable.cache_clear()
    assert normalise_domain("https://www.offline-check.co.uk/") == "offline-check.co.uk"


def test_the_lists_are_small_and_lowercase():
    assert "gmail.com" in FREE_MAIL_DOMAINS and "example.com" in PLACEHOLDER_DOMAINS
    assert "info" in ROLE_LOCAL_PARTS
    for value in (*FREE_MAIL_DOMAINS, *PLACEHOLDER_DOMAINS, *ROLE_LOCAL_PARTS):
        assert value == value.strip().casefold()


# ---- e-mails --------------------------------------------------------------------------------


@pytest.mark.parametrize("email", [
    None, "", "n/a", "none", "-", "test@test.com", "noreply@acme.com", "no-reply@acme.com",
    "info@example.com", "anna@example.com", "anna@example.org", "x@mailinator.com",
    "info@acme.com", "Sales@Acme.com", "contact@acme.com", "admin@acme.com", "office@acme.com",
    "hello@acme.com", "support@acme.com", "team@acme.com", "marketing@acme.com",
    "anna@localhost", "anna@acme", "anna@127.0.0.1", "@acme.com", "anna@", "a b@acme.com",
])
def test_placeholder_and_role_addresses_are_no_link_key(email):
    assert email_key(email) is None


@pytest.mark.parametrize(("email", "key"), [
    ("Ann.Smith@Acme.com ", "ann.smith@acme.com"),
    ("jane.doe@gmail.com", "jane.doe@gmail.com"),  # a personal address links its person
    ("kari@nordlys.no", "kari@nordlys.no"),
])
def test_personal_addresses_are_link_keys(email, key):
    assert email_key(email) == key


# ---- reconciling ----------------------------------------------------------------------------


def test_websites_of_n_a_do_not_merge_accounts(mapping, today):
    rec, plan, _ = run_core(mapping, [
        sf("Account", "001FIT", Name="Fit Co", Website="N/A", Type="Prospect"),
        sf("Account", "001OTHER", Name="Burger Palace", Website="n/a", Industry="Retail",
           NumberOfEmployees=12),
    ], today)
    assert len(rec.organizations) == 2
    other = org_with(rec, "salesforce:Account:001OTHER")
    assert other.domain is None
    assert other.fit.fit is False
    assert ("ICP_Fit__c", 0) not in {(c.field, c.step) for c in plan.changes
                                     if str(c.ref) == "salesforce:Account:001OTHER"
                                     and c.after is True}


def test_free_mail_websites_do_not_merge_accounts(mapping, today):
    rec, _, _ = run_core(mapping, [
        sf("Account", "001A", Website="gmail.com", Type="Prospect"),
        hs("companies", "501", domain="www.gmail.com"),
    ], today)
    assert len(rec.organizations) == 2


def test_a_shared_role_address_on_leads_and_a_customer_contact_links_none_of_them(
        mapping, today):
    fresh = today.isoformat()
    rec, plan, _ = run_core(mapping, [
        hs("companies", "501", domain="fitco.nl", industry="COMPUTER_SOFTWARE",
           numberofemployees="200", country="NL", annualrevenue="9000000",
           recent_funding_date=fresh),
        hs("contacts", "1", email="info@example.com", lifecyclestage="customer",
           associatedcompanyid="501"),
        sf("Lead", "00Q1", Email="info@example.com", Status="Open - Not Contacted"),
        sf("Lead", "00Q2", Email="INFO@example.com", Status="Open - Not Contacted"),
        sf("Lead", "00Q3", Email="info@example.com ", Status="Open - Not Contacted"),
    ], today)
    customer = person_with(rec, "hubspot:contacts:1")
    assert customer.priority.value is Priority.TRIGGER_FIT  # the setup does give trigger_fit
    for lead in ("salesforce:Lead:00Q1", "salesforce:Lead:00Q2", "salesforce:Lead:00Q3"):
        person = person_with(rec, lead)
        assert [str(r) for r in person.refs] == [lead]
        assert person.fit is None
        assert person.priority.value is Priority.NONFIT_LEAD
        assert all(c.after not in (True, "trigger_fit", "fit") for c in plan.changes
                   if str(c.ref) == lead)


def test_a_role_address_at_a_real_domain_links_no_one(mapping, today):
    rec, _, _ = run_core(mapping, [
        sf("Lead", "00Q1", Email="sales@acme.nl"),
        sf("Lead", "00Q2", Email="sales@acme.nl"),
        hs("contacts", "1", email="sales@acme.nl"),
    ], today)
    assert len(rec.persons) == 3


def test_a_personal_free_mail_address_still_links_its_person(mapping, today):
    rec, _, _ = run_core(mapping, [
        hs("contacts", "1", email="Jane.Doe@gmail.com"),
        sf("Lead", "00Q1", Email="jane.doe@gmail.com"),
    ], today)
    assert len(rec.persons) == 1


def test_identity_keys_hold_no_placeholder_key():
    """Planning groups come from these keys: a placeholder key would join unrelated records."""
    records = [
        sf("Account", "001A", Website="N/A"), sf("Account", "001B", Website="n/a"),
        hs("companies", "501", domain="gmail.com"),
        sf("Lead", "00Q1", Email="info@example.com"), sf("Lead", "00Q2", Email="info@acme.nl"),
        hs("contacts", "1", email="info@example.com"), hs("contacts", "2", email="n/a"),
    ]
    keys = [identity_keys(*record) for record in records]
    assert all(len(k) == 1 for k in keys), keys  # each record's own ref only
    pairs = [(k[0], key) for k in keys for key in k]
    groups = {}
    for ref, root in planning_groups(pairs, []):
        groups.setdefault(root, []).append(ref)
    assert len(groups) == len(records)


def test_identity_keys_keep_real_keys():
    assert identity_keys(*sf("Account", "001A", Website="https://www.Acme.co.uk/x")) == [
        "salesforce:Account:001A", "domain:acme.co.uk"]
    assert identity_keys(*hs("contacts", "1", email="Kari@Nordlys.no")) == [
        "hubspot:contacts:1", "email:kari@nordlys.no"]


# ---- links are not kept past the data that made them ------------------------------------------


def test_state_migration_drops_saved_links_and_reindexes(tmp_path: Path):
    """Every link row written so far was derived from data (shared e-mail, domain, CRM id)."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for version, migration in enumerate(MIGRATIONS[:2], start=1):
            db.executescript(migration)
            db.execute(f"PRAGMA user_version = {version}")
        db.execute("INSERT INTO links (a, b, first_seen_run) VALUES "
                   "('hubspot:contacts:1', 'salesforce:Lead:00Q1', 1)")
        db.execute("INSERT INTO mirror (ref, system, object_type, record_id, record) VALUES "
                   "('hubspot:contacts:1', 'hubspot', 'contacts', '1', '{}')")
        db.execute("INSERT INTO identity (key, ref) VALUES "
                   "('email:info@example.com', 'hubspot:contacts:1')")
        db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('identity_complete', '1')")
    with StateStore(path) as store:
        assert store.mirror.link_texts() == []
        assert store.meta("identity_complete") is None  # the next plan re-indexes everything


def test_a_new_state_db_needs_no_reindex(tmp_path: Path):
    with StateStore(tmp_path / "new.db") as store:
        assert store.meta("identity_complete") == "1"


def test_fixing_the_data_undoes_the_merge_on_the_next_sync(tmp_path: Path):
    """Same e-mail: merged, so the customer stage reaches the Salesforce contact. Then an
    admin fixes the contact's e-mail (it was someone else) and its stage: the next sync must
    plan it alone and leave the fix in place."""
    with Sandbox(seed=3) as sandbox, engine_for(sandbox, tmp_path / "state.db") as engine:
        sandbox.create_hubspot("contacts", {"email": "pat.lee@mergeco.nl",
                                            "lifecyclestage": "customer"})
        contact = sandbox.create_salesforce("Contact", {"LastName": "Lee",
                                                        "Email": "pat.lee@mergeco.nl",
                                                        "Lifecycle_Stage__c": "Lead"})
        assert engine.backfill().status == "ok"
        assert sandbox.salesforce_record("Contact", contact["Id"])[
            "Lifecycle_Stage__c"] == "Customer"  # merged: the most advanced stage won
        sandbox.update_salesforce("Contact", contact["Id"], {"Email": "sam.berg@otherco.nl",
                                                             "Lifecycle_Stage__c": "Lead"})
        report = engine.sync()
        assert report.status == "ok", report.message
        assert sandbox.salesforce_record("Contact", contact["Id"])[
            "Lifecycle_Stage__c"] == "Lead"
        assert engine.store.mirror.link_texts() == []
