from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import date

import pytest
from pydantic import ValidationError

from connector.model import (
    LADDER,
    Change,
    LifecycleStage,
    Priority,
    Provenance,
    Sourced,
    SourceRef,
    System,
    Trigger,
    TriggerPolarity,
)

S = LifecycleStage


def test_ladder_is_the_seed_002_order():
    assert [s.value for s in LADDER] == [
        "subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist",
    ]
    assert [s.rank for s in LADDER] == list(range(7))


@pytest.mark.parametrize("off", [S.OTHER, S.DISQUALIFIED])
def test_off_ladder_states_never_count_as_more_advanced(off):
    assert off.rank is None
    for stage in LifecycleStage:
        assert not off.is_more_advanced_than(stage)
    assert S.SUBSCRIBER.is_more_advanced_than(off)


def test_more_advanced_follows_the_ladder():
    assert S.SQL.is_more_advanced_than(S.MQL)
    assert not S.MQL.is_more_advanced_than(S.SQL)
    assert not S.MQL.is_more_advanced_than(S.MQL)
    assert S.LEAD.is_more_advanced_than(None)


def test_downgrade_means_back_down_or_off_the_ladder():
    assert S.LEAD.is_downgrade_from(S.SQL)
    assert S.DISQUALIFIED.is_downgrade_from(S.LEAD)
    assert not S.SQL.is_downgrade_from(S.LEAD)
    assert not S.LEAD.is_downgrade_from(S.OTHER)  # onto the ladder is never a downgrade
    assert not S.LEAD.is_downgrade_from(None)
    assert not S.LEAD.is_downgrade_from(S.LEAD)


def test_trigger_is_active_inside_its_window_only():
    trig = Trigger(
        type="funding",
        occurred_at=date(2026, 1, 1),
        expires_at=Trigger.window(date(2026, 1, 1), 30),
        polarity=TriggerPolarity.POSITIVE,
        provenance=Provenance(rule="r"),
    )
    assert trig.expires_at == date(2026, 1, 31)
    assert not trig.is_active(date(2025, 12, 31))
    assert trig.is_active(date(2026, 1, 1))
    assert trig.is_active(date(2026, 1, 30))
    assert not trig.is_active(date(2026, 1, 31))


def test_priority_ranking_follows_the_texts():
    ranked = sorted(Priority, key=lambda p: p.rank, reverse=True)
    assert ranked == [Priority.TRIGGER_FIT, Priority.FIT, Priority.NONFIT_LEAD, Priority.OTHER]


def test_source_ref_text_is_formatted_once_and_is_not_serialised():
    ref = SourceRef(system="salesforce", object_type="Lead", record_id="00Q1")
    assert ref.system is System.SALESFORCE
    assert ref.key == str(ref) == "salesforce:Lead:00Q1"
    assert ref == SourceRef(system=System.SALESFORCE, object_type="Lead", record_id="00Q1")
    assert ref.model_dump(mode="json") == {"system": "salesforce", "object_type": "Lead",
                                           "record_id": "00Q1"}
    with pytest.raises(FrozenInstanceError):
        ref.record_id = "00Q2"  # type: ignore[misc]


def test_change_round_trips_through_json_with_validation():
    change = Change(system=System.HUBSPOT, object_type="contacts", record_id="7",
                    field="lifecyclestage", before="lead", after="", rule="r", reason="why")
    data = change.model_dump(mode="json")
    assert data == {"system": "hubspot", "object_type": "contacts", "record_id": "7",
                    "field": "lifecyclestage", "before": "lead", "after": "", "rule": "r",
                    "reason": "why", "step": 0}
    assert Change.model_validate(data) == change
    assert Change.model_validate(data).system is System.HUBSPOT
    for bad in ({**data, "system": "pipedrive"}, {**data, "extra": 1},
                {k: v for k, v in data.items() if k != "field"}):
        with pytest.raises(ValidationError):
            Change.model_validate(bad)


def test_sourced_dumps_as_nested_json():
    ref = SourceRef(system=System.HUBSPOT, object_type="companies", record_id="5")
    sourced = Sourced(value=date(2026, 1, 2), provenance=Provenance(
        rule="r", source=ref, field="recent_funding_date", raw=1767312000000))
    assert sourced.model_dump(mode="json") == {
        "value": "2026-01-02",
        "provenance": {"rule": "r", "field": "recent_funding_date", "raw": 1767312000000,
                       "source": {"system": "hubspot", "object_type": "companies",
                                  "record_id": "5"}},
    }
