"""HubSpot's rolling, secondly (search) and daily limits, answered as HubSpot answers them."""

from __future__ import annotations

import json
import time

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import ApiException, PublicObjectSearchRequest

from connector.sandbox import Sandbox
from tests.sandbox.clients import NOW, hubspot_client

HEADERS = ("X-HubSpot-RateLimit-Max", "X-HubSpot-RateLimit-Remaining",
           "X-HubSpot-RateLimit-Interval-Milliseconds", "X-HubSpot-RateLimit-Daily",
           "X-HubSpot-RateLimit-Daily-Remaining")


def test_rolling_window_answers_429_with_policy_and_headers() -> None:
    with Sandbox(seed=2, now=NOW, hubspot_requests_per_window=4,
                 hubspot_window_seconds=1.5) as sb:
        api = hubspot_client(sb).crm.contacts.basic_api
        started = time.monotonic()
        remaining = []
        for _ in range(4):
            _, status, headers = api.get_page_with_http_info(limit=1)
            assert status == 200
            assert headers["X-HubSpot-RateLimit-Max"] == "4"
            assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1500"
            remaining.append(int(headers["X-HubSpot-RateLimit-Remaining"]))
        assert remaining == [3, 2, 1, 0]
        with pytest.raises(ApiException) as limited:
            api.get_page(limit=1)
        assert time.monotonic() - started < 1.5, "the test machine was too slow to hit the limit"
        assert limited.value.status == 429
        body = json.loads(limited.value.body)
        assert body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["errorType"] == "RATE_LIMIT"
        assert body["status"] == "error"
        assert all(h in limited.value.headers for h in HEADERS)
        assert limited.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        time.sleep(1.55)
        assert api.get_page_with_http_info(limit=1)[1] == 200


def test_search_has_its_own_per_second_limit_and_no_rate_headers() -> None:
    with Sandbox(seed=2, now=NOW, search_requests_per_second=2) as sb:
        api = hubspot_client(sb).crm.contacts.search_api
        for _ in range(2):
            _, status, headers = api.do_search_with_http_info(PublicObjectSearchRequest(limit=1))
            assert status == 200
            assert not any(h in headers for h in HEADERS)
        with pytest.raises(ApiException) as limited:
            api.do_search(PublicObjectSearchRequest(limit=1))
        assert limited.value.status == 429
        assert json.loads(limited.value.body)["policyName"] == "SECONDLY"
        assert not any(h in limited.value.headers for h in HEADERS)
        # Search does not use up the ten-second window of the other endpoints.
        assert hubspot_client(sb).crm.contacts.basic_api.get_page_with_http_info()[1] == 200


def test_daily_limit_answers_429_daily() -> None:
    with Sandbox(seed=2, now=NOW, hubspot_daily_limit=3) as sb:
        api = hubspot_client(sb).crm.companies.basic_api
        daily_remaining = [api.get_page_with_http_info()[2]["X-HubSpot-RateLimit-Daily-Remaining"]
                           for _ in range(3)]
        assert daily_remaining == ["2", "1", "0"]
        with pytest.raises(Exception) as limited:
            api.get_page()
        assert limited.value.status == 429
        assert json.loads(limited.value.body)["policyName"] == "DAILY"
        sb.reset_limits()
        assert api.get_page_with_http_info()[1] == 200


def test_rejected_requests_do_not_use_the_window() -> None:
    """A 401 is answered before the limits are counted."""
    with Sandbox(seed=2, now=NOW, hubspot_requests_per_window=2) as sb:
        wrong = HubSpot(access_token="pat-na1-x", host=sb.hubspot_base_url,
                        ssl_ca_cert=sb.ca_path, retry=False)
        for _ in range(3):
            with pytest.raises(Exception) as refused:
                wrong.crm.contacts.basic_api.get_page()
            assert refused.value.status == 401
        remaining = hubspot_client(sb).crm.contacts.basic_api.get_page_with_http_info()[2]
        assert remaining["X-HubSpot-RateLimit-Remaining"] == "1"
