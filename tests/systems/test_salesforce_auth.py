"""Salesforce login methods: the JWT bearer assertion, and how a refused login reads."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from connector.exceptions import AuthenticationError
from connector.sandbox import Sandbox
from connector.settings import SalesforceCredentials
from connector.systems.salesforce import SalesforceAdapter, _TokenSource


def rsa_key(tmp_path: Path) -> tuple[Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "server.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, key


def jwt_credentials(instance_url: str, key_file: Path) -> SalesforceCredentials:
    return SalesforceCredentials(
        kind="jwt",
        instance_url=instance_url,
        client_id="3MVGconsumerkey",
        username="integration@acme.com",
        private_key_file=key_file,
        jwt_audience="https://login.salesforce.com",
    )


def test_jwt_assertion_is_signed_with_the_private_key(tmp_path: Path) -> None:
    key_file, key = rsa_key(tmp_path)
    source = _TokenSource(
        jwt_credentials("https://acme.my.salesforce.com", key_file), requests.Session(), "59.0"
    )
    assertion = source._jwt_assertion()
    claims = jwt.decode(
        assertion, key.public_key(), algorithms=["RS256"], audience="https://login.salesforce.com"
    )
    assert claims["iss"] == "3MVGconsumerkey"
    assert claims["sub"] == "integration@acme.com"
    assert source.can_refresh


def test_a_refused_jwt_login_is_an_authentication_error(
    small_sandbox: Sandbox, tmp_path: Path
) -> None:
    # No certificate is uploaded for this key (and the client id is not the connected app's):
    # the sandbox refuses the assertion as Salesforce does, a clear error with no secret in it.
    key_file, _ = rsa_key(tmp_path)
    adapter = SalesforceAdapter(
        jwt_credentials(small_sandbox.salesforce_instance_url, key_file),
        ca_bundle=small_sandbox.ca_path,
    )
    with pytest.raises(AuthenticationError, match="jwt login refused") as caught:
        list(adapter.read_all("Lead", []))
    assert "BEGIN" not in str(caught.value)


def test_password_credentials_never_show_in_repr() -> None:
    creds = SalesforceCredentials(
        kind="password",
        instance_url="https://acme.my.salesforce.com",
        username="u@acme.com",
        password=SecretStr("hunter2-password"),
        security_token=SecretStr("xyzzy-security-token"),
    )
    assert creds.can_refresh
    assert "hunter2" not in repr(creds) and "xyzzy" not in repr(creds)
    adapter = SalesforceAdapter(creds)
    assert "hunter2" not in repr(adapter) and "xyzzy" not in repr(adapter)
