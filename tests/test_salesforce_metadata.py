"""The Salesforce metadata folder `crmsync fields --salesforce-metadata` writes: Salesforce DX
source format, well-formed XML in the shape the Metadata API Developer Guide documents
(CustomField, PermissionSet), for `sf project deploy start`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from connector.exceptions import ConfigurationError
from connector.fields import fields_needed
from connector.salesforce_metadata import write_salesforce_metadata
from tests.fields_data import SALESFORCE_CUSTOM, mapping_variant

NS = "{http://soap.sforce.com/2006/04/metadata}"
ROOT = Path("force-app/main/default")
PERMISSION_SET = ROOT / "permissionsets" / "Crmsync_Integration.permissionset-meta.xml"
# Metadata API FieldType values (Metadata Field Types, "FieldType")
FIELD_TYPES = {"AutoNumber", "Lookup", "MasterDetail", "Checkbox", "Currency", "Date",
               "DateTime", "Email", "EncryptedText", "Number", "Percent", "Phone", "Picklist",
               "MultiselectPicklist", "Summary", "Text", "TextArea", "LongTextArea", "Url",
               "Html", "Time"}


def _write(mapping, folder: Path) -> list[Path]:
    return write_salesforce_metadata(fields_needed(mapping), folder, api_version="59.0")


def _tags(element: ET.Element) -> list[str]:
    return [child.tag.removeprefix(NS) for child in element]


def _text(element: ET.Element, tag: str) -> str | None:
    found = element.find(NS + tag)
    return None if found is None else found.text


def _in_metadata_order(tags: list[str]) -> bool:
    """fullName (inherited from Metadata) first, then the type's own fields in the order its
    definition lists them, which is alphabetical."""
    rest = [t for t in tags if t != "fullName"]
    return (tags[:1] == ["fullName"] or "fullName" not in tags) and rest == sorted(rest)


def test_the_folder_holds_the_project_every_custom_field_and_the_permission_set(
    mapping, tmp_path
) -> None:
    folder = tmp_path / "sf"
    written = _write(mapping, folder)
    fields = {ROOT / "objects" / obj / "fields" / f"{name}.field-meta.xml"
              for obj, name in SALESFORCE_CUSTOM}
    assert set(written) == {Path("sfdx-project.json"), PERMISSION_SET} | fields
    assert {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()} == set(written)
    project = json.loads((folder / "sfdx-project.json").read_text())
    assert project["packageDirectories"] == [{"path": "force-app", "default": True}]
    assert project["sourceApiVersion"] == "59.0"


def test_every_field_file_is_a_custom_field_of_its_documented_shape(mapping, tmp_path) -> None:
    folder = tmp_path / "sf"
    _write(mapping, folder)
    for (obj, name), (type_, options) in SALESFORCE_CUSTOM.items():
        path = folder / ROOT / "objects" / obj / "fields" / f"{name}.field-meta.xml"
        assert path.read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
        root = ET.parse(path).getroot()
        assert root.tag == NS + "CustomField"
        assert _text(root, "fullName") == name
        assert _text(root, "type") == type_ and type_ in FIELD_TYPES
        assert 0 < len(_text(root, "label") or "") <= 40
        assert _in_metadata_order(_tags(root)), (name, _tags(root))
        if type_ == "Checkbox":  # a checkbox must say its default
            assert _text(root, "defaultValue") == "false"
        if type_ == "Picklist":
            value_set = root.find(NS + "valueSet")
            assert _text(value_set, "restricted") == "true"
            values = value_set.find(NS + "valueSetDefinition").findall(NS + "value")
            assert [_text(v, "fullName") for v in values] == options
            assert [_text(v, "label") for v in values] == options
            assert {_text(v, "default") for v in values} == {"false"}
            assert all(_in_metadata_order(_tags(v)) for v in values)


def test_the_permission_set_grants_what_crmsync_reads_and_writes(mapping, tmp_path) -> None:
    folder = tmp_path / "sf"
    _write(mapping, folder)
    root = ET.parse(folder / PERMISSION_SET).getroot()
    assert root.tag == NS + "PermissionSet"
    assert _text(root, "label") == "crmsync integration"
    assert _tags(root) == sorted(_tags(root))  # no fullName: the file name gives it
    fields = {_text(p, "field"): (_text(p, "readable"), _text(p, "editable"))
              for p in root.findall(NS + "fieldPermissions")}
    # every custom field: readable; editable exactly where crmsync writes
    assert fields["Account.Priority__c"] == ("true", "true")
    assert fields["Contact.Lifecycle_Stage__c"] == ("true", "true")
    assert fields["Account.Funding_Announced_Date__c"] == ("true", "false")
    assert {f"{o}.{n}" for o, n in SALESFORCE_CUSTOM} <= set(fields)
    # standard fields it reads, and an address part through its compound address
    assert fields["Account.Website"] == ("true", "false")
    assert fields["Account.BillingAddress"] == ("true", "false")
    assert "Account.BillingCountry" not in fields
    # no field permission where Salesforce refuses one (required, system, name parts)
    for refused in ("Account.Name", "Lead.LastName", "Lead.Company", "Lead.Status",
                    "Opportunity.StageName", "Opportunity.CloseDate", "Contact.LastName",
                    "Lead.SystemModstamp", "Account.Id"):
        assert refused not in fields
    objects = {_text(p, "object"): p for p in root.findall(NS + "objectPermissions")}
    assert set(objects) == {"Lead", "Contact", "Account", "Opportunity"}
    for obj, permission in objects.items():
        assert _text(permission, "allowRead") == "true"
        assert _text(permission, "viewAllRecords") == "true"
        assert _text(permission, "allowEdit") == ("false" if obj == "Opportunity" else "true")
        assert _text(permission, "allowCreate") == _text(permission, "allowDelete") == "false"
        assert _text(permission, "modifyAllRecords") == "false"
        assert _in_metadata_order(_tags(permission))
    users = [(_text(p, "name"), _text(p, "enabled")) for p in root.findall(NS + "userPermissions")]
    assert users == [("ApiEnabled", "true")]


def test_values_with_markup_characters_stay_well_formed(tmp_path) -> None:
    mine = mapping_variant(
        tmp_path,
        ("          Other: other\n          Disqualified: disqualified\n",
         '          "R&D <partners>": other\n'
         "          Disqualified: disqualified\n"),
        ("          other: Other\n          disqualified: Disqualified\n",
         '          other: "R&D <partners>"\n'
         "          disqualified: Disqualified\n"))
    folder = tmp_path / "sf"
    _write(mine, folder)
    path = folder / ROOT / "objects" / "Contact" / "fields" / "Lifecycle_Stage__c.field-meta.xml"
    assert "R&amp;D &lt;partners&gt;" in path.read_text()
    values = ET.parse(path).getroot().iter(NS + "value")
    assert "R&D <partners>" in {_text(v, "fullName") for v in values}


def test_a_second_run_replaces_its_own_folder(mapping, tmp_path) -> None:
    folder = tmp_path / "sf"
    _write(mapping, folder)
    stale = folder / ROOT / "objects" / "Lead" / "fields" / "Old__c.field-meta.xml"
    stale.write_text("<CustomField/>")
    _write(mapping, folder)
    assert not stale.exists()
    assert (folder / PERMISSION_SET).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sf"]  # nothing left beside it


def test_a_folder_it_did_not_write_is_refused_and_left_alone(mapping, tmp_path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="not empty"):
        _write(mapping, folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
