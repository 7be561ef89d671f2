"""The sandbox's records: HubSpot objects and associations, Salesforce sObjects, and their clock.

Values are kept exactly as each API renders them (HubSpot: every property a string; Salesforce:
JSON types, datetimes as `2024-05-01T10:00:00.000+0000`). Both datetime formats are fixed-width
UTC, so comparing and sorting the strings is comparing and sorting the instants.
"""

from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connector.sandbox.schema import (
    HUBSPOT_MODIFIED_PROPERTY,
    HUBSPOT_OBJECT_TYPES,
    SALESFORCE_FIELDS,
    SALESFORCE_KEY_PREFIXES,
)

__all__ = [
    "ASSOCIATION_PAIRS",
    "Clock",
    "Dataset",
    "hs_datetime",
    "parse_instant",
    "salesforce_id",
    "sf_datetime",
]

# Association pairs the sandbox stores; each is readable in both directions.
ASSOCIATION_PAIRS = (("contacts", "companies"), ("deals", "contacts"), ("deals", "companies"))
HUBSPOT_FIRST_ID = {"contacts": 100_001, "companies": 500_001, "deals": 900_001}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


# ---- time ---------------------------------------------------------------------------------


def hs_datetime(moment: datetime) -> str:
    """HubSpot's rendering of a datetime property: `2024-05-01T10:00:00.000Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def sf_datetime(moment: datetime) -> str:
    """Salesforce's rendering of a datetime field: `2024-05-01T10:00:00.000+0000`."""
    return hs_datetime(moment)[:-1] + "+0000"


