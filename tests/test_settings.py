"""Settings: where each value comes from, what an error says, and that secrets never show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connector.exceptions import SettingsError
from connector.settings import Settings, load_settings

TOKEN = "pat-na1-0123456789abcdef-secret"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CRMSYNC_* from the developer's shell; run in an empty directory."""
    for name in list(os.environ):
        if name.startswith("CRMSYNC_") or name == "REQUESTS_CA_BUNDLE":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def load(tmp_path: Path) -> Settings:
    return load_settings(env_file=tmp_path / ".env", secrets_dir=tmp_path / "secrets")


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.hubspot_base_url == "https://api.hubapi.com"
    assert s.salesforce_api_version == "59.0"
    assert s.hubspot_requests_per_10s is None  # derived: 90% of X-HubSpot-RateLimit-Max
    assert s.hubspot_window_share == 0.9
    assert s.hubspot_max_daily_share == s.salesforce_max_daily_share == 0.5
    assert s.hubspot_search_per_second == 5
    assert s.state_path == Path("crmsync.db")
    assert s.mapping_path is None


def test_environment_wins_over_env_file_and_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("CRMSYNC_HUBSPOT_ACCESS_TOKEN=from-dotenv\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "CRMSYNC_HUBSPOT_ACCESS_TOKEN").write_text("from-secret")
    assert load(tmp_path).hubspot_credentials().access_token.get_secret_value() == "from-dotenv"
    monkeypatch.setenv("CRMSYNC_HUBSPOT_ACCESS_TOKEN", "from-env")
    assert load(tmp_path).hubspot_credentials().access_token.get_secret_value() == "from-env"


def test_secrets_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "CRMSYNC_HUBSPOT_ACCESS_TOKEN").write_text(TOKEN)
    assert load(tmp_path).hubspot_credentials().access_token.get_secret_value() == TOKEN


def test_missing_token_names_the_setting_and_every_place_looked(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path).hubspot_credentials()
    text = str(caught.value)
    assert "CRMSYNC_HUBSPOT_ACCESS_TOKEN" in text
    assert "environment variables" in text
    assert str((tmp_path / ".env").resolve()) in text and "(not found)" in text
    assert str((tmp_path / "secrets").resolve()) in text


def test_salesforce_method_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_SALESFORCE_INSTANCE_URL", "https://acme.my.salesforce.com/")
    monkeypatch.setenv("CRMSYNC_SALESFORCE_USERNAME", "u@acme.com")
    monkeypatch.setenv("CRMSYNC_SALESFORCE_PASSWORD", "pw")
    monkeypatch.setenv("CRMSYNC_SALESFORCE_SECURITY_TOKEN", "tok")
    creds = load(tmp_path).salesforce_credentials()
    assert creds.kind == "password"
    assert creds.instance_url == "https://acme.my.salesforce.com"
    monkeypatch.setenv("CRMSYNC_SALESFORCE_ACCESS_TOKEN", "00D!x")
    creds = load(tmp_path).salesforce_credentials()
    assert creds.kind == "access_token" and not creds.can_refresh
    monkeypatch.setenv("CRMSYNC_SALESFORCE_CLIENT_ID", "cid")
    monkeypatch.setenv("CRMSYNC_SALESFORCE_PRIVATE_KEY_FILE", str(tmp_path / "key.pem"))
    assert load(tmp_path).salesforce_credentials().kind == "jwt"
    monkeypatch.setenv("CRMSYNC_SALESFORCE_CLIENT_SECRET", "csecret")
    creds = load(tmp_path).salesforce_credentials()
    assert creds.kind == "client_credentials" and creds.can_refresh


def test_no_salesforce_method_lists_what_each_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMSYNC_SALESFORCE_INSTANCE_URL", "https://acme.my.salesforce.com")
    monkeypatch.setenv("CRMSYNC_SALESFORCE_CLIENT_ID", "cid")
    with pytest.raises(SettingsError) as caught:
        load(tmp_path).salesforce_credentials()
    text = str(caught.value)
    assert "client_credentials: missing CRMSYNC_SALESFORCE_CLIENT_SECRET" in text
    assert "CRMSYNC_SALESFORCE_PRIVATE_KEY_FILE" in text
    assert "CRMSYNC_SALESFORCE_ACCESS_TOKEN" in text
    assert "Looked in:" in text


def test_missing_instance_url(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CRMSYNC_SALESFORCE_INSTANCE_URL"):
        load(tmp_path).salesforce_credentials()


def test_invalid_value_names_the_variable_but_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMSYNC_SALESFORCE_MAX_DAILY_SHARE", "1.5")
    monkeypatch.setenv("CRMSYNC_HTTP_TIMEOUT_SECONDS", "soon")
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    text = str(caught.value)
    assert "CRMSYNC_SALESFORCE_MAX_DAILY_SHARE" in text
    assert "CRMSYNC_HTTP_TIMEOUT_SECONDS" in text
    assert "soon" not in text


def test_secrets_never_appear_in_repr_or_str(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMSYNC_HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("CRMSYNC_SALESFORCE_INSTANCE_URL", "https://acme.my.salesforce.com")
    monkeypatch.setenv("CRMSYNC_SALESFORCE_CLIENT_ID", "cid")
    monkeypatch.setenv("CRMSYNC_SALESFORCE_CLIENT_SECRET", TOKEN + "-sf")
    s = load(tmp_path)
    for text in (repr(s), str(s), repr(s.hubspot_credentials()), repr(s.salesforce_credentials())):
        assert TOKEN not in text
    assert s.model_dump_json().count(TOKEN) == 0
