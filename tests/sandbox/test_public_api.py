"""The package's public surface is what `__all__` says, and every name imports."""

from __future__ import annotations

import connector.sandbox as sandbox


def test_all_names_exist_and_nothing_else_is_advertised() -> None:
    assert sorted(sandbox.__all__) == sandbox.__all__
    assert set(sandbox.__all__) == {"FAULT_SPEC_HELP", "FaultSpec", "Sandbox",
                                    "generate_dataset", "parse_faults"}
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None


def test_sandbox_interface_other_engineers_code_against() -> None:
    expected = {"hubspot_base_url", "hubspot_access_token", "salesforce_instance_url",
                "salesforce_client_id", "salesforce_client_secret", "ca_path", "settings_env",
                "counters", "reset_counters", "set_faults", "expire_salesforce_sessions",
                "hubspot_record", "hubspot_records", "salesforce_record", "salesforce_records",
                "update_hubspot", "update_salesforce", "create_hubspot", "create_salesforce",
                "dump", "dump_to", "start", "close"}
    with sandbox.Sandbox() as sb:
        assert expected <= set(dir(sb))
        env = sb.settings_env()
        assert env["CRMSYNC_HUBSPOT_BASE_URL"] == sb.hubspot_base_url.rstrip("/")
        assert env["CRMSYNC_CA_BUNDLE"] == sb.ca_path
        assert sb.hubspot_records("contacts") == []
