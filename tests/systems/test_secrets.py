"""Tokens never appear in logs, exceptions, reprs or reports, even with every logger at DEBUG
and faults forcing retries, error paths and session refreshes."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from connector.exceptions import CrmsyncError
from connector.sandbox import Sandbox
from connector.systems.base import RecordUpdate
from connector.systems.check import run_check

from .helpers import BASE, hubspot_for, salesforce_for, settings_for
from .helpers import SANDBOX_MAPPING as MAPPING


def test_no_secret_escapes(small_sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    small_sandbox.set_faults(
        "*:500=0.1,*:429=0.05,salesforce.query:session=0.2,"
        "hubspot.batch_update:partial=0.2,salesforce.composite:lock=0.2,seed=21"
    )
    texts: list[str] = []
    hubspot, salesforce = hubspot_for(small_sandbox), salesforce_for(small_sandbox)
    for adapter, object_type in ((hubspot, "contacts"), (salesforce, "Lead")):
        records = [
            r
            for p in adapter.read_changed(object_type, BASE - timedelta(days=3650), [])
            for r in p.records
        ]
        key = "id" if adapter is hubspot else "Id"
        field = "firstname" if adapter is hubspot else "FirstName"
        results = adapter.write(object_type, [RecordUpdate(r[key], {field: "X"}) for r in records])
        texts += [repr(adapter), repr(adapter.usage()), *map(repr, results)]
    secrets = [
        small_sandbox.hubspot_access_token,
        small_sandbox.salesforce_client_secret,
        salesforce._sf.session_id,  # the access token the adapter obtained
    ]
    # Error paths: refused credentials on both sides.
    for build, override in (
        (hubspot_for, {"hubspot_access_token": "pat-na1-" + "d" * 32}),
        (salesforce_for, {"salesforce_client_secret": "c" * 40}),
    ):
        secrets.extend(override.values())
        with pytest.raises(CrmsyncError) as caught:
            adapter = build(small_sandbox, **override)
            list(adapter.read_all("contacts" if build is hubspot_for else "Lead", []))
        texts += [str(caught.value), repr(caught.value)]
    report = run_check(settings_for(small_sandbox), MAPPING)
    texts += [str(report.to_dict()), repr(settings_for(small_sandbox))]
    texts.append(caplog.text)
    assert "retrying" in caplog.text  # the fault paths really ran
    for text in texts:
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize("text", [
    "invalid_grant: authentication failure (grant_type=password)",
    "unsupported_grant_type: grant_type=client_credentials is not enabled for this app",
    "the password grant type is disabled; use a token",
])
def test_scrub_leaves_grant_types_and_ordinary_words_alone(text: str) -> None:
    from connector.exceptions import scrub  # noqa: PLC0415

    assert scrub(text) == text


def test_scrub_still_blanks_credential_parameters() -> None:
    from connector.exceptions import scrub  # noqa: PLC0415

    text = "grant_type=password&username=u@acme.com&password=hunter2-xyz&client_secret=s3cr3t-abc"
    assert scrub(text) == "grant_type=password&username=u@acme.com&password=***&client_secret=***"
