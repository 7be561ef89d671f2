"""The HTTPS server: stdlib `ThreadingHTTPServer`, one thread per keep-alive connection.

We use the standard library's http.server rather than werkzeug or an ASGI server: it is
maintained with CPython, adds no dependency, and on loopback it is the fastest of the three for
small JSON answers once the known traps are handled (TCP_NODELAY, HTTP/1.1 keep-alive with a
Content-Length on every answer, the TLS handshake done in the connection's own thread so one
slow client cannot stall `accept`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connector.sandbox._app import SandboxApp
from connector.sandbox._http import Request, Response, json_response
from connector.sandbox._state import SandboxState

__all__ = ["SandboxServer"]

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0


class _Handler(BaseHTTPRequestHandler):
    """Parses one request at a time off a keep-alive TLS connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT
    server: _TlsHttpServer

    def setup(self) -> None:
        connection = self.request
        connection.settimeout(HANDSHAKE_TIMEOUT)
        connection.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines can carry tokens in query strings."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self._read_body()
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        try:
            response = self.server.app.handle(request)
        except Exception:
            log.exception("sandbox failed on %s %s", self.command, split.path)
            response = json_response(500, {"status": "error", "message": "sandbox bug"})
        if response.drop:
            self._drop()
            return
        if response.delay:
            time.sleep(response.delay)
        self._send(response)

    def _read_body(self) -> bytes:
        """The request body, by Content-Length or chunked transfer encoding."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response) -> None:
        """Status line, headers and body in one write (one TLS record when small)."""
        reason = HTTPStatus(response.status).phrase
        lines = [f"HTTP/1.1 {response.status} {reason}",
                 f"Content-Type: {response.content_type}",
                 f"Content-Length: {len(response.body)}"]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + response.body)

    def _drop(self) -> None:
        """Close the connection without an answer, as a failing proxy would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)


class _TlsHttpServer(ThreadingHTTPServer):
    """Accepts plain TCP, wraps it in TLS without handshaking (the handler thread does)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, port: int, app: SandboxApp, context: ssl.SSLContext) -> None:
        self.app = app
        self.context = context
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        raw, address = self.socket.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self.connections.add(wrapped)
        return wrapped, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up or fail TLS are normal here; anything else is logged."""
        import sys  # noqa: PLC0415

        error = sys.exc_info()[1]
        if isinstance(error, OSError | ssl.SSLError | TimeoutError):
            return
        log.exception("sandbox connection failed")

    def drop_all(self) -> None:
        with self._connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class SandboxServer:
    """Runs the TLS server in a background thread."""

    def __init__(self, state: SandboxState, context: ssl.SSLContext, *, port: int = 0) -> None:
        self._httpd = _TlsHttpServer(port, SandboxApp(state), context)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"crmsync-sandbox-{self.port}", daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.drop_all()
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop` is called from another (the CLI)."""
        self._httpd.serve_forever(poll_interval=0.2)
