"""The SOQL subset crmsync needs, parsed and evaluated against sandbox records.

    SELECT f1, f2 FROM Object
      [WHERE cond AND cond ...]        cond: field op literal | field [NOT] IN (literal, ...)
      [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
      [LIMIT n]
    SELECT COUNT() FROM Object [WHERE ...] [LIMIT n]

op is = != <> < <= > >= LIKE; literals are 'strings', numbers, true/false, null, datetimes
(2024-05-01T10:00:00Z, with an optional fraction of 1 to 6 digits, as real orgs accept, and
+hh:mm; compared at the millisecond Salesforce stores) and dates (2024-05-01). COUNT() is the
bare row count only: alone in the SELECT list, no alias, no ORDER BY or GROUP BY (as in
Salesforce); its answer is `totalSize` with no records. Anything else (OR, parentheses,
sub-queries, other functions and aggregates such as COUNT(Id), relationship fields, date
literals like TODAY, OFFSET, GROUP BY) is refused with MALFORMED_QUERY, as a real org refuses
malformed SOQL; so a client that works here uses only what is known to work. As in
Salesforce, text comparisons are case-insensitive, ids match in their 15- and 18-character
forms, and a datetime field only compares with an unquoted datetime literal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.sandbox.schema import SALESFORCE_FIELDS, SalesforceField, salesforce_field
from connector.sandbox.store import parse_instant, sf_datetime

__all__ = ["Query", "SoqlError", "parse_soql"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2}))
      | (?P<date>\d{4}-\d{2}-\d{2})
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*(?::\d+)?)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "order", "by", "asc", "desc",
             "nulls", "first", "last", "limit", "like", "true", "false", "null", "offset",
             "group", "having", "with", "for", "using"}


class SoqlError(ValueError):
    """A query the sandbox cannot run; `code` is Salesforce's errorCode for it."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


@dataclass(frozen=True)
class Condition:
    """One `field op value` comparison."""

    field: SalesforceField
    operator: str
    value: Any


@dataclass(frozen=True)
class Query:
    """A parsed query: which fields of which object, filters, order and limit; or, with
    `count`, only how many records match (`SELECT COUNT()`, no fields)."""

    sobject: str
    fields: tuple[str, ...]
    conditions: tuple[Condition, ...]
    order: tuple[tuple[str, bool, bool], ...]  # (field, descending, nulls_last)
    limit: int | None
    count: bool = False

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether the record satisfies every condition."""
        return all(_test(c, record) for c in self.conditions)

    def sort(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records in ORDER BY order (stable: later keys first, then earlier keys)."""
        ordered = list(records)
        for name, descending, nulls_last in reversed(self.order):
            spec = SALESFORCE_FIELDS[self.sobject][name]
            present = [r for r in ordered if r.get(name) is not None]
            absent = [r for r in ordered if r.get(name) is None]
            present.sort(key=lambda r, s=spec, n=name: _key(s, r[n]), reverse=descending)
            ordered = present + absent if nulls_last else absent + present
        return ordered


def parse_soql(text: str) -> Query:
    """Parse a query of the supported subset; SoqlError (with errorCode) otherwise."""
    return _Parser(_tokens(text)).query()


