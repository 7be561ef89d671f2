"""The sandbox's properties API creates properties as HubSpot's does (POST
/crm/v3/properties/{objectType}), driven through the official SDK over HTTPS.

HubSpot's rules, from https://developers.hubspot.com/docs/api/crm/properties: name, label,
type, fieldType and groupName are required; each type takes only some fieldTypes ("Property
type and fieldType values"); a name already used answers 409; the call needs
crm.schemas.{objectType}.write.
"""

from __future__ import annotations

import json

import pytest
import requests
from hubspot.crm.properties import ApiException, OptionInput, PropertyCreate

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW, hubspot_client


def _create(sb: Sandbox, object_type: str, **fields):
    options = fields.pop("options", None)
    model = PropertyCreate(**fields, options=[OptionInput(**o) for o in options]
                           if options else None)
    return hubspot_client(sb).crm.properties.core_api.create(object_type, model)


def _names(sb: Sandbox, object_type: str) -> set[str]:
    """The portal's properties as its properties API lists them."""
    return {p.name for p in hubspot_client(sb).crm.properties.core_api.get_all(
        object_type).results}


def _refusal(sb: Sandbox, object_type: str, **fields) -> tuple[int, dict]:
    with pytest.raises(ApiException) as refused:
        _create(sb, object_type, **fields)
    return refused.value.status, json.loads(refused.value.body)


PRIORITY = {"name": "crmsync_priority", "label": "Priority (crmsync)", "type": "enumeration",
            "field_type": "select", "group_name": "contactinformation",
            "options": [{"label": "Trigger + fit", "value": "trigger_fit", "display_order": 0},
                        {"label": "Fit", "value": "fit", "display_order": 1}]}


def test_a_created_property_is_listed_read_and_written(fresh: Sandbox) -> None:
    fresh.remove_hubspot_property("contacts", "crmsync_priority")
    created = _create(fresh, "contacts", **PRIORITY)
    assert (created.name, created.type, created.field_type) == (
        "crmsync_priority", "enumeration", "select")
    assert [(o.value, o.label) for o in created.options] == [
        ("trigger_fit", "Trigger + fit"), ("fit", "Fit")]
    assert created.hubspot_defined is False

    client = hubspot_client(fresh)
    listed = {p.name: p for p in client.crm.properties.core_api.get_all("contacts").results}
    assert [o.value for o in listed["crmsync_priority"].options] == ["trigger_fit", "fit"]
    contact = client.crm.contacts.basic_api.get_page(limit=1).results[0]
    client.crm.contacts.batch_api.update({"inputs": [
        {"id": contact.id, "properties": {"crmsync_priority": "fit"}}]})
    read = client.crm.contacts.basic_api.get_by_id(contact.id, properties=["crmsync_priority"])
    assert read.properties["crmsync_priority"] == "fit"


def test_a_property_never_created_is_left_out_of_reads(fresh: Sandbox) -> None:
    fresh.remove_hubspot_property("contacts", "crmsync_priority")
    client = hubspot_client(fresh)
    contact = client.crm.contacts.basic_api.get_page(limit=1).results[0]
    read = client.crm.contacts.basic_api.get_by_id(contact.id, properties=["crmsync_priority",
                                                                          "email"])
    assert "crmsync_priority" not in read.properties
    assert "email" in read.properties


def test_a_brand_new_property_is_read_back_after_a_write(fresh: Sandbox) -> None:
    _create(fresh, "companies", name="crmsync_segment", label="Segment", type="string",
            field_type="text", group_name="companyinformation")
    client = hubspot_client(fresh)
    company = client.crm.companies.basic_api.get_page(limit=1).results[0]
    client.crm.companies.batch_api.update({"inputs": [
        {"id": company.id, "properties": {"crmsync_segment": "enterprise"}}]})
    read = client.crm.companies.basic_api.get_by_id(company.id, properties=["crmsync_segment"])
    assert read.properties["crmsync_segment"] == "enterprise"


