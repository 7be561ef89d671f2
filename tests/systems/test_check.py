"""`check` against a stub adapter and a stub mapping: what is reported and how to fix it."""

from __future__ import annotations

from connector.exceptions import AuthenticationError, RetriableApiError, SettingsError
from connector.systems.check import check_systems, run_check

from .helpers import STUB_MAPPING as MAPPING
from .helpers import StubAdapter, info


def test_missing_and_read_only_fields_are_errors_with_fixes() -> None:
    adapters = {
        "hubspot": StubAdapter(
            "hubspot",
            {"contacts": {"email": info("email"), "lifecyclestage": info("lifecyclestage")}},
        ),
        "salesforce": StubAdapter(
            "salesforce",
            {
                "Lead": {
                    "Email": info("Email"),
                    "status": info("Status"),
                    "CreatedDate": info("CreatedDate", writable=False),
                }
            },
        ),
    }
    report = check_systems(adapters, MAPPING)
    assert not report.ok
    missing = {(f.system, f.object_type, f.field, f.what) for f in report.errors}
    assert missing == {
        ("hubspot", "contacts", "icp_fit", "field exists"),
        ("salesforce", "Lead", "CreatedDate", "field writable"),
    }
    hubspot_fix = next(f.fix for f in report.errors if f.system == "hubspot")
    assert "/crm/v3/properties/contacts" in hubspot_fix
    assert any(
        f.what == "connectivity and authentication" and f.level == "ok" for f in report.findings
    )


def test_all_present_is_ok() -> None:
    adapters = {
        "hubspot": StubAdapter(
            "hubspot", {"contacts": {n: info(n) for n in ("email", "lifecyclestage", "icp_fit")}}
        )
    }
    assert check_systems(adapters, MAPPING).ok


def test_auth_and_connectivity_failures_are_reported() -> None:
    adapters = {
        "hubspot": StubAdapter("hubspot", {}, AuthenticationError("401", system="hubspot")),
        "salesforce": StubAdapter("salesforce", {}, RetriableApiError("down", system="salesforce")),
    }
    report = check_systems(adapters, MAPPING)
    assert [(f.system, f.what) for f in report.errors] == [
        ("hubspot", "authentication"),
        ("salesforce", "connectivity"),
    ]


def test_missing_settings_are_a_finding_not_a_crash() -> None:
    def refuse(settings):
        raise SettingsError("CRMSYNC_HUBSPOT_ACCESS_TOKEN is not set")

    def ok(settings):
        return StubAdapter(
            "salesforce", {"Lead": {n: info(n) for n in ("Email", "Status", "CreatedDate")}}
        )

    report = run_check(object(), MAPPING, build={"hubspot": refuse, "salesforce": ok})
    assert [(f.system, f.what) for f in report.errors] == [("hubspot", "settings")]
