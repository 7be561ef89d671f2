"""A deployable Salesforce metadata folder for the fields a mapping needs.

crmsync does not change an org's schema itself: an org's admin deploys with their own tools
and rights, reviewed like any other change. `write_salesforce_metadata` writes what they
deploy, in Salesforce DX source format (`sf project deploy start`):

    sfdx-project.json
    force-app/main/default/objects/<Object>/fields/<Field>.field-meta.xml   (custom fields)
    force-app/main/default/permissionsets/Crmsync_Integration.permissionset-meta.xml

The permission set is what the run-as user of crmsync's connected app needs: API Enabled,
Read on every object crmsync reads (and View All Records, so no sharing rule hides a record
from the sync), Edit on the objects it writes, read access to every field it reads and edit
access to every field it writes (fields that take no field permission are left out: the
object's access covers them, see catalog.SALESFORCE_NO_FIELD_PERMISSION).

The XML follows the Metadata API Developer Guide (namespace
http://soap.sforce.com/2006/04/metadata):
- CustomField: https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/
  customfield.htm (label and type always; length for Text, precision and scale for Number,
  defaultValue for Checkbox, valueSet > valueSetDefinition > value for a Picklist);
- PermissionSet: https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/
  meta_permissionset.htm (fieldPermissions: editable, field, readable; objectPermissions;
  userPermissions: enabled, name);
- source format and sfdx-project.json: https://developer.salesforce.com/docs/atlas.en-us.
  sfdx_dev.meta/sfdx_dev/sfdx_dev_ws_config.htm.
Elements are written in the order of the Metadata API's type definitions (`fullName` first,
then the rest alphabetically), as `sf project retrieve` writes them. Built with ElementTree,
so every value is escaped and every file is well-formed.

The whole folder is written beside its place and moved there at the end: a failure never
leaves half a folder, and re-running replaces a folder this command wrote before (it never
overwrites any other non-empty folder).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from connector.catalog import CATALOG, SALESFORCE_COMPOUND_FIELDS, SALESFORCE_NO_FIELD_PERMISSION
from connector.exceptions import ConfigurationError
from connector.fields import FieldNeed

__all__ = [
    "PERMISSION_SET",
    "field_xml",
    "permission_set_xml",
    "write_salesforce_metadata",
]

NAMESPACE = "http://soap.sforce.com/2006/04/metadata"
PERMISSION_SET = "Crmsync_Integration"
SOURCE_ROOT = Path("force-app/main/default")
# Written into sfdx-project.json: how a later run knows the folder is ours to replace.
MARKER = "crmsync-fields"
TEXT_LENGTH = 255
NUMBER_PRECISION, NUMBER_SCALE = 18, 2
DESCRIPTION_MAX = 1000  # CustomField.description: "This field can contain a maximum of 1,000"


def write_salesforce_metadata(
    needs: Iterable[FieldNeed], folder: Path, *, api_version: str
) -> list[Path]:
    """Write the folder (see the module docstring); the paths written, relative to it.

    ConfigurationError (exit 2) when `folder` is a file, or a non-empty folder this command
    did not write."""
    needs = [need for need in needs if need.system == "salesforce"]
    folder = Path(folder)
    _refuse_foreign(folder)
    files = _files(needs, api_version)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for relative, text in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        _swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(files)


def _files(needs: list[FieldNeed], api_version: str) -> dict[Path, str]:
    files: dict[Path, str] = {Path("sfdx-project.json"): _project_json(api_version)}
    for need in needs:
        if need.custom:
            path = SOURCE_ROOT / "objects" / need.object / "fields" / f"{need.name}.field-meta.xml"
            files[path] = field_xml(need)
    permission_set = SOURCE_ROOT / "permissionsets" / f"{PERMISSION_SET}.permissionset-meta.xml"
    files[permission_set] = permission_set_xml(needs)
    return files


def _refuse_foreign(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigurationError(f"{folder} is a file; name a folder for the metadata")
    if folder.is_dir() and any(folder.iterdir()) and not _ours(folder):
        raise ConfigurationError(
            f"{folder} is not empty and was not written by `crmsync fields "
            "--salesforce-metadata`; name a new folder (nothing was written)")


def _ours(folder: Path) -> bool:
    try:
        project = json.loads((folder / "sfdx-project.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(project, dict) and project.get("name") == MARKER


def _swap_in(staging: Path, folder: Path) -> None:
    """Put the finished folder in place; an earlier one of ours is removed only after."""
    if not folder.exists():
        staging.rename(folder)
        return
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _project_json(api_version: str) -> str:
    project = {
        "name": MARKER,
        "packageDirectories": [{"path": "force-app", "default": True}],
        "sourceApiVersion": api_version,
    }
    return json.dumps(project, indent=2) + "\n"


# ---- the XML ----------------------------------------------------------------------------------


def field_xml(need: FieldNeed) -> str:
    """The `.field-meta.xml` of one custom field (its fullName is the field's API name; the
    object is the folder it sits in)."""
    root = ET.Element("CustomField", xmlns=NAMESPACE)
    kind_type = CATALOG["salesforce"].admin.field_types[need.kind]
    children: dict[str, str | ET.Element] = {
        "description": _description(need),
        "externalId": "false",
        "label": need.label,
        "type": kind_type,
    }
    if kind_type == "Checkbox":
        children["defaultValue"] = "false"
    if kind_type == "Text":
        children["length"] = str(TEXT_LENGTH)
    if kind_type == "Number":
        children["precision"] = str(NUMBER_PRECISION)
        children["scale"] = str(NUMBER_SCALE)
    if kind_type != "Checkbox":
        children["required"] = "false"
    if kind_type == "Picklist":
        children["valueSet"] = _value_set(need)
    _add(root, "fullName", need.name)
    for tag in sorted(children):
        _add(root, tag, children[tag])
    return _document(root)


def _value_set(need: FieldNeed) -> ET.Element:
    """A restricted picklist of exactly the values crmsync reads and writes, in that order
    (restricted: the org then refuses a value no rule knows, rather than storing it)."""
    value_set = ET.Element("valueSet")
    _add(value_set, "restricted", "true")
    definition = ET.SubElement(value_set, "valueSetDefinition")
    _add(definition, "sorted", "false")
    for option in need.options:
        value = ET.SubElement(definition, "value")
        _add(value, "fullName", option.value)
        _add(value, "default", "false")
        _add(value, "label", option.label)
    return value_set


def permission_set_xml(needs: Iterable[FieldNeed]) -> str:
    """The permission set for crmsync's run-as user (see the module docstring)."""
    needs = [need for need in needs if need.system == "salesforce"]
    root = ET.Element("PermissionSet", xmlns=NAMESPACE)
    _add(root, "description",
         "Access for the user crmsync's connected app runs as: API Enabled, read on every "
         "field crmsync reads, edit on every field it writes. Written by `crmsync fields "
         "--salesforce-metadata`.")
    for field_name, editable in _field_permissions(needs):
        permission = ET.SubElement(root, "fieldPermissions")
        _add(permission, "editable", _bool(editable))
        _add(permission, "field", field_name)
        _add(permission, "readable", "true")
    _add(root, "hasActivationRequired", "false")
    _add(root, "label", "crmsync integration")
    written = {need.object for need in needs if need.written}
    for obj in dict.fromkeys(need.object for need in needs):
        permission = ET.SubElement(root, "objectPermissions")
        _add(permission, "allowCreate", "false")
        _add(permission, "allowDelete", "false")
        _add(permission, "allowEdit", _bool(obj in written))
        _add(permission, "allowRead", "true")
        _add(permission, "modifyAllRecords", "false")
        _add(permission, "object", obj)
        _add(permission, "viewAllRecords", "true")
    user = ET.SubElement(root, "userPermissions")
    _add(user, "enabled", "true")
    _add(user, "name", "ApiEnabled")
    return _document(root)


def _field_permissions(needs: list[FieldNeed]) -> list[tuple[str, bool]]:
    """("Object.Field", editable) for every field that takes a field permission; a part of a
    compound address is granted through its address."""
    granted: dict[str, bool] = {}
    for need in needs:
        if need.name in SALESFORCE_NO_FIELD_PERMISSION.get(need.object, frozenset()):
            continue
        name = SALESFORCE_COMPOUND_FIELDS.get((need.object, need.name), need.name)
        key = f"{need.object}.{name}"
        granted[key] = granted.get(key, False) or need.written
    return sorted(granted.items())


def _description(need: FieldNeed) -> str:
    rules = [rule for rule in need.rules if not rule.startswith("catalog:")]
    what = "written and read" if need.written else "read"
    text = f"{what.capitalize()} by crmsync: " + "; ".join(rules)
    return text[:DESCRIPTION_MAX]


def _add(parent: ET.Element, tag: str, value: str | ET.Element) -> None:
    if isinstance(value, ET.Element):
        parent.append(value)
        return
    ET.SubElement(parent, tag).text = value


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _document(root: ET.Element) -> str:
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
