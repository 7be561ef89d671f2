from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from connector.exceptions import MappingError
from connector.mapping import DEFAULT_MAPPING, json_schema, load_mapping
from connector.mapping._located import load_located
from connector.model import DealStatus, LifecycleStage, Relationship

SCHEMA_FILE = DEFAULT_MAPPING.parent / "schema" / "mapping.schema.json"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_mapping_covers_the_standard_picklists(mapping):
    hubspot = {m.field: m for m in mapping.picklists[("hubspot", "contacts")]}
    assert set(hubspot["lifecyclestage"].values) >= {
        "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
        "customer", "evangelist", "other",
    }
    assert set(hubspot["hs_lead_status"].values) == {
        "NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT",
        "CONNECTED", "BAD_TIMING",
    }
    lead_status = mapping.picklists[("salesforce", "Lead")][0].values
    assert lead_status["Closed - Not Converted"].stage is LifecycleStage.DISQUALIFIED
    account_type = mapping.picklists[("salesforce", "Account")][0].values
    assert account_type["Prospect"].relationship is Relationship.NONE
    assert account_type["Prospect"].fit is True
    opportunity = [m.field for m in mapping.picklists[("salesforce", "Opportunity")]]
    assert opportunity == ["StageName", "IsWon", "IsClosed"]


def test_custom_hubspot_stages_by_numeric_id(mapping):
    values = mapping.picklists[("hubspot", "contacts")][0].values
    assert values["57129482"].stage is LifecycleStage.SQL  # "Sales Qualified Prospect"
    assert values["57129481"].stage is LifecycleStage.SUBSCRIBER  # "Marketing Qualified Prospect"


@pytest.mark.parametrize(
    ("label", "stage"),
    [("Liidi", "lead"), ("Prospekti", "subscriber"), ("Abonnent", "subscriber"),
     ("Salgskvalifisert lead", "sql"), ("Salgsmulighet", "opportunity"), ("Kunde", "customer"),
     ("Gekwalificeerd", "sql"), ("Gediskwalificeerd", "disqualified")],
)
def test_label_packs_extend_fields_that_ask_for_them(mapping, label, stage):
    lead_status = mapping.picklists[("salesforce", "Lead")][0].values
    assert lead_status[label].stage.value == stage
    assert "labels/" in lead_status[label].rule or ".yaml:" in lead_status[label].rule


def test_label_packs_only_apply_where_a_field_opts_in(mapping):
    contact_stage = mapping.picklists[("salesforce", "Contact")][0].values
    assert "Liidi" not in contact_stage
    account_type = mapping.picklists[("salesforce", "Account")][0].values
    assert account_type["Prospekti"].fit is True
    assert account_type["Kunde"].relationship is Relationship.CUSTOMER
    stage_name = mapping.picklists[("salesforce", "Opportunity")][0].values
    assert stage_name["Voitettu"].deal is DealStatus.WON


def test_main_file_wins_over_a_label_pack(tmp_path):
    path = write(tmp_path, """
label_packs: [fi]
picklists:
  salesforce:
    Lead:
      Status:
        labels: person_stage
        values: {Liidi: mql}
""")
    mapping = load_mapping(path)
    assert mapping.picklists[("salesforce", "Lead")][0].values["Liidi"].stage is LifecycleStage.MQL


def test_pack_beside_the_mapping_overrides_the_shipped_one(tmp_path):
    (tmp_path / "labels").mkdir()
    write(tmp_path, "person_stage: {Liidi: sql}\n", "labels/fi.yaml")
    path = write(tmp_path, """
label_packs: [fi]
picklists:
  salesforce:
    Lead:
      Status: {labels: person_stage, values: {New: lead}}
""")
    values = load_mapping(path).picklists[("salesforce", "Lead")][0].values
    assert values["Liidi"].stage is LifecycleStage.SQL


def test_fields_read_and_written(mapping):
    written = mapping.fields_written("salesforce")
    assert written["Lead"] == {"Status", "ICP_Fit__c", "Priority__c"}
    assert "Opportunity" not in written  # deals are read, never written
    read = mapping.fields_read("salesforce")
    assert {"IsConverted", "ConvertedContactId", "Status", "Email"} <= read["Lead"]
    assert {"StageName", "IsWon", "IsClosed", "ContactId", "AccountId"} <= read["Opportunity"]
    assert {"Funding_Announced_Date__c", "Industry", "Website", "Type"} <= read["Account"]
    hubspot = mapping.fields_read("hubspot")
    assert {"lifecyclestage", "hs_lead_status", "salesforceleadid", "email"} <= hubspot["contacts"]


def test_rules_carry_file_and_line(mapping):
    meaning = mapping.picklists[("hubspot", "contacts")][0].values["marketingqualifiedlead"]
    line = next(i for i, text in enumerate(DEFAULT_MAPPING.read_text().splitlines(), 1)
                if text.strip().startswith("marketingqualifiedlead:"))
    assert meaning.rule.endswith(f"(default.yaml:{line})")


def test_nothing_is_partially_loaded_all_problems_reported(tmp_path):
    path = write(tmp_path, """
picklists:
  salesforce:
    Lead:
      Status:
        values: {A: leed, B: sqll}
triggers:
  x: {polarity: positive, active_days: 5, sources: [{system: hubspot, object: contacts, field: f}]}
""")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert len(caught.value.problems) == 3
    assert [p.line for p in caught.value.problems] == [6, 6, 8]


def test_missing_file_is_a_located_problem(tmp_path):
    with pytest.raises(MappingError) as caught:
        load_mapping(tmp_path / "nope.yaml")
    assert str(caught.value.problems[0]).endswith("nope.yaml:1:1: file not found")


def test_yaml_keys_keep_their_text(tmp_path):
    doc = load_located(write(tmp_path, "a:\n  true: 1\n  0123: 2\n  1.50: 3\n"))
    assert doc.data == {"a": {"true": 1, "0123": 2, "1.50": 3}}
    assert doc.key_marks[("a", "0123")] == (3, 3)


def test_default_mapping_has_the_editor_modeline():
    first = DEFAULT_MAPPING.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=schema/mapping.schema.json"
    assert (DEFAULT_MAPPING.parent / "schema/mapping.schema.json").is_file()


def test_shipped_schema_file_is_current():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "run: crmsync mappings schema > mappings/schema/mapping.schema.json"
    )


def test_schema_accepts_the_shipped_mapping_and_rejects_unknown_keys():
    schema = json_schema()
    data = load_located(DEFAULT_MAPPING).data
    jsonschema.validate(data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "picklist": {}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"precedence": {"person.stage": {"winner": "nobody"}}}, schema)
