"""What `crmsync fields` should derive from mappings/default.yaml, written out by hand (its
write_back reverse maps, triggers and picklists), and mapping variants for its tests. Shared
by tests/test_fields.py and tests/test_salesforce_metadata.py."""

from __future__ import annotations

from pathlib import Path

from connector.mapping import DEFAULT_MAPPING, Mapping, load_mapping

PRIORITIES = ["trigger_fit", "fit", "nonfit_lead", "other"]
TRIGGER_TYPES = ["cost_savings", "expansion", "funding", "new_executive"]

# (object, field) -> (type to create, options) for every custom field default.yaml names
HUBSPOT_CUSTOM = {
    ("contacts", "crmsync_icp_fit"): ("bool/booleancheckbox", ["true", "false"]),
    ("contacts", "crmsync_priority"): ("enumeration/select", PRIORITIES),
    ("companies", "crmsync_icp_fit"): ("bool/booleancheckbox", ["true", "false"]),
    ("companies", "crmsync_trigger_active"): ("bool/booleancheckbox", ["true", "false"]),
    ("companies", "crmsync_trigger_type"): ("enumeration/select", TRIGGER_TYPES),
    ("companies", "crmsync_trigger_date"): ("date/date", []),
    ("companies", "crmsync_priority"): ("enumeration/select", PRIORITIES),
    ("companies", "recent_funding_date"): ("date/date", []),
    ("companies", "new_executive_date"): ("date/date", []),
    ("companies", "expansion_announced_date"): ("date/date", []),
    ("companies", "cost_savings_announced_date"): ("date/date", []),
}
SALESFORCE_CUSTOM = {
    ("Lead", "ICP_Fit__c"): ("Checkbox", []),
    ("Lead", "Priority__c"): ("Picklist", PRIORITIES),
    ("Contact", "ICP_Fit__c"): ("Checkbox", []),
    ("Contact", "Priority__c"): ("Picklist", PRIORITIES),
    ("Contact", "Lifecycle_Stage__c"): ("Picklist", [
        "Subscriber", "Lead", "MQL", "SQL", "Opportunity", "Customer", "Evangelist", "Other",
        "Disqualified"]),
    ("Account", "ICP_Fit__c"): ("Checkbox", []),
    ("Account", "Buying_Signal__c"): ("Checkbox", []),
    ("Account", "Buying_Signal_Type__c"): ("Picklist", TRIGGER_TYPES),
    ("Account", "Buying_Signal_Date__c"): ("Date", []),
    ("Account", "Priority__c"): ("Picklist", PRIORITIES),
    ("Account", "Funding_Announced_Date__c"): ("Date", []),
    ("Account", "New_Executive_Date__c"): ("Date", []),
    ("Account", "Expansion_Date__c"): ("Date", []),
    ("Account", "Cost_Savings_Announced_Date__c"): ("Date", []),
}


def mapping_variant(tmp_path: Path, *edits: tuple[str, str]) -> Mapping:
    """default.yaml with each (old, new) edit made once, loaded from a folder of its own."""
    text = DEFAULT_MAPPING.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "labels").symlink_to(DEFAULT_MAPPING.parent / "labels")
    (folder / "schema").symlink_to(DEFAULT_MAPPING.parent / "schema")
    path = folder / "mine.yaml"
    path.write_text(text, encoding="utf-8")
    return load_mapping(path)
