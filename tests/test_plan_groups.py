"""The engine plans group by group (to hold one group's views in memory, not the mirror's);
that must give exactly the plan of reconciling every record at once."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.catalog import identity_keys
from connector.explain import read_records
from connector.mapping import load_mapping
from connector.model import SourceRef, System
from connector.normalize import normalise
from connector.state import StateStore
from connector.sync import Engine
from tests.helpers import TODAY, run_core
from tests.strategies import world

MAPPING = load_mapping()
GOLDEN = Path(__file__).parent / "golden"


def _ref(system: str, obj: str, raw: dict) -> SourceRef:
    return SourceRef(system=System(system), object_type=obj,
                     record_id=str(raw.get("id") or raw.get("Id")))


def _engine_plan(records, links=()):
    """(changes, rejected refs) as the engine plans them from its mirror."""
    with tempfile.TemporaryDirectory() as tmp, StateStore(Path(tmp) / "state.db") as store:
        with store.transaction():
            store.mirror.save_records([(_ref(s, o, raw), raw, None) for s, o, raw in records], 1)
            store.mirror.save_links(links, 1)
        report, document = Engine(store, MAPPING, {}, today=TODAY).plan()
        return document.changes, sorted(r["record"] for r in report.rejects)


def _golden_records():
    return [(system, obj, raw) for system in ("hubspot", "salesforce")
            for obj, raw in read_records(GOLDEN / f"{system}.json", system)]


def test_golden_records_plan_the_same_group_by_group():
    records = _golden_records()
    _, plan, rejections = run_core(MAPPING, records, TODAY)
    changes, rejected = _engine_plan(records)
    assert plan.changes and changes == plan.changes
    assert rejected == sorted(str(r.source) for r in rejections)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world(), st.data())
def test_any_records_and_stored_links_plan_the_same_group_by_group(records, data):
    refs = [_ref(s, o, raw) for s, o, raw in records]
    links = data.draw(st.lists(st.tuples(st.sampled_from(refs), st.sampled_from(refs)),
                               max_size=3)) if refs else []
    _, plan, _ = run_core(MAPPING, records, TODAY, links)
    changes, _ = _engine_plan(records, links)
    assert changes == plan.changes


def test_identity_keys_name_every_record_a_view_links_to():
    """What reconciling groups by must be among the keys the grouping pass uses."""
    for system, obj, raw in _golden_records():
        keys = set(identity_keys(system, obj, raw))
        view = normalise(MAPPING, system, obj, raw)
        named = [*getattr(view, "refs", ()), *getattr(view, "linked_refs", ()),
                 *getattr(view, "organization_refs", ()), *getattr(view, "person_refs", ())]
        assert {str(r) for r in named} <= keys, (system, obj)
        if getattr(view, "email", None):
            assert f"email:{view.email}" in keys
        if getattr(view, "domain", None):
            assert f"domain:{view.domain}" in keys
