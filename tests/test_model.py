from __future__ import annotations

from datetime import date

import pytest

from connector.model import (
    LADDER,
    LifecycleStage,
    Priority,
    Provenance,
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
