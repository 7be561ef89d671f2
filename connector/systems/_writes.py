"""Write orchestration both adapters share: steps in order, batches without repeated ids,
per-record retry rounds, and read-back confirmation (`write_records`).

Only the "send one batch" part differs between HubSpot and Salesforce; everything that decides
which record goes in which request, and what a record's final status is, lives here once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from connector.exceptions import (
    ApiError,
    AuthenticationError,
    BudgetExhausted,
    FatalApiError,
    RetriableApiError,
)
from connector.systems.base import RecordUpdate, WriteResult, WriteStatus, ordered_steps

if TYPE_CHECKING:
    from connector.systems.resilience import RetryPolicy

SendBatch = Callable[[list[RecordUpdate]], list[WriteResult]]
ReadBack = Callable[[list[str], list[str]], dict[str, dict[str, Any]]]

NOT_CONFIRMED = "NOT_CONFIRMED"
EARLIER_STEP_NOT_APPLIED = "EARLIER_STEP_NOT_APPLIED"


def write_records(
    updates: Sequence[RecordUpdate],
    send_batch: SendBatch,
    *,
    batch_size: int | Callable[[], int],
    retry: RetryPolicy,
    confirm_fields: Collection[str] = (),
    read_back: ReadBack,
    same: Callable[[Any, Any], bool],
) -> list[WriteResult]:
    """An adapter's whole `write`: steps in order, each sent in batches of `batch_size` with
    retry-later records resent in up to `retry.max_attempts` rounds (pausing
    `retry.backoff(round)` between them), then `confirm_fields` read back and compared with
    `same`. One result per update, in input order.

    The adapter supplies only what is its own: how one batch is sent, how many records a
    request holds (a callable when that can shrink during a run, read at each step), how to
    read values back and when a held value is the one written.
    """

    def send_step(step: list[RecordUpdate]) -> list[WriteResult]:
        size = batch_size() if callable(batch_size) else batch_size
        return send_in_rounds(
            step, send_batch, batch_size=size, rounds=retry.max_attempts, pause=retry.pause
        )

    results = write_in_steps(updates, send_step)
    if not confirm_fields:
        return results
    return confirm_written(updates, results, confirm_fields, read_back, same)


def write_in_steps(
    updates: Sequence[RecordUpdate], send_step: Callable[[list[RecordUpdate]], list[WriteResult]]
) -> list[WriteResult]:
    """Send each step as its own requests, in ascending order; a record's later step is sent only
    if its earlier one was applied. Returns one result per update, in input order."""
    results: list[WriteResult | None] = [None] * len(updates)
    blocked: dict[str, WriteResult] = {}
    for _step, indexes in ordered_steps(updates):
        to_send = []
        for index in indexes:
            earlier = blocked.get(updates[index].record_id)
            if earlier is None:
                to_send.append(index)
            else:
                results[index] = _not_sent(updates[index], earlier)
        sent = send_step([updates[i] for i in to_send]) if to_send else []
        for index, result in zip(to_send, sent, strict=True):
            results[index] = result
            if result.status != "applied":
                blocked[result.record_id] = result
    return [r for r in results if r is not None]


def _not_sent(update: RecordUpdate, earlier: WriteResult) -> WriteResult:
    return WriteResult(
        record_id=update.record_id,
        status="rejected" if earlier.status == "rejected" else "retry_later",
        code=EARLIER_STEP_NOT_APPLIED,
        message=f"step {earlier.step} was {earlier.status}: {earlier.code or ''}".rstrip(": "),
        step=update.step,
    )


def send_in_rounds(
    updates: list[RecordUpdate],
    send_batch: SendBatch,
    *,
    batch_size: int,
    rounds: int,
    pause: Callable[[int], None],
) -> list[WriteResult]:
    """Send `updates` in batches; records answered retry-later are resent in up to `rounds - 1`
    further rounds (after `pause(round)`), so a row lock or a dropped record does not cost a
    whole run. Results are aligned with `updates`."""
    results: list[WriteResult | None] = [None] * len(updates)
    pending = list(range(len(updates)))
    for round_number in range(rounds):
        if round_number:
            pause(round_number)
        retry: list[int] = []
        for batch in batches_without_repeats(pending, batch_size, lambda i: updates[i].record_id):
            answers = send_batch([updates[i] for i in batch])
            for index, answer in zip(batch, answers, strict=True):
                results[index] = answer
                if answer.status == "retry_later":
                    retry.append(index)
        pending = retry
        if not pending:
            break
    return [r for r in results if r is not None]


def batches_without_repeats(
    indexes: list[int], size: int, key: Callable[[int], str]
) -> Iterator[list[int]]:
    """Batches of at most `size`, never holding the same record twice (both APIs refuse it);
    a repeated record goes to a later batch, keeping its relative order."""
    remaining = list(indexes)
    while remaining:
        batch: list[int] = []
        ids: set[str] = set()
        later: list[int] = []
        for index in remaining:
            record_id = key(index)
            if len(batch) < size and record_id not in ids:
                batch.append(index)
                ids.add(record_id)
            else:
                later.append(index)
        yield batch
        remaining = later


def confirm_written(
    updates: Sequence[RecordUpdate],
    results: list[WriteResult],
    confirm_fields: Collection[str],
    read_back: ReadBack,
    same: Callable[[Any, Any], bool],
) -> list[WriteResult]:
    """Read back the applied values of `confirm_fields` and turn silent no-ops into rejections.

    Needed for HubSpot's lifecycle stage: a backward move can answer 2xx and change nothing.
    Only each record's last applied update is checked (earlier steps are overwritten by it).
    """
    last: dict[str, int] = {}
    for index, (update, result) in enumerate(zip(updates, results, strict=True)):
        if result.status == "applied" and any(f in update.fields for f in confirm_fields):
            last[update.record_id] = index
    if not last:
        return results
    fields = sorted({f for i in last.values() for f in updates[i].fields if f in confirm_fields})
    actual = read_back(list(last), fields)
    confirmed = list(results)
    for record_id, index in last.items():
        wanted = {f: v for f, v in updates[index].fields.items() if f in confirm_fields}
        held = actual.get(record_id, {})
        wrong = {f: held.get(f) for f, v in wanted.items() if not same(v, held.get(f))}
        if wrong:
            confirmed[index] = WriteResult(
                record_id=record_id,
                status="rejected",
                code=NOT_CONFIRMED,
                message="; ".join(
                    f"{f}: wrote {wanted[f]!r}, system holds {wrong[f]!r}" for f in sorted(wrong)
                ),
                fields=held or None,
                step=updates[index].step,
            )
    return confirmed


def send_or_split(
    batch: list[RecordUpdate],
    send_once: SendBatch,
    splittable: Callable[[FatalApiError], bool],
) -> list[WriteResult]:
    """Send one batch; turn a whole-batch failure into per-record results.

    A transient failure makes every record retry-later; a permanent one that the system may
    have raised for one bad record (`splittable`, e.g. HTTP 400) is split in halves until the
    bad records stand alone, so one bad value does not reject 99 good ones. Authentication and
    budget errors stop the run and pass through.
    """
    try:
        return send_once(batch)
    except (AuthenticationError, BudgetExhausted):
        raise
    except RetriableApiError as error:
        return [result_from_error(u, "retry_later", error) for u in batch]
    except FatalApiError as error:
        if len(batch) > 1 and splittable(error):
            middle = len(batch) // 2
            return send_or_split(batch[:middle], send_once, splittable) + send_or_split(
                batch[middle:], send_once, splittable
            )
        return [result_from_error(u, "rejected", error) for u in batch]


def result_from_error(update: RecordUpdate, status: WriteStatus, error: ApiError) -> WriteResult:
    """A record's result from a request-level error: the system's code and message only."""
    message = str(error).split(": ", 1)[-1]
    return WriteResult(update.record_id, status, code=error.code, message=message, step=update.step)
