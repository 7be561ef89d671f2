"""How API answers become our exception tree and per-record write results.

HubSpot errors are built as the SDK's own ApiException (no mocks): classification goes by
`.status`, `.headers` and `.body`, which is all the SDK gives us.
"""

from __future__ import annotations

import json

import pytest
from hubspot.crm.companies.exceptions import ApiException as CompaniesApiException
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException

from connector.exceptions import (
    AuthenticationError,
    BudgetExhausted,
    CredentialsRejected,
    FatalApiError,
    RateLimitedError,
    RetriableApiError,
)
from connector.systems.base import RecordUpdate
from connector.systems.hubspot import _reconcile_batch, classify_hubspot_error
from connector.systems.salesforce import _collection_results, classify_salesforce_error


def hubspot_error(cls, status: int, body: dict | None = None, headers: dict | None = None):
    error = cls(status=status, reason="reason")
    error.body = json.dumps(body).encode() if body is not None else None
    error.headers = headers or {}
    return error


@pytest.mark.parametrize("cls", [ContactsApiException, CompaniesApiException])
def test_hubspot_429_is_rate_limited_with_policy_and_retry_after(cls) -> None:
    body = {
        "status": "error",
        "message": "slow",
        "errorType": "RATE_LIMIT",
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    error = classify_hubspot_error(hubspot_error(cls, 429, body, {"Retry-After": "2"}), "search")
    assert isinstance(error, RateLimitedError)
    assert error.policy == "TEN_SECONDLY_ROLLING"
    assert error.retry_after == 2.0
    assert error.status == 429


def test_hubspot_429_daily_stops_the_run() -> None:
    body = {"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY"}
    assert isinstance(
        classify_hubspot_error(hubspot_error(ContactsApiException, 429, body)), BudgetExhausted
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, RetriableApiError),
        (502, RetriableApiError),
        (503, RetriableApiError),
        (423, RetriableApiError),
        (400, FatalApiError),
        (404, FatalApiError),
        (409, FatalApiError),
        (401, CredentialsRejected),  # a refused token: a setting to fix (exit 2)
    ],
)
def test_hubspot_status_classes(status: int, kind: type) -> None:
    body = {"status": "error", "message": "m", "category": "VALIDATION_ERROR"}
    error = classify_hubspot_error(hubspot_error(ContactsApiException, status, body))
    assert type(error) is kind
    if status == 423:
        assert error.retry_after >= 2.0


def test_hubspot_validation_error_keeps_category_and_message() -> None:
    body = {
        "status": "error",
        "message": "Property values were not valid",
        "category": "VALIDATION_ERROR",
    }
    error = classify_hubspot_error(hubspot_error(ContactsApiException, 400, body), "batch_update")
    assert error.code == "VALIDATION_ERROR"
    assert "Property values were not valid" in str(error)
    assert not isinstance(error, RetriableApiError)


@pytest.mark.parametrize(
    ("status", "content", "kind"),
    [
        (400, [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}], RetriableApiError),
        (503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}], RetriableApiError),
        (500, "oops", RetriableApiError),
        (400, [{"errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "v"}], FatalApiError),
        (
            400,
            [{"errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "message": "p"}],
            FatalApiError,
        ),
        (400, [{"errorCode": "CANNOT_UPDATE_CONVERTED_LEAD", "message": "c"}], FatalApiError),
        (401, [{"errorCode": "INVALID_SESSION_ID", "message": "expired"}], AuthenticationError),
        (
            403,
            [
                {
                    "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    "message": "ConcurrentPerOrgLongTxn Limit exceeded",
                }
            ],
            RateLimitedError,
        ),
        (
            403,
            [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
            BudgetExhausted,
        ),
        (403, [{"errorCode": "INSUFFICIENT_ACCESS", "message": "no"}], FatalApiError),
    ],
)
def test_salesforce_classes(status: int, content, kind: type) -> None:
    assert type(classify_salesforce_error(status, content, "query")) is kind


def updates(*ids: str) -> list[RecordUpdate]:
    return [RecordUpdate(i, {"lifecyclestage": "lead"}) for i in ids]


def test_hubspot_207_is_reconciled_by_id_not_by_count() -> None:
    data = {
        "status": "COMPLETE",
        "results": [{"id": "1", "properties": {"lifecyclestage": "lead"}}],
        "numErrors": 1,  # wrong on purpose: "3" is neither applied nor reported
        "errors": [
            {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": "bad",
                "context": {"ids": ["2"]},
            },
            {
                "status": "error",
                "category": "RATE_LIMITS",
                "message": "later",
                "context": {"ids": ["4"]},
            },
        ],
    }
    results = _reconcile_batch(updates("1", "2", "3", "4"), data)
    assert [r.status for r in results] == ["applied", "rejected", "retry_later", "retry_later"]
    assert results[0].fields == {"lifecyclestage": "lead"}
    assert results[1].code == "VALIDATION_ERROR"
    assert results[2].code == "NOT_IN_RESPONSE"


def test_salesforce_collection_results_in_request_order() -> None:
    answers = [
        {"id": "a", "success": True, "errors": []},
        {
            "id": "b",
            "success": False,
            "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "lock", "fields": []}],
        },
        {
            "id": "c",
            "success": False,
            "errors": [{"statusCode": "CANNOT_UPDATE_CONVERTED_LEAD", "message": "converted"}],
        },
    ]
    results = _collection_results(updates("a", "b", "c", "d"), answers)
    assert [r.status for r in results] == ["applied", "retry_later", "rejected", "retry_later"]
    assert results[2].code == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert results[3].code == "NOT_IN_RESPONSE"
