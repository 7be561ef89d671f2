"""How the emulated org signs clients in: the OAuth 2.0 token endpoint and SOAP login().

Token endpoint (`POST /services/oauth2/token`, form-encoded; Salesforce Help, "OAuth
Authorization Flows"): client credentials, JWT bearer, refresh token and username-password
grants. Each answers `{access_token, instance_url, id, token_type, issued_at, signature}` or
a 400 `{error, error_description}` with the errors a real org gives (`invalid_client`,
`invalid_client_id`, `invalid_grant`, `unsupported_grant_type`).

JWT bearer ("OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration"): the assertion is
RS256-signed with the key whose certificate was uploaded to the connected app; `iss` is the
consumer key, `sub` the username, `aud` the login server (https://login.salesforce.com for a
production org), `exp` within a few minutes.

SOAP login() (`POST /services/Soap/u/{version}`, SOAP API Developer Guide, login()): the
partner envelope simple-salesforce sends, with the password followed by the security token;
answered with `loginResponse/result` holding `serverUrl` and `sessionId`, or a `LoginFault`
INVALID_LOGIN (HTTP 500, as SOAP faults are).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import jwt

from connector.sandbox._http import Request, Response, json_response
from connector.sandbox._state import SandboxState

__all__ = ["answer_soap_login", "answer_token", "load_jwt_public_key"]

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ORG_ID = "00DDn0000000sbxMAA"
USER_ID = "005Dn0000000sbxIAA"
_PARTNER = "{urn:partner.soap.sforce.com}"


class _Refused(Exception):
    """A token request refused with an OAuth error."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def load_jwt_public_key(pem: str | bytes) -> Any:
    """The public key of a PEM certificate (as uploaded to a connected app) or public key."""
    from cryptography import x509  # noqa: PLC0415 - only when JWT is configured
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    data = pem.encode("ascii") if isinstance(pem, str) else pem
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)


def answer_token(state: SandboxState, request: Request) -> Response:
    """`POST /services/oauth2/token` for any of the four grants."""
    if request.method != "POST":
        return json_response(405, {"error": "invalid_request",
                                   "error_description": "must use HTTP POST"})
    form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
    grants = {
        "client_credentials": _client_credentials,
        JWT_GRANT: _jwt_bearer,
        "refresh_token": _refresh_token,
        "password": _password,
    }
    grant = grants.get(form.get("grant_type", ""))
    if grant is None:
        return json_response(400, {"error": "unsupported_grant_type",
                                   "error_description": "grant type not supported"})
    try:
        grant(state, form)
    except _Refused as refused:
        return json_response(400, {"error": refused.error,
                                   "error_description": refused.description})
    return _issued(state, request)


def _issued(state: SandboxState, request: Request) -> Response:
    token = state.open_session(state.salesforce_logins.username)
    host = request.headers.get("Host") or ""
    issued = str(int(datetime.now().timestamp() * 1000))
    return json_response(200, {
        "access_token": token,
        "instance_url": f"https://{host}",
        "id": f"https://{host}/id/{ORG_ID}/{USER_ID}",
        "token_type": "Bearer",
        "issued_at": issued,
        "signature": "c2FuZGJveA==",
        "scope": "api",
    })


def _check_client(state: SandboxState, form: dict[str, str], *, secret_needed: bool) -> None:
    if form.get("client_id") != state.salesforce_client_id:
        raise _Refused("invalid_client_id", "client identifier invalid")
    if secret_needed and form.get("client_secret") != state.salesforce_client_secret:
        raise _Refused("invalid_client", "invalid client credentials")


def _client_credentials(state: SandboxState, form: dict[str, str]) -> None:
    if (form.get("client_id") != state.salesforce_client_id
            or form.get("client_secret") != state.salesforce_client_secret):
        raise _Refused("invalid_client", "invalid client credentials")


def _refresh_token(state: SandboxState, form: dict[str, str]) -> None:
    """The client secret is optional for a refresh, but must be right when sent."""
    _check_client(state, form, secret_needed="client_secret" in form)
    known = state.salesforce_logins.refresh_token
    if not known or form.get("refresh_token") != known:
        raise _Refused("invalid_grant", "expired access/refresh token")


def _password(state: SandboxState, form: dict[str, str]) -> None:
    _check_client(state, form, secret_needed=True)
    logins = state.salesforce_logins
    if (form.get("username") != logins.username
            or form.get("password") != logins.password + logins.security_token):
        raise _Refused("invalid_grant", "authentication failure")


def _jwt_bearer(state: SandboxState, form: dict[str, str]) -> None:
    logins = state.salesforce_logins
    assertion = form.get("assertion") or ""
    if logins.jwt_public_key is None:
        raise _Refused("invalid_grant", "invalid assertion")
    try:
        claims = jwt.decode(assertion, logins.jwt_public_key, algorithms=["RS256"],
                            options={"verify_aud": False, "require": ["exp", "iss", "sub"]})
    except jwt.PyJWTError:
        raise _Refused("invalid_grant", "invalid assertion") from None
    if claims.get("iss") != state.salesforce_client_id:
        raise _Refused("invalid_client_id", "client identifier invalid")
    if claims.get("aud") != logins.jwt_audience:
        raise _Refused("invalid_grant", "audience is invalid")
    if claims.get("sub") != logins.username:
        raise _Refused("invalid_grant", "user hasn't approved this consumer")
    if float(claims["exp"]) > time.time() + 300:
        raise _Refused("invalid_grant", "invalid assertion")  # exp too far ahead


def answer_soap_login(state: SandboxState, request: Request, version: str) -> Response:
    """`POST /services/Soap/u/{version}` with a partner login() envelope."""
    try:
        root = ElementTree.fromstring(request.body)
    except ElementTree.ParseError:
        return _soap_fault("soapenv:Client", "INVALID_REQUEST", "could not parse the request")
    username = root.findtext(f".//{_PARTNER}username")
    password = root.findtext(f".//{_PARTNER}password")
    logins = state.salesforce_logins
    if (not logins.password or username != logins.username
            or password != logins.password + logins.security_token):
        return _soap_fault("sf:INVALID_LOGIN", "INVALID_LOGIN",
                           "Invalid username, password, security token; or user locked out.")
    token = state.open_session(logins.username)
    host = request.headers.get("Host") or ""
    server = f"https://{host}/services/Soap/u/{version}/{ORG_ID[:15]}"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>https://{host}/services/Soap/m/{version}/{ORG_ID[:15]}"
        "</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
        f"<serverUrl>{escape(server)}</serverUrl>"
        f"<sessionId>{escape(token)}</sessionId>"
        f"<userId>{USER_ID}</userId>"
        f"<userInfo><organizationId>{ORG_ID}</organizationId>"
        f"<userName>{escape(logins.username)}</userName></userInfo>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )
    return Response(status=200, body=body.encode("utf-8"),
                    content_type="text/xml;charset=UTF-8")


def _soap_fault(fault_code: str, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>{fault_code}</faultcode>"
        f"<faultstring>{code}: {escape(message)}</faultstring>"
        '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode>"
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(status=500, body=body.encode("utf-8"),
                    content_type="text/xml;charset=UTF-8")
