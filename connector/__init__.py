"""crmsync: keeps HubSpot and Salesforce telling the same story about people and organisations."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