def test_a_name_in_use_answers_409_and_changes_nothing(fresh: Sandbox) -> None:
    status, body = _refusal(fresh, "contacts", **{**PRIORITY, "label": "Another label"})
    assert status == 409
    assert body["category"] == "CONFLICT"
    assert "crmsync_priority" in body["message"]
    kept = hubspot_client(fresh).crm.properties.core_api.get_by_name("contacts",
                                                                     "crmsync_priority")
    assert kept.label == "Priority (crmsync)"
    assert [o.value for o in kept.options] == ["trigger_fit", "fit", "nonfit_lead", "other"]


@pytest.mark.parametrize(("type_", "field_type"), [
    ("bool", "select"), ("date", "text"), ("number", "select"), ("enumeration", "date"),
    ("string", "booleancheckbox"), ("datetime", "number"),
])
def test_a_field_type_that_does_not_go_with_the_type_is_refused(
    fresh: Sandbox, type_: str, field_type: str
) -> None:
    status, body = _refusal(fresh, "companies", name="crmsync_x", label="X", type=type_,
                            field_type=field_type, group_name="companyinformation")
    assert status == 400
    assert body["category"] == "VALIDATION_ERROR"
    assert f"'{field_type}'" in body["message"] and f"'{type_}'" in body["message"]
    assert "crmsync_x" not in _names(fresh, "companies")


def test_a_missing_required_field_or_group_is_refused(fresh: Sandbox) -> None:
    # the SDK insists on the required fields, so send the request body as JSON ourselves
    response = requests.post(
        f"{fresh.hubspot_base_url}/crm/v3/properties/contacts",
        json={"name": "crmsync_y", "label": "Y", "type": "string", "fieldType": "text"},
        headers={"Authorization": f"Bearer {fresh.hubspot_access_token}"},
        verify=fresh.ca_path, timeout=10)
    assert response.status_code == 400
    assert "groupName" in response.json()["message"]

    status, body = _refusal(fresh, "contacts", name="crmsync_y", label="Y", type="string",
                            field_type="text", group_name="no_such_group")
    assert status == 400
    assert "no_such_group" in body["message"]
    assert "crmsync_y" not in _names(fresh, "contacts")


def test_enumeration_options_need_a_label_and_a_unique_value(fresh: Sandbox) -> None:
    twice = [{"label": "A", "value": "a"}, {"label": "A again", "value": "a"}]
    status, body = _refusal(fresh, "contacts", name="crmsync_z", label="Z",
                            type="enumeration", field_type="select",
                            group_name="contactinformation", options=twice)
    assert status == 400
    assert "'a'" in body["message"]

    status, body = _refusal(fresh, "contacts", name="crmsync_z", label="Z", type="bool",
                            field_type="booleancheckbox", group_name="contactinformation",
                            options=[{"label": "Maybe", "value": "maybe"}])
    assert status == 400
    assert "true and false" in body["message"]


def test_a_bool_without_options_gets_yes_and_no(fresh: Sandbox) -> None:
    fresh.remove_hubspot_property("companies", "crmsync_trigger_active")
    created = _create(fresh, "companies", name="crmsync_trigger_active", label="Active",
                      type="bool", field_type="booleancheckbox",
                      group_name="companyinformation")
    assert [(o.value, o.label) for o in created.options] == [("true", "Yes"), ("false", "No")]


def test_creating_needs_the_schemas_write_scope() -> None:
    granted = {"crm.objects.contacts.read", "crm.schemas.contacts.read"}
    with Sandbox(seed=30, now=NOW, hubspot_scopes=granted) as sb:
        sb.remove_hubspot_property("contacts", "crmsync_priority")
        status, body = _refusal(sb, "contacts", **PRIORITY)
        assert status == 403
        assert body["category"] == "MISSING_SCOPES"
        assert body["errors"][0]["context"]["requiredScopes"] == ["crm.schemas.contacts.write"]
        assert "crmsync_priority" not in _names(sb, "contacts")
