"""Route a request to HubSpot, Salesforce or the admin endpoints (`/__sandbox/...`).

Admin endpoints need no token (the server listens on loopback only) and count towards no
API limit:

    GET  /__sandbox/health                          {"ok": true}
    GET  /__sandbox/counters                        the counters snapshot
    POST /__sandbox/counters/reset                  zero the counters
    GET  /__sandbox/dump                            every record, fixture format
    GET  /__sandbox/records/hubspot/{type}[/{id}]   records as stored
    GET  /__sandbox/records/salesforce/{S}[/{id}]
    POST /__sandbox/faults                          body: a fault spec ("" turns faults off)
    POST /__sandbox/expire-sessions                 every Salesforce token expires now

Every other request is counted: by its endpoint (`hubspot.search`, ...) or, when no route
knows it, as `unknown`, so a stray call cannot hide from call-count targets.
"""

from __future__ import annotations

import re

from connector.sandbox._http import Request, Response, json_response
from connector.sandbox._state import SandboxState
from connector.sandbox.faults import BODY_KINDS, garbled_body, parse_faults
from connector.sandbox.hubspot import HubSpotApi
from connector.sandbox.salesforce import SalesforceApi

__all__ = ["UNKNOWN_ENDPOINT", "SandboxApp"]

UNKNOWN_ENDPOINT = "unknown"

_RECORDS = re.compile(r"^/__sandbox/records/(?P<system>hubspot|salesforce)/(?P<kind>\w+)"
                      r"(?:/(?P<id>\w+))?/?$")


class SandboxApp:
    """The request handler behind the HTTP server."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.hubspot = HubSpotApi(state)
        self.salesforce = SalesforceApi(state)

    def handle(self, request: Request) -> Response:
        """Answer any request; unknown paths get a plain JSON 404 (and count as unknown)."""
        if request.path.startswith("/__sandbox/"):
            return self.admin(request)
        self.state.begin_request()
        response = self.hubspot.handle(request) or self.salesforce.handle(request)
        if response is None:
            response = json_response(404, {"status": "error", "message": "Not found"})
        arrival = self.state.arrival()
        if arrival is None:
            self.state.counters.request(UNKNOWN_ENDPOINT)
            self.state.counters.status(UNKNOWN_ENDPOINT, response.status)
            return response
        _, fault = arrival
        if fault in BODY_KINDS and not response.drop:
            response.body, response.content_type = garbled_body(fault, response.body)
            response.status = 200
        self.state.answered()
        return response

    def admin(self, request: Request) -> Response:
        state = self.state
        path = request.path.rstrip("/")
        if path == "/__sandbox/health":
            return json_response(200, {"ok": True})
        if path == "/__sandbox/counters":
            return json_response(200, state.counters.snapshot())
        if path == "/__sandbox/counters/reset" and request.method == "POST":
            state.counters.reset()
            return json_response(200, {"ok": True})
        if path == "/__sandbox/dump":
            return json_response(200, state.dataset.dump())
        if path == "/__sandbox/faults" and request.method == "POST":
            text = request.body.decode("utf-8").strip()
            try:
                state.set_faults(parse_faults(text) if text else None)
            except ValueError as exc:
                return json_response(400, {"ok": False, "message": str(exc)})
            return json_response(200, {"ok": True, "faults": str(state.faults or "")})
        if path == "/__sandbox/expire-sessions" and request.method == "POST":
            state.expire_sessions()
            return json_response(200, {"ok": True})
        match = _RECORDS.match(path)
        if match:
            return self.records(match["system"], match["kind"], match["id"])
        return json_response(404, {"ok": False, "message": f"no admin endpoint {path}"})

    def records(self, system: str, kind: str, record_id: str | None) -> Response:
        data = self.state.dataset
        try:
            if system == "hubspot":
                if record_id:
                    return json_response(200, data.hubspot_record(kind, record_id))
                return json_response(200, data.hubspot_records(kind))
            if record_id:
                return json_response(200, data.salesforce_record(kind, record_id))
            return json_response(200, data.salesforce_records(kind))
        except KeyError:
            return json_response(404, {"ok": False, "message": f"no {system} {kind} {record_id}"})
