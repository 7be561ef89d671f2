"""Sizes written the way people say them: `1k`, `100k`, `1M`."""

from __future__ import annotations

__all__ = ["RECORDS_PER_ORGANISATION", "organisations_for_persons",
           "organisations_for_records", "parse_size", "parse_sizes", "show_size"]

# What the sandbox generator makes per organisation, measured at 10k persons: ~3 persons,
# spread over HubSpot contacts and Salesforce leads/contacts, plus companies, accounts, deals.
PERSONS_PER_ORGANISATION = 3.0
RECORDS_PER_ORGANISATION = 8.15

_SUFFIXES = {"k": 1_000, "m": 1_000_000}


def parse_size(text: str) -> int:
    """`10k` -> 10000, `1M` -> 1000000, `250` -> 250."""
    cleaned = text.strip().lower().replace("_", "")
    factor = _SUFFIXES.get(cleaned[-1:], 1)
    number = cleaned[:-1] if factor > 1 else cleaned
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (use e.g. 1k, 10k, 100k, 1M)") from None
    if value < 1:
        raise ValueError(f"size must be positive: {text!r}")
    return value


def parse_sizes(text: str) -> list[int]:
    """A comma-separated list of sizes, in the order given."""
    return [parse_size(part) for part in text.split(",") if part.strip()]


def show_size(value: int) -> str:
    """The inverse of parse_size for round numbers; exact figures otherwise."""
    if value >= 1_000_000 and value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    if value >= 1_000 and value % 1_000 == 0:
        return f"{value // 1_000}k"
    return str(value)


def organisations_for_persons(persons: int) -> int:
    """The sandbox's `organisations=` that yields about `persons` persons."""
    return max(1, round(persons / PERSONS_PER_ORGANISATION))


def organisations_for_records(records: int) -> int:
    """The sandbox's `organisations=` that yields about `records` records in both CRMs."""
    return max(1, round(records / RECORDS_PER_ORGANISATION))
