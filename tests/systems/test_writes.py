"""Write orchestration: steps, batches, per-record retry rounds, splitting and confirmation."""

from __future__ import annotations

import pytest

from connector.exceptions import AuthenticationError, FatalApiError, RetriableApiError
from connector.systems._writes import (
    EARLIER_STEP_NOT_APPLIED,
    NOT_CONFIRMED,
    batches_without_repeats,
    confirm_written,
    send_in_rounds,
    send_or_split,
    write_in_steps,
)
from connector.systems.base import RecordUpdate, WriteResult


def applied(batch: list[RecordUpdate]) -> list[WriteResult]:
    return [WriteResult(u.record_id, "applied", step=u.step) for u in batch]


def test_steps_go_in_order_and_later_steps_only_after_applied() -> None:
    updates = [
        RecordUpdate("1", {"lifecyclestage": "lead"}, step=1),
        RecordUpdate("1", {"lifecyclestage": ""}, step=0),
        RecordUpdate("2", {"lifecyclestage": ""}, step=0),
        RecordUpdate("2", {"lifecyclestage": "lead"}, step=1),
        RecordUpdate("3", {"lifecyclestage": "lead"}, step=1),
    ]
    sent: list[list[tuple[str, int]]] = []

    def send_step(batch: list[RecordUpdate]) -> list[WriteResult]:
        sent.append([(u.record_id, u.step) for u in batch])
        return [
            WriteResult(u.record_id, "rejected" if u.record_id == "2" else "applied", step=u.step)
            for u in batch
        ]

    results = write_in_steps(updates, send_step)
    assert sent == [[("1", 0), ("2", 0)], [("1", 1), ("3", 1)]]
    assert [r.record_id for r in results] == ["1", "1", "2", "2", "3"]
    assert [r.status for r in results] == ["applied", "applied", "rejected", "rejected", "applied"]
    assert results[3].code == EARLIER_STEP_NOT_APPLIED


def test_batches_never_repeat_a_record_and_respect_size() -> None:
    ids = ["a", "b", "a", "c", "a", "d", "e"]
    batches = list(batches_without_repeats(list(range(len(ids))), 3, lambda i: ids[i]))
    for batch in batches:
        assert len(batch) <= 3
        assert len({ids[i] for i in batch}) == len(batch)
    assert sorted(i for b in batches for i in b) == list(range(len(ids)))


def test_rounds_resend_only_retry_later_records() -> None:
    updates = [RecordUpdate(str(n), {"x": n}) for n in range(5)]
    attempts: dict[str, int] = {}

    def send(batch: list[RecordUpdate]) -> list[WriteResult]:
        out = []
        for u in batch:
            attempts[u.record_id] = attempts.get(u.record_id, 0) + 1
            locked = u.record_id == "3" and attempts[u.record_id] < 3
            out.append(WriteResult(u.record_id, "retry_later" if locked else "applied"))
        return out

    pauses: list[int] = []
    results = send_in_rounds(updates, send, batch_size=2, rounds=5, pause=pauses.append)
    assert all(r.status == "applied" for r in results)
    assert attempts == {"0": 1, "1": 1, "2": 1, "3": 3, "4": 1}
    assert pauses == [1, 2]


def test_rounds_give_up_with_retry_later() -> None:
    updates = [RecordUpdate("1", {})]
    results = send_in_rounds(
        updates,
        lambda b: [WriteResult("1", "retry_later", code="UNABLE_TO_LOCK_ROW")],
        batch_size=10,
        rounds=3,
        pause=lambda n: None,
    )
    assert results[0].status == "retry_later"


def test_a_whole_batch_rejection_is_split_to_find_the_bad_record() -> None:
    updates = [RecordUpdate(str(n), {"x": n}) for n in range(8)]
    calls: list[int] = []

    def send_once(batch: list[RecordUpdate]) -> list[WriteResult]:
        calls.append(len(batch))
        if any(u.record_id == "5" for u in batch):
            raise FatalApiError("invalid", system="hubspot", status=400, code="VALIDATION_ERROR")
        return applied(batch)

    results = send_or_split(updates, send_once, lambda e: e.status == 400)
    assert [r.status for r in results] == ["applied"] * 5 + ["rejected"] + ["applied"] * 2
    assert results[5].code == "VALIDATION_ERROR"
    assert len(calls) <= 1 + 2 * 3


def test_transient_batch_failure_means_retry_later_and_auth_stops() -> None:
    updates = [RecordUpdate("1", {}), RecordUpdate("2", {})]

    def flaky(batch):
        raise RetriableApiError("503", system="salesforce", status=503)

    assert {r.status for r in send_or_split(updates, flaky, lambda e: True)} == {"retry_later"}

    def refused(batch):
        raise AuthenticationError("no", system="salesforce", status=401)

    with pytest.raises(AuthenticationError):
        send_or_split(updates, refused, lambda e: True)


def test_confirm_turns_a_silent_no_op_into_a_rejection() -> None:
    updates = [
        RecordUpdate("1", {"lifecyclestage": ""}, step=0),
        RecordUpdate("1", {"lifecyclestage": "lead"}, step=1),
        RecordUpdate("2", {"lifecyclestage": "lead"}),
        RecordUpdate("3", {"firstname": "Ann"}),
    ]
    results = [WriteResult(u.record_id, "applied", step=u.step) for u in updates]
    asked: list[tuple[list[str], list[str]]] = []

    def read_back(ids: list[str], fields: list[str]):
        asked.append((sorted(ids), fields))
        return {"1": {"lifecyclestage": "lead"}, "2": {"lifecyclestage": "customer"}}

    confirmed = confirm_written(
        updates, results, {"lifecyclestage"}, read_back, lambda a, b: str(a) == str(b)
    )
    assert asked == [(["1", "2"], ["lifecyclestage"])]
    assert [r.status for r in confirmed] == ["applied", "applied", "rejected", "applied"]
    assert confirmed[2].code == NOT_CONFIRMED
    assert "customer" in confirmed[2].message
