"""SOQL literals and IN-list chunking: every value once, every query within the length limit."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from connector.systems.salesforce import soql_in_chunks, soql_literal


def test_datetime_literals_are_utc_and_floored_to_the_second() -> None:
    moment = datetime(2024, 3, 1, 12, 30, 15, 999_000, tzinfo=timezone(timedelta(hours=2)))
    assert soql_literal(moment) == "2024-03-01T10:30:15Z"
    assert soql_literal(moment, round_up=True) == "2024-03-01T10:30:16Z"
    exact = datetime(2024, 3, 1, 10, 30, 15, tzinfo=UTC)
    assert soql_literal(exact, round_up=True) == "2024-03-01T10:30:15Z"


def test_string_literals_escape_quotes_and_backslashes() -> None:
    assert soql_literal("o'brien@x.com") == "'o\\'brien@x.com'"
    assert soql_literal("a\\b") == "'a\\\\b'"


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60),
        max_size=400,
    ),
    st.integers(min_value=1000, max_value=4000),
)
def test_chunks_cover_every_value_within_the_limit(values: list[str], limit: int) -> None:
    prefix = "SELECT Id FROM Lead WHERE Email"
    queries = list(soql_in_chunks(prefix, values, max_encoded=limit))
    for query in queries:
        assert len(urllib.parse.quote_plus(query)) <= limit
        assert query.startswith(prefix + " IN (") and query.endswith(")")
    literals = [soql_literal(v) for v in values]
    joined = ",".join(q[len(prefix) + 5 : -1] for q in queries)
    assert joined == ",".join(literals)
    if values:
        assert len(queries) >= 1
    else:
        assert queries == []


def test_many_ids_fit_in_few_queries() -> None:
    ids = [f"00Q{n:015d}" for n in range(3000)]
    queries = list(soql_in_chunks("SELECT Id FROM Lead WHERE Id", ids))
    assert 3 <= len(queries) <= 6
    assert sum(q.count("'00Q") for q in queries) == 3000
