"""Credentials never leave over plain HTTP, and a secret a server quotes back is never printed,
logged or stored: the real `crmsync` command against real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from tests.runs import cli

TOKEN = "pat-na1-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
CLIENT_ID = "3MVG9securitytestclient"
CLIENT_SECRET = "9F8E7D6C5B4A39281706f5e4d3c2b1a0"
SESSION = "00Dsecurity!AQ4AQFakeSessionToken1234567890"


# --- 3. plain HTTP: refused before anything is sent ----------------------------------------


@contextmanager
def plain_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP port on 127.0.0.1 that records every byte a client sends, then hangs up."""
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                try:
                    while chunk := connection.recv(65536):
                        received.append(chunk)
                        if b"\r\n\r\n" in b"".join(received):
                            break
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        stop.set()
        thread.join(5)
        server.close()


def env_lines(hubspot_url: str, salesforce_url: str, **extra: str) -> str:
    values = {
        "CRMSYNC_HUBSPOT_ACCESS_TOKEN": TOKEN,
        "CRMSYNC_HUBSPOT_BASE_URL": hubspot_url,
        "CRMSYNC_SALESFORCE_INSTANCE_URL": salesforce_url,
        "CRMSYNC_SALESFORCE_CLIENT_ID": CLIENT_ID,
        "CRMSYNC_SALESFORCE_CLIENT_SECRET": CLIENT_SECRET,
        "CRMSYNC_RETRY_MAX_ATTEMPTS": "2",
        "CRMSYNC_RETRY_INITIAL_WAIT_SECONDS": "0.01",
        "CRMSYNC_RETRY_MAX_WAIT_SECONDS": "0.05",
        "CRMSYNC_HTTP_TIMEOUT_SECONDS": "5",
        **extra,
    }
    return "".join(f"{key}={value}\n" for key, value in values.items())


@pytest.mark.parametrize("plain", ["hubspot", "salesforce"])
@pytest.mark.parametrize("command", ["sync", "check"])
def test_plain_http_endpoints_are_refused_before_any_byte_is_sent(
    plain: str, command: str, tmp_path: Path
) -> None:
    with plain_listener() as (port, received):
        url = f"http://127.0.0.1:{port}"
        closed = "https://127.0.0.1:9"  # nothing listens there: no request can succeed
        env_file = tmp_path / "plain.env"
        env_file.write_text(env_lines(url if plain == "hubspot" else closed,
                                      url if plain == "salesforce" else closed))
        result = cli(command, cwd=tmp_path, env_file=env_file, state=None
                     if command == "check" else tmp_path / "state.db")
    assert b"".join(received) == b"", "credentials were sent over plain HTTP"
    assert result.returncode == 2, result.stderr[-2000:]
    variable = ("CRMSYNC_HUBSPOT_BASE_URL" if plain == "hubspot"
                else "CRMSYNC_SALESFORCE_INSTANCE_URL")
    assert variable in result.stderr and "https://" in result.stderr
    assert "Traceback" not in result.stderr


# --- 4. a server that quotes secrets back --------------------------------------------------


class EchoingCrm(BaseHTTPRequestHandler):
    """A CRM that answers every call with an error quoting the credentials it was sent, as
    misbehaving proxies and some real error pages do. The bodies use each API's error shape:
    HubSpot `{"status": "error", "message", "category"}` (developers.hubspot.com/docs/api/
    error-handling) and Salesforce `[{"message", "errorCode"}]` / OAuth `{"error",
    "error_description"}` (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
    errorcodes.htm)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def _handle(self) -> None:
        body = self._body()
        credential = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.path.startswith("/services/oauth2/token"):
            form = urllib.parse.parse_qs(body)
            secret = form.get("client_secret", [""])[0]
            if secret == CLIENT_SECRET:
                self._answer(200, {"access_token": SESSION, "instance_url": self.server.url,
                                   "token_type": "Bearer"})
            else:
                self._answer(400, {"error": "invalid_client",
                                   "error_description": f"unknown secret {secret}"})
        elif self.path.startswith("/services/data"):
            self._answer(400, [{"errorCode": "INVALID_AUTH_HEADER",
                                "message": f"session {credential} rejected; connected app "
                                           f"secret on file is {CLIENT_SECRET}"}])
        else:
            self._answer(401, {"status": "error", "category": "INVALID_AUTHENTICATION",
                               "message": f"The OAuth token used to make this call ({credential})"
                                          " is not valid."})

    do_GET = do_POST = do_PATCH = _handle


@contextmanager
def echoing_crm(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The echoing CRM over HTTPS with a throw-away CA; yields its URL and the CA file."""
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingCrm)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.url = f"https://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url, ca_file  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_secrets_quoted_back_by_a_server_appear_nowhere(tmp_path: Path) -> None:
    with echoing_crm(tmp_path) as (url, ca_file):
        env_file = tmp_path / "echo.env"
        env_file.write_text(env_lines(url, url, CRMSYNC_CA_BUNDLE=str(ca_file)))
        state = tmp_path / "state.db"
        results = [cli(*args, cwd=tmp_path, env_file=env_file, state=state)
                   for args in (("sync", "--allow-empty-state", "--json"),
                                ("sync", "--allow-empty-state", "--log-format", "json"),
                                ("sync", "--allow-empty-state", "--verbose"))]
        results += [cli("check", *args, cwd=tmp_path, env_file=env_file)
                    for args in ((), ("--json",))]
        results += [cli(*args, cwd=tmp_path, state=state)
                    for args in (("status",), ("status", "--json"), ("rejects", "--json"))]
    # a refused token is a setting to fix: exit 2, for `check` as for a run
    assert [r.returncode for r in results[:4]] == [2, 2, 2, 2], results[0].stderr[-2000:]
    printed = "".join(r.stdout + r.stderr for r in results)
    assert "used to make this call (***)" in printed  # both echoes arrived, scrubbed
    assert "secret on file is ***" in printed
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert stored, "no state DB written"
    for secret in (TOKEN, CLIENT_SECRET):
        assert secret not in printed, secret
        assert secret.encode() not in stored, secret


def test_a_session_token_quoted_back_appears_nowhere(tmp_path: Path) -> None:
    with echoing_crm(tmp_path) as (url, ca_file):
        env_file = tmp_path / "echo.env"
        env_file.write_text(env_lines(url, url, CRMSYNC_CA_BUNDLE=str(ca_file)))
        result = cli("check", "--json", cwd=tmp_path, env_file=env_file)
    assert "session *** rejected" in result.stdout
    assert SESSION not in result.stdout + result.stderr