def _tokens(text: str) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(text.strip()):
        kind = match.lastgroup or "bad"
        value = match.group(kind)
        if kind == "bad":
            raise SoqlError(f"unexpected token: '{value}'")
        if kind == "word" and value.lower() in _KEYWORDS:
            kind = "keyword"
            value = value.lower()
        tokens.append(_Token(kind, value))
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise SoqlError("unexpected end of query")
        self.position += 1
        return token

    def expect(self, kind: str, text: str | None = None) -> _Token:
        token = self.take()
        if token.kind != kind or (text is not None and token.text != text):
            raise SoqlError(f"unexpected token: '{token.text}'")
        return token

    def at(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "keyword" and token.text == text

    def query(self) -> Query:
        self.expect("keyword", "select")
        count = self.count_call()
        names = [] if count else [self.expect("word").text]
        while not count and self.peek() is not None and self.peek() == _Token("punct", ","):
            self.take()
            names.append(self.expect("word").text)
        self.expect("keyword", "from")
        sobject = self.object_name(self.expect("word").text)
        fields = tuple(dict.fromkeys(self.field(sobject, n).name for n in names))
        conditions: list[Condition] = []
        if self.at("where"):
            self.take()
            conditions.append(self.condition(sobject))
            while self.at("and"):
                self.take()
                conditions.append(self.condition(sobject))
        if count and self.at("order"):
            raise SoqlError("ORDER BY cannot be used with COUNT(); use COUNT(fieldName)")
        order = self.order_by(sobject) if self.at("order") else ()
        limit = None
        if self.at("limit"):
            self.take()
            limit = int(self.expect("number").text)
        if self.peek() is not None:
            raise SoqlError(f"unexpected token: '{self.take().text}'")
        return Query(sobject, fields, tuple(conditions), order, limit, count)

    def count_call(self) -> bool:
        """Consume a bare `COUNT()` select item; other aggregate forms are refused."""
        token = self.peek()
        if token is None or token.kind != "word" or token.text.lower() != "count":
            return False
        following = self.tokens[self.position + 1] if self.position + 1 < len(self.tokens) else None
        if following != _Token("punct", "("):
            return False  # a field that happens to be called Count
        self.position += 2
        closing = self.take()
        if closing != _Token("punct", ")"):
            raise SoqlError(f"unexpected token: '{closing.text}' (only a bare COUNT() is "
                            "supported by the sandbox)")
        return True

    @staticmethod
    def object_name(name: str) -> str:
        found = next((s for s in SALESFORCE_FIELDS if s.lower() == name.lower()), None)
        if found is None:
            raise SoqlError(f"sObject type '{name}' is not supported.", "INVALID_TYPE")
        return found

    @staticmethod
    def field(sobject: str, name: str) -> SalesforceField:
        if "." in name or ":" in name:
            raise SoqlError(f"unexpected token: '{name}' (relationship fields are not supported)")
        found = salesforce_field(sobject, name)
        if found is None:
            raise SoqlError(f"No such column '{name}' on entity '{sobject}'.", "INVALID_FIELD")
        return found

    def condition(self, sobject: str) -> Condition:
        spec = self.field(sobject, self.expect("word").text)
        token = self.take()
        if token.kind == "keyword" and token.text in {"in", "not"}:
            negate = token.text == "not"
            if negate:
                self.expect("keyword", "in")
            self.expect("punct", "(")
            values = [_literal(spec, self.take())]
            while self.peek() == _Token("punct", ","):
                self.take()
                values.append(_literal(spec, self.take()))
            self.expect("punct", ")")
            # The keys once per query, not once per record tested: an `Id IN (200 ids)` over
            # a 100k-record object was 20 million key computations (an org indexes Id).
            return Condition(spec, "NOT IN" if negate else "IN",
                             frozenset(_key(spec, v) for v in values))
        if token.kind == "keyword" and token.text == "like":
            return Condition(spec, "LIKE", _like(self.expect("string").text))
        if token.kind != "op":
            raise SoqlError(f"unexpected token: '{token.text}'")
        operator = "!=" if token.text == "<>" else token.text
        return Condition(spec, operator, _literal(spec, self.take()))

    def order_by(self, sobject: str) -> tuple[tuple[str, bool, bool], ...]:
        self.take()
        self.expect("keyword", "by")
        order = []
        while True:
            name = self.field(sobject, self.expect("word").text).name
            descending = False
            if self.at("asc") or self.at("desc"):
                descending = self.take().text == "desc"
            nulls_last = descending
            if self.at("nulls"):
                self.take()
                nulls_last = self.take().text == "last"
            order.append((name, descending, nulls_last))
            if self.peek() != _Token("punct", ","):
                return tuple(order)
            self.take()


def _literal(spec: SalesforceField, token: _Token) -> Any:
    """A literal converted to the stored form of the field it is compared with."""
    if token.kind == "keyword" and token.text == "null":
        return None
    if token.kind == "word":
        raise SoqlError(f"unexpected token: '{token.text}' (date literals and bind variables "
                        "are not supported by the sandbox)")
    if spec.type == "datetime":
        if token.kind != "datetime":
            raise SoqlError(
                f"value of filter criterion for field '{spec.name}' must be of type dateTime "
                "and should not be enclosed in quotes", "INVALID_FIELD")
        return sf_datetime(parse_instant(token.text))
    if spec.type == "date":
        if token.kind != "date":
            raise SoqlError(f"value of filter criterion for field '{spec.name}' must be of type "
                            "date and should not be enclosed in quotes", "INVALID_FIELD")
        return token.text
    if spec.type == "boolean":
        if token.kind != "keyword" or token.text not in {"true", "false"}:
            raise SoqlError(f"unexpected token: '{token.text}'")
        return token.text == "true"
    if spec.type in {"int", "double", "currency"}:
        if token.kind != "number":
            raise SoqlError(f"unexpected token: '{token.text}'")
        return float(token.text)
    if token.kind != "string":
        raise SoqlError(f"unexpected token: '{token.text}'")
    return _unquote(token.text)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _like(text: str) -> re.Pattern[str]:
    pattern = "".join(
        ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in _unquote(text)
    )
    return re.compile(f"^{pattern}$", re.IGNORECASE | re.DOTALL)


def _key(spec: SalesforceField, value: Any) -> Any:
    """The comparable form of a stored value: text without case, ids by 15 characters."""
    if value is None:
        return None
    if spec.type in {"id", "reference"}:
        return str(value)[:15]
    if spec.type in {"string", "email", "url", "picklist", "textarea", "phone"}:
        return str(value).lower()
    if spec.type in {"int", "double", "currency"}:
        return float(value)
    return value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a is not None and b is not None and a < b,
    "<=": lambda a, b: a is not None and b is not None and a <= b,
    ">": lambda a, b: a is not None and b is not None and a > b,
    ">=": lambda a, b: a is not None and b is not None and a >= b,
}


def _test(condition: Condition, record: dict[str, Any]) -> bool:
    spec = condition.field
    current = _key(spec, record.get(spec.name))
    if condition.operator == "LIKE":
        return current is not None and bool(condition.value.match(str(record[spec.name])))
    if condition.operator in {"IN", "NOT IN"}:  # the value holds the keys already
        inside = current in condition.value
        return inside if condition.operator == "IN" else not inside
    return _COMPARE[condition.operator](current, _key(spec, condition.value))
