"""A local HubSpot + Salesforce emulator over HTTPS on 127.0.0.1, for demos, tests and benchmarks.

The official SDKs (hubspot-api-client 12, simple-salesforce 1.12) work against it unchanged; the
behaviours that bite real connectors (search cap, rate limits, forward-only lifecycle stage,
converted leads, restricted picklists, 2,000-record query batches, expiring sessions) bite here.

    from connector.sandbox import Sandbox
    with Sandbox(seed=200) as sb:                      # 200 organisations, ~600 persons
        hs = HubSpot(access_token=sb.hubspot_access_token, host=sb.hubspot_base_url,
                     ssl_ca_cert=sb.ca_path, retry=False)
        session = requests.Session(); session.verify = sb.ca_path; session.trust_env = False
        token = sb.salesforce_token(session)           # or POST /services/oauth2/token yourself
        sf = Salesforce(instance_url=sb.salesforce_instance_url, session_id=token,
                        session=session, version="59.0")

HubSpot and Salesforce share one port (their paths never collide); both base URLs are exposed.
The fault spec grammar is in `connector.sandbox.faults` (see `FAULT_SPEC_HELP`).
"""

from __future__ import annotations

from connector.sandbox._sandbox import Sandbox
from connector.sandbox.faults import FAULT_SPEC_HELP, FaultSpec, parse_faults
from connector.sandbox.generator import generate_dataset

__all__ = [
    "FAULT_SPEC_HELP",
    "FaultSpec",
    "Sandbox",
    "generate_dataset",
    "parse_faults",
]
