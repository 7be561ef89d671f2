"""Build the adapters from Settings: the one place that turns settings into SDK clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from connector.settings import Settings
from connector.systems.base import CrmAdapter
from connector.systems.hubspot import HubSpotAdapter, HubSpotLimits
from connector.systems.resilience import RetryPolicy
from connector.systems.salesforce import SalesforceAdapter
from connector.systems.salesforce_bulk import BulkOptions

__all__ = ["Adapters", "build_adapters", "build_hubspot", "build_salesforce", "retry_policy"]


@dataclass(frozen=True)
class Adapters:
    """Both systems' adapters; also reachable by system name (`adapters["hubspot"]`)."""

    hubspot: HubSpotAdapter
    salesforce: SalesforceAdapter

    def __getitem__(self, system: str) -> CrmAdapter:
        if system == "hubspot":
            return self.hubspot
        if system == "salesforce":
            return self.salesforce
        raise KeyError(system)

    def __iter__(self) -> Iterator[CrmAdapter]:
        return iter((self.hubspot, self.salesforce))


def retry_policy(settings: Settings) -> RetryPolicy:
    """A fresh policy per adapter (it counts that adapter's retries)."""
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        initial_wait=settings.retry_initial_wait_seconds,
        max_wait=settings.retry_max_wait_seconds,
        jitter=min(1.0, max(settings.retry_initial_wait_seconds, 0.01)),
    )


def build_hubspot(settings: Settings) -> HubSpotAdapter:
    """The HubSpot adapter, or SettingsError naming the missing token and where we looked."""
    credentials = settings.hubspot_credentials()
    return HubSpotAdapter(
        credentials.access_token,
        credentials.base_url,
        ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
        timeout_seconds=settings.http_timeout_seconds,
        retry=retry_policy(settings),
        limits=HubSpotLimits(
            requests_per_window=settings.hubspot_requests_per_10s,
            window_share=settings.hubspot_window_share,
            window_seconds=settings.hubspot_window_seconds,
            search_per_second=settings.hubspot_search_per_second,
            max_daily_share=settings.hubspot_max_daily_share,
        ),
    )


def build_salesforce(settings: Settings) -> SalesforceAdapter:
    """The Salesforce adapter with the first complete login method (see Settings)."""
    return SalesforceAdapter(
        settings.salesforce_credentials(),
        api_version=settings.salesforce_api_version,
        ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
        timeout_seconds=settings.http_timeout_seconds,
        retry=retry_policy(settings),
        max_daily_share=settings.salesforce_max_daily_share,
        write_batch_size=settings.salesforce_write_batch_size,
        allow_save_on_duplicates=settings.salesforce_allow_save_on_duplicates,
        bulk=BulkOptions(
            min_records=settings.salesforce_bulk_min_records,
            job_records=settings.salesforce_bulk_job_records,
            max_wait_seconds=settings.salesforce_bulk_max_wait_seconds,
            poll_seconds=settings.salesforce_bulk_poll_seconds,
            query_min_records=settings.salesforce_bulk_query_min_records,
        ),
    )


def build_adapters(settings: Settings) -> Adapters:
    """Both adapters. Nothing is sent until the first read or write."""
    return Adapters(hubspot=build_hubspot(settings), salesforce=build_salesforce(settings))
