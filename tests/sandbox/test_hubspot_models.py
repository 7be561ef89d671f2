"""Every HubSpot response deserialises into the SDK's own models, losing nothing.

The SDK silently drops keys its models do not know and raises on missing required ones, so
each response is fetched twice: raw (`_preload_content=False`) and as a model, and the model,
serialised back, must equal the raw JSON.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)

from connector.sandbox import Sandbox
from tests.helpers import inline_fixture
from tests.sandbox.clients import NOW, hubspot_client

# Differ between the raw and the model fetch (two requests), so only their presence is checked.
VOLATILE = {"startedAt", "completedAt"}


def _same(raw: Any, model: Any, path: str = "$") -> None:
    """Compare raw JSON with a model serialised back (datetimes and numeric ids by value)."""
    if isinstance(raw, dict):
        assert isinstance(model, dict), path
        assert set(raw) == set(model), f"{path}: keys {set(raw) ^ set(model)}"
        for key in set(raw) - VOLATILE:
            _same(raw[key], model[key], f"{path}.{key}")
    elif isinstance(raw, list):
        assert isinstance(model, list) and len(raw) == len(model), path
        for index, (a, b) in enumerate(zip(raw, model, strict=True)):
            _same(a, b, f"{path}[{index}]")
    elif raw != model:
        if isinstance(raw, str) and isinstance(model, str) and "T" in raw:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            assert parsed == datetime.fromisoformat(model), path
        else:
            assert str(raw) == str(model), f"{path}: {raw!r} != {model!r}"


def _check(api: Any, call: str, *args: Any, expected: str, **kwargs: Any) -> Any:
    """Fetch raw and as a model; the model must be the API package's own class named
    `expected` (contacts, companies and deals each have their own copy) and lose nothing."""
    raw = getattr(api, call)(*args, _preload_content=False, **kwargs)
    model = getattr(api, call)(*args, **kwargs)
    package = api.__module__.rsplit(".api.", 1)[0]
    assert type(model).__name__ == expected
    assert type(model).__module__.startswith(package + ".models.")
    client = api.api_client
    serialised = json.loads(json.dumps(client.sanitize_for_serialization(model)))
    _same(_drop_nones(json.loads(raw.data)), _drop_nones(serialised))
    return model


def _drop_nones(value: Any) -> Any:
    """null and absent mean the same to the SDK (it serialises unset attributes as None)."""
    if isinstance(value, dict):
        return {k: _drop_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nones(v) for v in value]
    return value


@pytest.mark.parametrize("object_type", ["contacts", "companies", "deals"])
def test_objects_responses_fit_the_models(seeded: Sandbox, object_type: str) -> None:
    crm = getattr(hubspot_client(seeded).crm, object_type)
    ids = [r["id"] for r in seeded.hubspot_records(object_type) if not r["archived"]][:3]
    _check(crm.basic_api, "get_page", limit=3,
           expected="CollectionResponseSimplePublicObjectWithAssociationsForwardPaging")
    _check(crm.basic_api, "get_by_id", ids[0], expected="SimplePublicObjectWithAssociations")
    _check(crm.search_api, "do_search", PublicObjectSearchRequest(limit=3),
           expected="CollectionResponseWithTotalSimplePublicObjectForwardPaging")
    read = BatchReadInputSimplePublicObjectId(inputs=[{"id": i} for i in ids],
                                              properties=[], properties_with_history=[])
    _check(crm.batch_api, "read", read, expected="BatchResponseSimplePublicObject")
    partly = BatchReadInputSimplePublicObjectId(inputs=[{"id": ids[0]}, {"id": "7"}],
                                                properties=[], properties_with_history=[])
    _check(crm.batch_api, "read", partly, expected="BatchResponseSimplePublicObjectWithErrors")


@pytest.mark.parametrize("object_type", ["contacts", "companies", "deals"])
def test_inline_associations_fit_the_models(inline: Sandbox, object_type: str) -> None:
    crm = getattr(hubspot_client(inline).crm, object_type)
    wanted = [t for t in ("contacts", "companies", "deals") if t != object_type]
    page = _check(crm.basic_api, "get_page", limit=100, associations=wanted,
                  expected="CollectionResponseSimplePublicObjectWithAssociationsForwardPaging")
    assert any(r.associations for r in page.results)
    for record in page.results[:5]:
        _check(crm.basic_api, "get_by_id", record.id, associations=wanted,
               expected="SimplePublicObjectWithAssociations")


def test_cut_off_inline_associations_fit_the_models(inline: Sandbox) -> None:
    api = hubspot_client(inline).crm.deals.basic_api
    deal = _check(api, "get_by_id", "900001", associations=["contacts", "companies"],
                  expected="SimplePublicObjectWithAssociations")
    assert deal.associations["contacts"].paging.next.after


def test_batch_update_200_and_207_fit_the_models(fresh: Sandbox) -> None:
    api = hubspot_client(fresh).crm.contacts.batch_api
    ids = [r["id"] for r in fresh.hubspot_records("contacts") if not r["archived"]][:2]
    ok = BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": i, "properties": {"crmsync_priority": "fit"}} for i in ids])
    _check(api, "update", ok, expected="BatchResponseSimplePublicObject")
    # Only unknown ids fail per input (an invalid value refuses the whole batch with a 400).
    mixed = BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": ids[0], "properties": {"crmsync_priority": "other"}},
        {"id": "1", "properties": {}},
        {"id": "2", "properties": {}},
    ])
    model = _check(api, "update", mixed, expected="BatchResponseSimplePublicObjectWithErrors")
    assert model.num_errors == 2


def test_associations_fit_the_models(seeded: Sandbox) -> None:
    api = hubspot_client(seeded).crm.associations.v4.batch_api
    linked = [c["id"] for c in seeded.hubspot_records("contacts")
              if seeded.hubspot_associations("contacts", "companies", c["id"])][:3]
    request = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": i} for i in linked])
    _check(api, "get_page", "contacts", "companies", request,
           expected="BatchResponsePublicAssociationMultiWithLabel")
    partly = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": linked[0]},
                                                                   {"id": "3"}])
    _check(api, "get_page", "contacts", "companies", partly,
           expected="BatchResponsePublicAssociationMultiWithLabelWithErrors")


@pytest.mark.parametrize("object_type", ["contacts", "companies", "deals"])
def test_properties_fit_the_models(seeded: Sandbox, object_type: str) -> None:
    api = hubspot_client(seeded).crm.properties.core_api
    everything = _check(api, "get_all", object_type, expected="CollectionResponsePropertyNoPaging")
    for prop in everything.results[:4]:
        _check(api, "get_by_name", object_type, prop.name, expected="ModelProperty")


def test_archived_lists_and_merges_fit_the_models(fresh: Sandbox) -> None:
    api = hubspot_client(fresh).crm.contacts.basic_api
    ids = [r["id"] for r in fresh.hubspot_records("contacts") if not r["archived"]][:3]
    fresh.delete_hubspot("contacts", ids[0])
    page = _check(api, "get_page", limit=100, archived=True,
                  expected="CollectionResponseSimplePublicObjectWithAssociationsForwardPaging")
    assert ids[0] in {r.id for r in page.results}
    assert all(r.archived and r.archived_at for r in page.results)
    merge = {"primaryObjectId": ids[1], "objectIdToMerge": ids[2]}
    raw = api.merge(merge, _preload_content=False)
    model = api.merge_with_http_info({"primaryObjectId": ids[1],
                                      "objectIdToMerge": _another_live(fresh, ids)})[0]
    assert type(model).__name__ == "SimplePublicObject"
    assert set(json.loads(raw.data)) <= {"id", "properties", "createdAt", "updatedAt",
                                         "archived", "archivedAt"}
    _check(api, "get_by_id", ids[1], properties=["hs_merged_object_ids"],
           expected="SimplePublicObjectWithAssociations")


def _another_live(sb: Sandbox, taken: list[str]) -> str:
    return next(r["id"] for r in sb.hubspot_records("contacts")
                if not r["archived"] and r["id"] not in taken)


def test_paged_associations_and_schemas_fit_the_models() -> None:
    with Sandbox(fixture=inline_fixture(), now=NOW, association_page_size=100) as sb:
        _paged_associations_and_schemas(sb)


def _paged_associations_and_schemas(sb: Sandbox) -> None:
    hs = hubspot_client(sb)
    api = hs.crm.associations.v4.batch_api
    first = _check(api, "get_page", "deals", "contacts",
                   BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": "900001"}]),
                   expected="BatchResponsePublicAssociationMultiWithLabel")
    after = first.results[0].paging.next.after
    _check(api, "get_page", "deals", "contacts",
           BatchInputPublicFetchAssociationsBatchRequest(
               inputs=[{"id": "900001", "after": after}]),
           expected="BatchResponsePublicAssociationMultiWithLabel")
    _check(hs.crm.schemas.core_api, "get_all", expected="CollectionResponseObjectSchemaNoPaging")
    _check(hs.crm.properties.core_api, "get_all", "tickets",
           expected="CollectionResponsePropertyNoPaging")
