"""Plain request and response values passed between the HTTP server and the emulated APIs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BadJson", "Request", "Response", "correlation_id", "json_response"]


class BadJson(ValueError):
    """The request body is not the JSON the endpoint needs."""


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON; BadJson when it is not."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise BadJson(str(exc)) from None

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def params(self, name: str) -> list[str]:
        """Every value of a repeated or comma-separated query parameter."""
        return [part for value in self.query.get(name, []) for part in value.split(",") if part]

    def bearer_token(self) -> str | None:
        """The token of an `Authorization: Bearer …` header."""
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Response:
    """What to send back: status, headers, body; or drop the connection, or answer late."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json;charset=UTF-8"
    drop: bool = False
    delay: float = 0.0


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    """A JSON response (compact separators: the benchmarks measure bytes too)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(status=status, body=body, headers=list(headers or []))


def correlation_id() -> str:
    """A fresh id, as both APIs put in error bodies to quote to support."""
    return str(uuid.uuid4())
