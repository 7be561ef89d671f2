"""One adapter per CRM over its official SDK, behind the same interface.

    CrmAdapter (Protocol, base.py)
    ├── HubSpotAdapter      hubspot.py     hubspot-api-client 12, raw JSON, search cap handling
    └── SalesforceAdapter   salesforce.py  simple-salesforce 1.12, SOQL, sObject Collections
    resilience.py   RetryPolicy (tenacity), RateWindow, DailyAllocation
    factory.py      build_adapters(settings)
    check.py        `crmsync check`: connectivity, auth, every mapped field, its values,
                    types and lifecycle order (the write checks are connector/preflight.py)

The core never imports an SDK: it gets Pages of plain dicts and returns RecordUpdates.
"""

from __future__ import annotations

from connector.systems.base import (
    ApiUsage,
    CrmAdapter,
    FieldInfo,
    Page,
    RecordUpdate,
    WriteResult,
    WriteStatus,
)
from connector.systems.check import CheckFinding, CheckReport, check_systems, run_check
from connector.systems.factory import (
    Adapters,
    build_adapters,
    build_hubspot,
    build_salesforce,
)
from connector.systems.hubspot import HubSpotAdapter, HubSpotLimits
from connector.systems.resilience import DailyAllocation, RateWindow, RetryPolicy
from connector.systems.salesforce import SalesforceAdapter

__all__ = [
    "Adapters",
    "ApiUsage",
    "CheckFinding",
    "CheckReport",
    "CrmAdapter",
    "DailyAllocation",
    "FieldInfo",
    "HubSpotAdapter",
    "HubSpotLimits",
    "Page",
    "RateWindow",
    "RecordUpdate",
    "RetryPolicy",
    "SalesforceAdapter",
    "WriteResult",
    "WriteStatus",
    "build_adapters",
    "build_hubspot",
    "build_salesforce",
    "check_systems",
    "run_check",
]
