"""Any value in any record may reject that record; no value may stop the run.

Seen: a trigger date of 9999-12-31 (its expiry overflows) and a 20-digit epoch (no datetime
holds it) each crashed every run, outside the per-record guard. Here every field the default
mapping reads, of every object of both systems, gets arbitrary JSON-ish values (and a few
Python ones a JSON parser can also hand over: huge ints, nan, inf), and normalise, reconcile
and plan must come back with views, rejections and changes: never an exception.
"""

from __future__ import annotations

import math
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.catalog import LINK_FIELDS, MODIFIED_TIME_FIELDS, identity_keys, kind_of
from connector.core import plan_records
from connector.mapping import load_mapping
from connector.model import Rejection
from connector.normalize import normalise
from tests.helpers import TODAY, run_core, sf

MAPPING = load_mapping()
OBJECTS = sorted(LINK_FIELDS)
HOSTILE_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    # past Python's 4,300-digit limit for int <-> str (built lazily: hypothesis reprs the
    # strategy, and such an int has no repr)
    st.sampled_from([5000, -5000]).map(lambda n: 10**abs(n) * (1 if n > 0 else -1)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from([
        99999999999999999999, 253402300800000, -62135596800001,
        "9999-12-31", "0001-01-01", "99999999999999999999", "-1", "1e400", "nan", "inf",
        "2026-13-45", "2026-02-30T25:61:00Z", "[/red]", "[bold red]x[/]", "[link=x]y",
        "N/A", "none", "-", "\u202e\u0000\ufeff", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "a" * 5000, "5" * 5000,
        "info@example.com", "x@y", "@", "http://", "https://[::1]:80/",
    ]),
)
HOSTILE = st.recursive(
    HOSTILE_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)


def _fields_read(system: str, obj: str) -> list[str]:
    """Every field the default mapping and the core's linking read for this object."""
    fields = set(LINK_FIELDS[(system, obj)]) | set(MODIFIED_TIME_FIELDS[system])
    fields |= {m.field for m in MAPPING.picklists.get((system, obj), ())}
    fields |= {r.field for r in MAPPING.write_back.get((system, obj), ())}
    if kind_of(system, obj) == "organization":
        fields |= {f.fields[system] for f in MAPPING.facts.values() if system in f.fields}
    for rule in MAPPING.triggers:
        if (rule.system, rule.object) == (system, obj):
            fields |= {rule.field, *([rule.date_field] if rule.date_field else [])}
    fields |= {"AccountId", "ContactId"} if system == "salesforce" else set()
    return sorted(fields)


FIELDS = {obj: _fields_read(*obj) for obj in OBJECTS}
# Values that read fine, so records also get through to reconcile and plan.
PLAUSIBLE = st.sampled_from([None, "", "2026-11-01", "1767225600000", 200, 8e6, "software",
                             "NL", True, "a@acme.nl", "001A", "003A", "00Q1", "1", "2"])


def _value_of(system: str, obj: str, name: str):
    listed = {m.field: list(m.values) for m in MAPPING.picklists.get((system, obj), ())}
    known = st.sampled_from(listed[name]) if name in listed else PLAUSIBLE
    return st.one_of(HOSTILE, *[known] * 5)  # mostly readable: one odd value per record
IDS = st.one_of(st.sampled_from(["1", "2", "001A", "003A", "00Q1"]), HOSTILE)


@st.composite
def hostile_record(draw):
    system, obj = draw(st.sampled_from(OBJECTS))
    fields = {name: draw(_value_of(system, obj, name)) for name in FIELDS[(system, obj)]
              if draw(st.booleans())}
    if system == "hubspot":
        raw = {"id": draw(IDS), "properties": fields}
        if draw(st.booleans()):
            raw["associations"] = draw(st.one_of(
                HOSTILE, st.fixed_dictionaries({"contacts": HOSTILE, "companies": HOSTILE})))
        return system, obj, raw
    return system, obj, {"attributes": {"type": obj}, "Id": draw(IDS), **fields}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(hostile_record(), max_size=6))
def test_no_value_in_any_field_stops_normalise_reconcile_or_plan(records):
    """Rejections must say why; the rest goes through reconcile and plan."""
    for system, obj, raw in records:
        identity_keys(system, obj, raw)
    result = plan_records(MAPPING, records, TODAY)
    assert all(rejection.reason for rejection in result.rejections)


def test_a_trigger_date_at_the_end_of_time_rejects_nothing_else(mapping, today):
    rec, plan, rejections = run_core(mapping, [
        sf("Account", "001END", Funding_Announced_Date__c="9999-12-31"),
        sf("Account", "001OK", Website="ok-co.nl", Type="Prospect"),
    ], today)
    assert [str(r.source) for r in rejections] == ["salesforce:Account:001END"]
    assert rejections[0].field == "Funding_Announced_Date__c"
    assert [str(o.refs[0]) for o in rec.organizations] == ["salesforce:Account:001OK"]
    assert plan.changes


def test_a_twenty_digit_epoch_rejects_its_record(mapping):
    rejection = normalise(mapping, "hubspot", "companies", {
        "id": "9", "properties": {"recent_funding_date": "99999999999999999999"}})
    assert isinstance(rejection, Rejection)
    assert rejection.field == "recent_funding_date"


def test_a_huge_or_non_finite_number_rejects_its_record(mapping):
    for value in (10**5000, math.nan, math.inf, "1e400"):
        rejection = normalise(mapping, "salesforce", "Account", {
            "attributes": {"type": "Account"}, "Id": "001", "NumberOfEmployees": value})
        assert isinstance(rejection, Rejection), value
        assert rejection.field == "NumberOfEmployees"


def test_a_current_value_that_is_no_plain_value_rejects_its_record(mapping):
    rejection = normalise(mapping, "salesforce", "Contact", {
        "attributes": {"type": "Contact"}, "Id": "003", "Priority__c": {"nested": [1]}})
    assert isinstance(rejection, Rejection)
    assert rejection.field == "Priority__c"


def test_dates_still_parse(mapping):
    org = normalise(mapping, "hubspot", "companies", {
        "id": "9", "properties": {"recent_funding_date": "1767225600000"}})
    assert org.triggers[0].occurred_at == date(2026, 1, 1)
