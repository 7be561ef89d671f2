"""`crmsync explain RECORD` answers "why is this record like this?" from the state DB alone,
as a person runs it: a ref, an e-mail address or a domain; who it is, every record linked to
it and why, every value with its rule, and what the next run would change. And `mappings
explain` warns when the files given lack records the given ones are tied to."""

from __future__ import annotations

import json
import re

import pytest

from connector.sandbox import Sandbox
from tests.record_story import ROLE_ADDRESS, Story, story
from tests.runs import ROOT, cli


@pytest.fixture(scope="module")
def told(tmp_path_factory) -> Story:
    with story(tmp_path_factory.mktemp("explain")) as told:
        yield told


def _requests(sandbox: Sandbox) -> int:
    return sum(sandbox.counters()["requests"].values())


def test_explain_a_hubspot_contact_shows_its_links_values_and_the_pending_change(told):
    sent = _requests(told.sandbox)
    result = told.run("explain", told.hubspot_ref, state=told.pending)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert _requests(told.sandbox) == sent, "explain must not call either CRM"
    email = told.email.casefold()
    assert f"Person {email}" in out
    # the Salesforce Contact is linked, and why: the shared e-mail address
    block = _record_block(out, told.salesforce_ref)
    assert f"linked: e-mail {email} (with {told.hubspot_ref})" in block
    # every value with its rule, as file:line
    stage = _line(out, "stage:")
    assert stage.startswith("stage: sql  <- ")
    assert re.search(r"precedence\['person.stage'\] \(default\.yaml:\d+\)", stage), stage
    assert re.search(r"^\s*priority: \w+  <- priority: ", out, re.M)
    # what the next run would write: the edit read by the dry run, not yet written
    before = told.sync[told.salesforce_ref]["Lifecycle_Stage__c"][0]
    record_id = told.salesforce_ref.rsplit(":", 1)[1]
    assert f"salesforce Contact {record_id} Lifecycle_Stage__c: {before!r} -> 'SQL'" in out
    rule = _line(out, "rule write_back.salesforce.Contact.Lifecycle_Stage__c")
    assert re.search(r"\(default\.yaml:\d+\)", rule), rule
    assert "because stage sql" in out


def test_after_the_sync_the_next_run_would_change_nothing(told):
    result = told.run("explain", told.email.upper(), state=told.synced)
    assert result.returncode == 0, result.stderr
    assert f"Person {told.email.casefold()}" in result.stdout
    assert told.salesforce_ref in result.stdout and told.hubspot_ref in result.stdout
    assert "next run: no changes" in result.stdout
    assert "Lifecycle_Stage__c:" not in result.stdout


def test_explain_json_has_the_link_reasons_and_the_planned_changes(told):
    result = told.run("explain", told.salesforce_ref, "--json", state=told.pending)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["matched"] == [told.salesforce_ref]
    [person] = report["entities"]
    assert person["kind"] == "person"
    records = {r["ref"]: r for r in person["records"]}
    assert set(records) == {told.hubspot_ref, told.salesforce_ref}
    assert {"kind": "e-mail", "value": told.email.casefold(), "with": [told.salesforce_ref]} \
        in records[told.hubspot_ref]["links"]
    assert person["values"]["stage"]["value"] == "sql"
    changes = {(c["record"], c["field"]): c for c in person["next_run"]}
    change = changes[(told.salesforce_ref, "Lifecycle_Stage__c")]
    assert change["after"] == "SQL"
    assert "(default.yaml:" in change["rule"]


def test_explain_a_domain_shows_the_organisation_its_records_and_people(told):
    result = told.run("explain", f"https://www.{told.company_domain}/about", state=told.synced)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Organization " in out and f"({told.company_domain})" in out
    block = _record_block(out, told.company_ref)
    if told.account_id:
        assert f"cross-reference id: {told.company_ref} salesforceaccountid={told.account_id}" \
            in _record_block(out, f"salesforce:Account:{told.account_id}")
    else:
        assert f"linked: domain {told.company_domain}" in block
    assert told.hubspot_ref in _line(out, "people")
    assert re.search(r"^\s*fit: (True|False)", out, re.M)


def test_an_address_several_people_share_lists_them_and_exits_2(told):
    result = told.run("explain", ROLE_ADDRESS, state=told.synced)
    assert result.returncode == 2
    assert f"{ROLE_ADDRESS} matches 2 people" in result.stderr
    for ref in told.role_leads:
        assert ref in result.stderr
    assert "name one of them" in result.stderr
    as_json = told.run("explain", ROLE_ADDRESS, "--json", state=told.synced)
    assert as_json.returncode == 2
    error = json.loads(as_json.stdout)
    assert [c["records"] for c in error["candidates"]] == [[ref] for ref in told.role_leads]


def test_a_record_the_mapping_rejects_says_why(told):
    result = told.run("explain", told.nurturing_lead, state=told.synced)
    assert result.returncode == 0, result.stderr
    assert f"{told.nurturing_lead} is rejected" in result.stdout
    assert "'Nurturing'" in result.stdout


