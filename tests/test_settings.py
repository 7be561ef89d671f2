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


# --- values that would crash or hang a run later are refused when settings load ------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-1", "0"])
def test_timeouts_must_be_finite_and_positive(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMSYNC_HTTP_TIMEOUT_SECONDS", value)
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert "CRMSYNC_HTTP_TIMEOUT_SECONDS" in str(caught.value)


@pytest.mark.parametrize("name", ["CRMSYNC_HUBSPOT_WINDOW_SECONDS",
                                  "CRMSYNC_RETRY_INITIAL_WAIT_SECONDS",
                                  "CRMSYNC_RETRY_MAX_WAIT_SECONDS"])
def test_other_durations_must_be_finite(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "inf")
    with pytest.raises(SettingsError, match=name):
        load(tmp_path)


def test_a_latin1_env_file_names_the_file_and_the_byte(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"# crmsync\nCRMSYNC_SALESFORCE_USERNAME=ren\xe9@acme.com\n")
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    text = str(caught.value)
    assert str(tmp_path / ".env") in text
    assert "offset 41 (line 2)" in text and "0xe9" in text and "UTF-8" in text


def test_a_named_env_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "prod.env"
    with pytest.raises(SettingsError, match=r"prod\.env not found"):
        load_settings(env_file=missing, require_env_file=True)
    with pytest.raises(SettingsError, match="not a file"):
        load_settings(env_file=tmp_path, require_env_file=True)
    assert load_settings(env_file=missing).state_path == Path("crmsync.db")  # default: optional


# --- credentials only ever go over TLS -----------------------------------------------------


@pytest.mark.parametrize("name", ["CRMSYNC_HUBSPOT_BASE_URL", "CRMSYNC_SALESFORCE_INSTANCE_URL",
                                  "CRMSYNC_SALESFORCE_JWT_AUDIENCE"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "HTTP://api.hubapi.com",
                                 "api.hubapi.com", "ftp://acme.my.salesforce.com", "https://"])
def test_endpoints_must_be_https(
    name: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, url)
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert name in str(caught.value) and "https://" in str(caught.value)


def test_https_endpoints_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_HUBSPOT_BASE_URL", "HTTPS://api.hubapi.com/")
    monkeypatch.setenv("CRMSYNC_SALESFORCE_INSTANCE_URL", "https://127.0.0.1:8443")
    settings = load(tmp_path)
    assert settings.hubspot_base_url == "HTTPS://api.hubapi.com"
    assert settings.salesforce_instance_url == "https://127.0.0.1:8443"


# --- every configured secret is scrubbed from any text, wherever it is printed -------------


def test_configured_secrets_are_registered_for_scrubbing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.exceptions import scrub  # noqa: PLC0415

    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
                   "-----END PRIVATE KEY-----\n")
    secrets = {
        "CRMSYNC_HUBSPOT_ACCESS_TOKEN": "pat-eu1-registered-hubspot-token",
        "CRMSYNC_SALESFORCE_CLIENT_SECRET": "registered-client-secret-42",
        "CRMSYNC_SALESFORCE_PASSWORD": "registered-password-42",
        "CRMSYNC_SALESFORCE_SECURITY_TOKEN": "registered-security-token",
        "CRMSYNC_SALESFORCE_ACCESS_TOKEN": "00Dregistered!access.token",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRMSYNC_SALESFORCE_PRIVATE_KEY_FILE", str(key))
    load(tmp_path)
    for value in [*secrets.values(), "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"]:
        quoted = f"the server said: {value} is not valid"
        assert value not in scrub(quoted), value
