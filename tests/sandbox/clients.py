"""Real SDK clients pointed at a sandbox over verified HTTPS, as design.md sets them up."""

from __future__ import annotations

from datetime import UTC, datetime

import requests
from hubspot import HubSpot
from simple_salesforce import Salesforce

from connector.sandbox import Sandbox

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def hubspot_client(sb: Sandbox) -> HubSpot:
    """The official client as design.md sets it up: own host, our CA, no urllib3 retries."""
    return HubSpot(
        access_token=sb.hubspot_access_token,
        host=sb.hubspot_base_url,
        ssl_ca_cert=sb.ca_path,
        retry=False,
    )


def salesforce_session(sb: Sandbox) -> requests.Session:
    session = requests.Session()
    session.verify = sb.ca_path
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    return session


def salesforce_client(sb: Sandbox) -> Salesforce:
    """simple-salesforce with a token from the sandbox's client-credentials endpoint."""
    session = salesforce_session(sb)
    token = sb.salesforce_token(session)
    return Salesforce(
        instance_url=sb.salesforce_instance_url, session_id=token, session=session,
        version="59.0",
    )