@pytest.mark.parametrize("record, expected", [
    ("hubspot:contacts:999999999", "no record hubspot:contacts:999999999 in the state DB"),
    ("nobody.here@harbourlight-analytics.com",
     "no person with e-mail nobody.here@harbourlight-analytics.com in the state DB"),
    ("no-such-company.dk", "no organisation with domain no-such-company.dk in the state DB"),
    ("hubspot:widgets:1", "unknown object hubspot:widgets (hubspot objects: contacts, "
                          "companies, deals)"),
    ("gmail.com", "gmail.com is a free-mail or placeholder domain"),
])
def test_unknown_or_unusable_records_are_a_clear_error(told, record, expected):
    result = told.run("explain", record, state=told.synced)
    assert result.returncode == 2, result.stdout
    assert expected in result.stderr
    if expected.startswith("no "):
        assert str(told.synced) in result.stderr
    assert "Traceback" not in result.stderr


def test_no_state_db_is_a_clear_error(tmp_path):
    missing = tmp_path / "none.db"
    result = cli("explain", "hubspot:contacts:1", cwd=tmp_path, state=missing)
    assert result.returncode == 2
    assert f"no state DB at {missing}" in result.stderr
    assert not missing.exists()


def test_an_edited_mapping_shows_what_it_would_change(told, tmp_path):
    """The admin edits the mapping: explain plans with it, as the next run would."""
    text = (ROOT / "mappings" / "default.yaml").read_text()
    edited = tmp_path / "my-mapping.yaml"
    edited.write_text(text.replace("at_least: 5000000", "at_least: 500000000000"))
    line = edited.read_text().splitlines().index("icp:") + 1
    result = told.run("explain", told.hubspot_ref, "--mapping", str(edited),
                      state=told.synced)
    assert result.returncode == 0, result.stderr
    assert "crmsync_icp_fit: 'true' -> 'false'" in result.stdout
    assert f"(my-mapping.yaml:{line})" in result.stdout
    assert "the mapping differs from the one the state DB last planned with" in result.stdout


def test_without_mapping_it_plans_with_the_mapping_the_runs_use(told, tmp_path):
    """No --mapping: the mapping pinned in the state DB (the runs'), not the shipped one."""
    from connector.mapping import load_mapping  # noqa: PLC0415
    from connector.state import StateStore  # noqa: PLC0415
    from connector.sync import mapping_fingerprint  # noqa: PLC0415

    text = (ROOT / "mappings" / "default.yaml").read_text()
    edited = tmp_path / "pinned-mapping.yaml"
    edited.write_text(text.replace("at_least: 5000000", "at_least: 500000000000"))
    state = told.copy_of(told.synced, "pinned.db")
    with StateStore(state) as store:
        store.admin.pin_mapping(str(edited), mapping_fingerprint(load_mapping(edited)))
    result = told.run("explain", told.hubspot_ref, state=state)
    assert result.returncode == 0, result.stderr
    assert "(pinned-mapping.yaml:" in result.stdout
    assert "crmsync_icp_fit: 'true' -> 'false'" in result.stdout


# ---- mappings explain: records tied to missing ones ------------------------------------------