def parse_instant(value: str | int | float) -> datetime:
    """Parse epoch milliseconds, an ISO datetime (any offset, `Z`) or a date, to UTC."""
    if isinstance(value, int | float) or (isinstance(value, str) and value.lstrip("-").isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    text = value.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class Clock:
    """Sandbox time: starts at `anchor` and runs forward with the real monotonic clock.

    Anchored at the wall clock by default, so modified dates the sandbox writes line up with
    the watermarks a client derives from its own clock.
    """

    def __init__(self, anchor: datetime) -> None:
        self.anchor = anchor.astimezone(UTC)
        self._started = time.monotonic()

    def now(self) -> datetime:
        """The current sandbox time (millisecond precision, as both APIs store it)."""
        moment = self.anchor + timedelta(seconds=time.monotonic() - self._started)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# ---- ids ----------------------------------------------------------------------------------


def salesforce_id(sobject: str, number: int) -> str:
    """An 18-character Salesforce id with the object's key prefix and a valid checksum."""
    body = ""
    value = number
    for _ in range(6):
        value, digit = divmod(value, 62)
        body = _BASE62[digit] + body
    id15 = SALESFORCE_KEY_PREFIXES[sobject] + "Dn0000" + body
    return id15 + _checksum(id15)


def _checksum(id15: str) -> str:
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _CHECKSUM[bits]
    return suffix


# ---- the dataset --------------------------------------------------------------------------


class Dataset:
    """All records of both systems, guarded by one re-entrant lock (`dataset.lock`)."""

    def __init__(self, now: datetime) -> None:
        self.lock = threading.RLock()
        self.clock = Clock(now)
        self.hubspot: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in HUBSPOT_OBJECT_TYPES}
        self._hs_next_id = dict(HUBSPOT_FIRST_ID)
        self._assoc: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.salesforce: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in SALESFORCE_FIELDS}
        self._sf_short: dict[str, str] = {}
        self._sf_next = dict.fromkeys(SALESFORCE_FIELDS, 1)
        self.versions: dict[str, int] = {}
        self._hs_order: dict[str, list[int]] = {}

    def touch(self, kind: str) -> None:
        """Note that records of `kind` changed (invalidates cached search orders)."""
        self.versions[kind] = self.versions.get(kind, 0) + 1

    # ---- HubSpot --------------------------------------------------------------------------

    def add_hubspot(
        self, object_type: str, properties: dict[str, Any], *, record_id: str | None = None,
        archived: bool = False,
    ) -> dict[str, Any]:
        """Store a HubSpot record; fills id, hs_object_id and dates that are missing."""
        with self.lock:
            if record_id is None:
                record_id = str(self._hs_next_id[object_type])
            self._hs_next_id[object_type] = max(self._hs_next_id[object_type], int(record_id) + 1)
            props = {k: _hs_string(v) for k, v in properties.items()}
            props["hs_object_id"] = record_id
            stamp = hs_datetime(self.clock.now())
            props.setdefault("createdate", stamp)
            props.setdefault(HUBSPOT_MODIFIED_PROPERTY[object_type], props["createdate"])
            for key in ("createdate", HUBSPOT_MODIFIED_PROPERTY[object_type]):
                props[key] = hs_datetime(parse_instant(props[key]))
            record = {"id": record_id, "properties": props, "archived": archived}
            self.hubspot[object_type][record_id] = record
            self.touch(object_type)
            return record

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Associate two HubSpot records (both directions)."""
        with self.lock:
            for a_type, a_id, b_type, b_id in (
                (from_type, from_id, to_type, to_id),
                (to_type, to_id, from_type, from_id),
            ):
                targets = self._assoc.setdefault((a_type, b_type), {}).setdefault(a_id, [])
                if b_id not in targets:
                    targets.append(b_id)

    def associated_ids(self, from_type: str, to_type: str, record_id: str) -> list[str]:
        """Ids of `to_type` records associated with one record, in association order."""
        with self.lock:
            return list(self._assoc.get((from_type, to_type), {}).get(record_id, []))

    def hubspot_record(self, object_type: str, record_id: str) -> dict[str, Any]:
        """A deep copy of one HubSpot record; KeyError when absent."""
        with self.lock:
            return copy.deepcopy(self.hubspot[object_type][record_id])

    def hubspot_records(self, object_type: str) -> list[dict[str, Any]]:
        """Deep copies of every record of a type, ordered by numeric id."""
        with self.lock:
            ids = sorted(self.hubspot[object_type], key=int)
            return [copy.deepcopy(self.hubspot[object_type][i]) for i in ids]

    def bump_hubspot(self, object_type: str, record: dict[str, Any], moment: datetime) -> None:
        """Set the record's modified date to `moment` (every effective write does this)."""
        record["properties"][HUBSPOT_MODIFIED_PROPERTY[object_type]] = hs_datetime(moment)
        self.touch(object_type)

    def archive_hubspot(self, object_type: str, record_id: str, moment: datetime) -> None:
        """Archive (delete) a record: it keeps its values and gains `archivedAt`; HubSpot
        removes its associations with it (a restored record comes back without them)."""
        with self.lock:
            record = self.hubspot[object_type][record_id]
            record["archived"] = True
            record["archivedAt"] = hs_datetime(moment)
            deals = self._deals_of(object_type, record_id)
            self._drop_associations(object_type, record_id)
            self._recount_deals(deals, moment)
            self.touch(object_type)

    def merge_hubspot(
        self, object_type: str, survivor_id: str, loser_id: str, moment: datetime
    ) -> dict[str, Any]:
        """Merge `loser_id` into `survivor_id`: the loser is gone, its associations move to
        the survivor, whose `hs_merged_object_ids` lists every id merged into it so far."""
        with self.lock:
            records = self.hubspot[object_type]
            survivor, loser = records[survivor_id], records.pop(loser_id)
            self._hs_order.pop(object_type, None)
            merged = [*_id_list(survivor["properties"].get("hs_merged_object_ids")), loser_id,
                      *_id_list(loser["properties"].get("hs_merged_object_ids"))]
            survivor["properties"]["hs_merged_object_ids"] = ";".join(dict.fromkeys(merged))
            deals = self._deals_of(object_type, loser_id)
            for (from_type, to_type), links in list(self._assoc.items()):
                if from_type == object_type and loser_id in links:
                    for target in self._drop_associations_to(object_type, loser_id, to_type):
                        self.associate(object_type, survivor_id, to_type, target)
            self._recount_deals(deals, moment)
            self.bump_hubspot(object_type, survivor, moment)
            return survivor

    def _deals_of(self, object_type: str, record_id: str) -> list[str]:
        return [] if object_type == "deals" else self.associated_ids(object_type, "deals",
                                                                      record_id)

    def _recount_deals(self, deal_ids: list[str], moment: datetime) -> None:
        """A deal's `num_associated_contacts` is recalculated when a contact on it is deleted
        or merged away, and that moves the deal's modified date (as `associate_hubspot` does);
        an incremental read then sees the deal's new associations."""
        for deal_id in deal_ids:
            deal = self.hubspot["deals"].get(deal_id)
            if deal is not None and not deal.get("archived"):
                self.bump_hubspot("deals", deal, moment)

    def _drop_associations(self, object_type: str, record_id: str) -> None:
        for from_type, to_type in list(self._assoc):
            if from_type == object_type:
                self._drop_associations_to(object_type, record_id, to_type)

    def _drop_associations_to(self, object_type: str, record_id: str, to_type: str) -> list[str]:
        """Remove a record's associations with one type (both directions); their targets."""
        targets = self._assoc.get((object_type, to_type), {}).pop(record_id, [])
        back = self._assoc.get((to_type, object_type), {})
        for target in targets:
            if record_id in back.get(target, []):
                back[target].remove(record_id)
        return targets

    # ---- Salesforce -----------------------------------------------------------------------

    def new_salesforce_id(self, sobject: str) -> str:
        """Allocate the next unused id of an sObject."""
        with self.lock:
            while True:
                candidate = salesforce_id(sobject, self._sf_next[sobject])
                self._sf_next[sobject] += 1
                if candidate not in self.salesforce[sobject]:
                    return candidate

    def add_salesforce(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Store a Salesforce record; fills Id, timestamps and false booleans that are missing."""
        with self.lock:
            record = dict(fields)
            record["Id"] = record.get("Id") or self.new_salesforce_id(sobject)
            stamp = sf_datetime(self.clock.now())
            record.setdefault("CreatedDate", stamp)
            record.setdefault("LastModifiedDate", record["CreatedDate"])
            record.setdefault("SystemModstamp", record["LastModifiedDate"])
            for name, spec in SALESFORCE_FIELDS[sobject].items():
                if spec.type == "datetime" and record.get(name):
                    record[name] = sf_datetime(parse_instant(record[name]))
                elif spec.type == "boolean":
                    record[name] = bool(record.get(name, False))
                else:
                    record.setdefault(name, None)
            self.salesforce[sobject][record["Id"]] = record
            self._sf_short[record["Id"][:15]] = record["Id"]
            self.touch(sobject)
            return record

    def find_salesforce(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """The stored record (not a copy) for a 15- or 18-character id, or None."""
        full = self._sf_short.get(str(record_id)[:15])
        if full is None or (len(record_id) == 18 and full != record_id):
            return None
        return self.salesforce[sobject].get(full)

    def salesforce_sobject_of(self, record_id: str) -> str | None:
        """Which sObject an id belongs to, from its key prefix."""
        prefix = str(record_id)[:3]
        return next((s for s, p in SALESFORCE_KEY_PREFIXES.items() if p == prefix), None)

    def salesforce_record(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A copy of one Salesforce record; KeyError when absent."""
        with self.lock:
            found = self.find_salesforce(sobject, record_id)
            if found is None:
                raise KeyError(f"{sobject} {record_id}")
            return dict(found)

    def salesforce_records(self, sobject: str) -> list[dict[str, Any]]:
        """Copies of every record of an sObject (deleted ones too), ordered by Id."""
        with self.lock:
            return [dict(self.salesforce[sobject][i]) for i in sorted(self.salesforce[sobject])]

    def bump_salesforce(self, sobject: str, record: dict[str, Any], moment: datetime) -> None:
        """Set LastModifiedDate and SystemModstamp to `moment` (every write does this)."""
        stamp = sf_datetime(moment)
        record["LastModifiedDate"] = stamp
        record["SystemModstamp"] = stamp
        self.touch(sobject)

    def delete_salesforce(
        self, sobject: str, record: dict[str, Any], moment: datetime,
        master_id: str | None = None,
    ) -> None:
        """Move a record to the recycle bin: IsDeleted, SystemModstamp at the deletion (which
        sObject Get Deleted reports as its deletedDate), and for a merge loser the survivor in
        MasterRecordId. Gone from query, still seen by queryAll."""
        record["IsDeleted"] = True
        if "MasterRecordId" in SALESFORCE_FIELDS[sobject]:
            record["MasterRecordId"] = master_id
        record["SystemModstamp"] = sf_datetime(moment)
        self.touch(sobject)

    # ---- fixtures -------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Every record and association, in the fixture format `Dataset.load` reads."""
        with self.lock:
            associations = {
                f"{a}/{b}": sorted(
                    (
                        [src, dst]
                        for src, dsts in self._assoc.get((a, b), {}).items()
                        for dst in dsts
                    ),
                    key=lambda pair: (int(pair[0]), int(pair[1])),
                )
                for a, b in ASSOCIATION_PAIRS
            }
            return {
                "format": "crmsync-sandbox/1",
                "now": hs_datetime(self.clock.anchor),
                "hubspot": {
                    **{t: self.hubspot_records(t) for t in HUBSPOT_OBJECT_TYPES},
                    "associations": associations,
                },
                "salesforce": {s: self.salesforce_records(s) for s in SALESFORCE_FIELDS},
            }

    @classmethod
    def load(cls, raw: dict[str, Any], *, now: datetime) -> Dataset:
        """Build a dataset from a fixture dict; missing ids, dates and flags are filled in.

        Both systems' sections are optional. The clock is anchored at `now` (the fixture's own
        `now` key is informational: it records when a dump was taken).
        """
        dataset = cls(now)
        hubspot = raw.get("hubspot", {})
        for object_type in HUBSPOT_OBJECT_TYPES:
            for item in hubspot.get(object_type, []):
                record_id = item.get("id") or item.get("properties", {}).get("hs_object_id")
                record = dataset.add_hubspot(
                    object_type,
                    item.get("properties", {}),
                    record_id=str(record_id) if record_id else None,
                    archived=bool(item.get("archived", False)),
                )
                if item.get("archivedAt"):
                    record["archivedAt"] = hs_datetime(parse_instant(item["archivedAt"]))
        for key, pairs in hubspot.get("associations", {}).items():
            from_type, to_type = key.split("/")
            for src, dst in pairs:
                dataset.associate(from_type, str(src), to_type, str(dst))
        for sobject, items in raw.get("salesforce", {}).items():
            if sobject not in SALESFORCE_FIELDS:
                raise ValueError(f"fixture has unknown Salesforce object {sobject!r}")
            for item in items:
                dataset.add_salesforce(sobject, item)
        return dataset

    def hubspot_id_order(self, object_type: str) -> list[int]:
        """Numeric ids of a type in ascending order (the list endpoint's order), cached until
        a record is added."""
        records = self.hubspot[object_type]
        cached = self._hs_order.get(object_type)
        if cached is None or len(cached) != len(records):
            cached = self._hs_order[object_type] = sorted(int(i) for i in records)
        return cached


def _id_list(value: str | None) -> list[str]:
    """The ids of a semicolon-separated HubSpot property such as `hs_merged_object_ids`."""
    return [part for part in (value or "").split(";") if part]


def _hs_string(value: Any) -> str | None:
    """HubSpot stores every property value as a string (booleans as "true"/"false")."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
