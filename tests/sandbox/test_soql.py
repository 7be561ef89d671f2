"""The SOQL subset: what parses, how it evaluates, and what is refused."""

from __future__ import annotations

import pytest

from connector.sandbox.soql import SoqlError, parse_soql

LEADS = [
    {"Id": "00QDn0000000001MAA", "Email": "Anna@Polder.nl", "Status": "Nieuw",
     "NumberOfEmployees": 120, "IsConverted": False,
     "SystemModstamp": "2025-05-01T10:00:00.000+0000", "ConvertedDate": None},
    {"Id": "00QDn0000000002MAA", "Email": "ole@fjord.no", "Status": "Abonnent",
     "NumberOfEmployees": None, "IsConverted": True,
     "SystemModstamp": "2025-05-02T10:00:00.000+0000", "ConvertedDate": "2025-05-02"},
    {"Id": "00QDn0000000003MAA", "Email": None, "Status": "Liidi",
     "NumberOfEmployees": 40, "IsConverted": False,
     "SystemModstamp": "2025-05-01T10:00:00.000+0000", "ConvertedDate": None},
]


def _ids(soql: str) -> list[str]:
    query = parse_soql(soql)
    return [r["Id"][-4:-3] for r in query.sort([r for r in LEADS if query.matches(r)])]


def test_fields_and_object_resolve_case_insensitively() -> None:
    query = parse_soql("select id, EMAIL from lead")
    assert query.sobject == "Lead"
    assert query.fields == ("Id", "Email")


@pytest.mark.parametrize(
    ("soql", "expected"),
    [
        ("SELECT Id FROM Lead WHERE Email = 'anna@polder.nl'", ["1"]),
        ("SELECT Id FROM Lead WHERE Email != null", ["1", "2"]),
        ("SELECT Id FROM Lead WHERE Email = null", ["3"]),
        ("SELECT Id FROM Lead WHERE SystemModstamp > 2025-05-01T10:00:00Z", ["2"]),
        ("SELECT Id FROM Lead WHERE SystemModstamp >= 2025-05-01T12:00:00+02:00", ["1", "2", "3"]),
        ("SELECT Id FROM Lead WHERE IsConverted = false AND NumberOfEmployees > 50", ["1"]),
        ("SELECT Id FROM Lead WHERE Status IN ('nieuw', 'LIIDI')", ["1", "3"]),
        ("SELECT Id FROM Lead WHERE Status NOT IN ('Nieuw')", ["2", "3"]),
        ("SELECT Id FROM Lead WHERE Email LIKE '%.NO'", ["2"]),
        ("SELECT Id FROM Lead WHERE Id = '00QDn0000000002'", ["2"]),
        ("SELECT Id FROM Lead WHERE ConvertedDate = 2025-05-02", ["2"]),
        ("SELECT Id FROM Lead ORDER BY SystemModstamp DESC, Id", ["2", "1", "3"]),
        ("SELECT Id FROM Lead ORDER BY NumberOfEmployees", ["2", "3", "1"]),
        ("SELECT Id FROM Lead ORDER BY NumberOfEmployees ASC NULLS LAST", ["3", "1", "2"]),
    ],
)
def test_supported_queries_evaluate_like_salesforce(soql: str, expected: list[str]) -> None:
    assert _ids(soql) == expected


@pytest.mark.parametrize(
    ("soql", "expected"),
    [
        ("SELECT COUNT() FROM Lead", 3),
        ("select count ( ) from lead", 3),
        ("SELECT COUNT() FROM Lead WHERE SystemModstamp >= 2025-05-01T10:00:00Z "
         "AND SystemModstamp < 2025-05-02T10:00:00Z", 2),
        ("SELECT COUNT() FROM Lead WHERE Email = null", 1),
    ],
)
def test_bare_count_parses_with_where(soql: str, expected: int) -> None:
    query = parse_soql(soql)
    assert query.count is True
    assert query.fields == ()
    assert sum(1 for r in LEADS if query.matches(r)) == expected


def test_count_with_limit_and_a_field_called_count() -> None:
    assert parse_soql("SELECT COUNT() FROM Lead LIMIT 2").limit == 2
    assert parse_soql("SELECT Id FROM Lead").count is False
    with pytest.raises(SoqlError) as refused:  # not a function call: just an unknown column
        parse_soql("SELECT Count FROM Lead")
    assert refused.value.code == "INVALID_FIELD"


def test_limit_is_parsed() -> None:
    assert parse_soql("SELECT Id FROM Lead LIMIT 2").limit == 2


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id FROM Lead WHERE (Email = 'a')",
        "SELECT Id FROM Lead WHERE Email = 'a' OR Email = 'b'",
        "SELECT COUNT(Id) FROM Lead",
        "SELECT COUNT(Id) FROM Lead GROUP BY Status",
        "SELECT Status, COUNT(Id) FROM Lead GROUP BY Status",
        "SELECT COUNT() FROM Lead GROUP BY Status",
        "SELECT COUNT() total FROM Lead",
        "SELECT COUNT(), Id FROM Lead",
        "SELECT Id, COUNT() FROM Lead",
        "SELECT COUNT() FROM Lead ORDER BY Id",
        "SELECT COUNT( FROM Lead",
        "SELECT MAX(NumberOfEmployees) FROM Lead",
        "SELECT Id FROM Lead OFFSET 5",
        "SELECT Id FROM Lead GROUP BY Status",
        "SELECT Id FROM Lead WHERE Email = :email",
        "SELECT Id FROM Lead WHERE",
        "SELECT FROM Lead",
        "SELECT Id FROM Lead WHERE NumberOfEmployees > 'ten'",
        "SELECT Id FROM Lead WHERE IsConverted = 1",
    ],
)
def test_unsupported_queries_are_malformed(soql: str) -> None:
    with pytest.raises(SoqlError) as refused:
        parse_soql(soql)
    assert refused.value.code == "MALFORMED_QUERY"