def test_mappings_explain_warns_of_each_record_a_given_one_is_tied_to_but_missing(tmp_path):
    hubspot = tmp_path / "hubspot.json"
    hubspot.write_text(json.dumps([
        {"objectType": "contacts", "id": "1", "properties": {
            "email": "kari@nordlys.no", "lifecyclestage": "lead", "associatedcompanyid": "9001",
            "salesforcecontactid": "003KARI"}},
        {"objectType": "deals", "id": "7", "properties": {"dealstage": "closedwon"},
         "associations": {"contacts": ["1", "2"], "companies": ["9001"]}},
    ]))
    salesforce = tmp_path / "salesforce.json"
    salesforce.write_text(json.dumps([
        {"attributes": {"type": "Contact"}, "Id": "003KARI", "Email": "kari@nordlys.no",
         "AccountId": "001NO", "Lifecycle_Stage__c": "MQL"},
    ]))
    result = cli("mappings", "explain", "--today", "2026-11-23", "--hubspot", str(hubspot),
                 "--salesforce", str(salesforce), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert sorted(warnings) == sorted([
        "warning: hubspot:contacts:1: its organisation hubspot:companies:9001 is not among "
        "the given records",
        "warning: salesforce:Contact:003KARI: its organisation salesforce:Account:001NO is not "
        "among the given records",
        "warning: hubspot:deals:7: its person hubspot:contacts:2 is not among the given records",
        "warning: hubspot:deals:7: its organisation hubspot:companies:9001 is not among the "
        "given records",
    ])
    assert "Person hubspot:contacts:1 + salesforce:Contact:003KARI" in result.stdout

    as_json = cli("mappings", "explain", "--json", "--hubspot", str(hubspot), cwd=tmp_path)
    report = json.loads(as_json.stdout)
    assert "hubspot:contacts:1: the same person's record salesforce:Contact:003KARI is not " \
        "among the given records" in report["warnings"]


# ---- reading what a person sees ---------------------------------------------------------------


def _line(text: str, start: str) -> str:
    """The first line that starts (after its indent) with `start`."""
    for line in text.splitlines():
        if line.strip().startswith(start):
            return line.strip()
    raise AssertionError(f"no line starting {start!r} in:\n{text}")


def _record_block(text: str, ref: str) -> str:
    """The lines about one record in the records list: its line and the indented ones after."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(ref))
    block = [lines[start]]
    indent = len(lines[start]) - len(lines[start].lstrip())
    for line in lines[start + 1:]:
        if len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
    return "\n".join(block)



def test_a_merged_record_names_its_survivor_and_keeps_its_history(told):
    """A HubSpot merge leaves the loser as a tombstone: explain shows the survivor, history
    still lists what crmsync wrote to the loser."""
    changed = [ref for ref in told.backfill if ref.startswith("hubspot:contacts:")
               and ref != told.hubspot_ref]
    loser, survivor = changed[0], changed[1]
    state = told.copy_of(told.synced, "merged.db")
    told.sandbox.merge_hubspot("contacts", survivor.rsplit(":", 1)[1], loser.rsplit(":", 1)[1])
    synced = told.run("sync", state=state)
    assert synced.returncode in (0, 1), synced.stderr

    result = told.run("explain", loser, state=state)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"note: {loser} was merged into {survivor} on \d{{4}}-\d\d-\d\d "
                     rf"\d\d:\d\d UTC: showing {survivor}", result.stdout), result.stdout
    assert re.search(rf"^  {survivor}", result.stdout, re.M)

    history = told.run("history", loser, state=state)
    assert history.returncode == 0, history.stderr
    loser_id = loser.rsplit(":", 1)[1]
    for name, (before, after) in told.backfill[loser].items():
        if name != "lifecyclestage":  # a backward stage is written in two steps
            assert f"hubspot contacts {loser_id} {name}: {before!r} -> {after!r}  applied" \
                in history.stdout


def test_today_moves_trigger_windows(told):
    """--today plans as a run on that day would: a trigger is active inside its window."""
    plain = told.run("explain", told.company_domain, "--json", state=told.synced)
    [organisation] = json.loads(plain.stdout)["entities"]
    trigger = organisation["values"]["triggers"][0]
    inside = told.run("explain", told.company_domain, "--json", "--today",
                      trigger["occurred_at"], state=told.synced)
    assert inside.returncode == 0, inside.stderr
    [seen] = json.loads(inside.stdout)["entities"]
    assert seen["values"]["triggers"][0]["active"] is True
    assert json.loads(inside.stdout)["today"] == trigger["occurred_at"]
    bad = told.run("explain", told.company_domain, "--today", "next tuesday",
                   state=told.synced)
    assert bad.returncode == 2
    assert "--today 'next tuesday' is not a date (YYYY-MM-DD)" in bad.stderr


def test_link_reasons_name_each_tie_with_its_value(mapping, today):
    """Every way reconcile ties records, as explain words it: a stored link, two records
    naming one that is not there, a converted lead naming its contact, a shared address."""
    from connector.core import plan_records  # noqa: PLC0415
    from connector.explain import link_reasons, link_text  # noqa: PLC0415
    from tests.helpers import hs, person_with, sf  # noqa: PLC0415

    records = [
        hs("contacts", "1", email="kari@nordlys.no", salesforcecontactid="003GONE"),
        hs("contacts", "2", email="other@nordlys.no", salesforcecontactid="003GONE"),
        sf("Lead", "00Q1", Email="Kari@Nordlys.no", IsConverted=True,
           ConvertedContactId="003K", Status="Closed - Converted"),
        sf("Contact", "003K", Email="k.nordmann@nordlys.no"),
        sf("Contact", "003S", Email="stored@nordlys.no"),
    ]
    links = [("hubspot:contacts:1", "salesforce:Contact:003S")]
    core = plan_records(mapping, records, today, links)
    person = person_with(core.reconciled, "hubspot:contacts:1")
    views = {view.refs[0].key: view for view in core.views}
    raws = {f"{s}:{o}:{r.get('id') or r.get('Id')}": r for s, o, r in records}
    said = {ref: [link_text(reason) for reason in reasons]
            for ref, reasons in link_reasons(person, views, raws, links).items()}
    assert said["salesforce:Contact:003S"] == ["stored link with hubspot:contacts:1"]
    assert "cross-reference id: hubspot:contacts:1 salesforcecontactid=003GONE (as does " \
           "hubspot:contacts:2)" in said["hubspot:contacts:1"]
    assert said["salesforce:Contact:003K"] == [
        "cross-reference id: salesforce:Lead:00Q1 ConvertedContactId=003K"]
    assert "e-mail kari@nordlys.no (with salesforce:Lead:00Q1)" in said["hubspot:contacts:1"]
    assert set(said) == {"hubspot:contacts:1", "hubspot:contacts:2", "salesforce:Lead:00Q1",
                         "salesforce:Contact:003K", "salesforce:Contact:003S"}
