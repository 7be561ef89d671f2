"""`crmsync fields`: the fields a mapping needs; create HubSpot's, write Salesforce's metadata."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from connector.cli._common import (
    ENV_FILE_OPTION,
    JSON_OPTION,
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    MAPPING_OPTION,
    VERBOSE_OPTION,
    LogFormat,
    LogLevel,
    app,
    fail,
    settings_from,
    setup_logging,
)

SYSTEMS_THAT_CREATE = ("hubspot",)


@app.command("fields")
def fields_command(
    mapping: Path | None = MAPPING_OPTION,
    as_json: bool = JSON_OPTION,
    create: str | None = typer.Option(
        None, "--create", metavar="SYSTEM",
        help="Create the custom fields the portal lacks: `hubspot` (through HubSpot's "
             "properties API; needs the crm.schemas.<object>.write scopes). Shows what it will "
             "do and asks first; skips properties that exist; reports, never changes, one "
             "with the wrong type or options. Salesforce: see --salesforce-metadata.",
    ),
    yes: bool = typer.Option(False, "--yes", "-y",
                             help="Create without asking (needed when not on a terminal)."),
    salesforce_metadata: Path | None = typer.Option(
        None, "--salesforce-metadata", metavar="DIR",
        help="Write a Salesforce DX project to DIR for `sf project deploy start`: the custom "
             "fields, and the permission set Crmsync_Integration (API Enabled, read/edit "
             "access to every field crmsync reads/writes) for crmsync's run-as user.",
    ),
    env_file: Path | None = ENV_FILE_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """List every field the mapping makes crmsync read or write, per system and object: custom
    (create it) or standard (every portal or org has it), its type, and the exact picklist
    options it needs; and the HubSpot private-app scopes the mapping needs.

    Exit 0 when done, 1 when a property could not be created or exists with the wrong type or
    options, 2 for a bad setting, mapping or option.
    """
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.fields import fields_needed, hubspot_scopes  # noqa: PLC0415
    from connector.mapping import load_mapping  # noqa: PLC0415

    setup_logging(log_format, log_level, verbose)
    if create is not None and create not in SYSTEMS_THAT_CREATE:
        hint = (" Salesforce fields are deployed as metadata: --salesforce-metadata DIR."
                if create == "salesforce" else "")
        raise fail(f"--create takes {', '.join(SYSTEMS_THAT_CREATE)}, not {create!r}.{hint}", 2)
    try:
        settings = settings_from(env_file)
        loaded = load_mapping(mapping or settings.mapping_path)
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None
    needs = fields_needed(loaded)
    scopes, creation_scopes = hubspot_scopes(loaded)
    report: dict = {"mapping": list(loaded.files[:1]), "fields": [n.to_dict() for n in needs],
                    "hubspot_scopes": scopes, "hubspot_field_creation_scopes": creation_scopes}
    code = 0
    if salesforce_metadata is not None:
        report["salesforce_metadata"] = _write_metadata(
            needs, salesforce_metadata, settings.salesforce_api_version, as_json)
    if create is not None:
        results, code = _create_hubspot(settings, needs, yes=yes, as_json=as_json)
        report["created"] = results
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    elif create is None and salesforce_metadata is None:
        _print_fields(loaded.files[0], needs, scopes, creation_scopes)
    raise typer.Exit(code)


# ---- listing ----------------------------------------------------------------------------------


def _print_fields(mapping_file: str, needs, scopes: list[str], creation: list[str]) -> None:
    echo = typer.echo
    echo(f"Fields {mapping_file} makes crmsync read or write. custom: create it before the "
         "first run; standard: every portal or org has it.")
    width = max(len(f"{n.system} {n.object}.{n.name}") for n in needs)
    current = None
    for need in needs:
        if need.system != current:
            current = need.system
            echo(f"\n{'HubSpot' if current == 'hubspot' else 'Salesforce'}")
        name = f"{need.system} {need.object}.{need.name}".ljust(width)
        what = need.type_text if need.custom else need.kind
        line = (f"  {name}  {'custom' if need.custom else 'standard':8}  "
                f"{need.access:11}  {what:22}  {_options_text(need)}")
        echo(line.rstrip())
    custom = {s: sum(1 for n in needs if n.system == s and n.custom) for s in ("hubspot",
                                                                             "salesforce")}
    echo(f"\nHubSpot private-app scopes this mapping needs: {' '.join(scopes)}")
    if creation:
        echo(f"Only for `crmsync fields --create hubspot`: {' '.join(creation)}")
    echo("\nNext:")
    if custom["hubspot"]:
        echo(f"  crmsync fields --create hubspot          creates those of the "
             f"{custom['hubspot']} custom HubSpot properties the portal lacks (asks first)")
    if custom["salesforce"]:
        echo(f"  crmsync fields --salesforce-metadata DIR writes the {custom['salesforce']} "
             "custom Salesforce fields and the Crmsync_Integration permission set for "
             "`sf project deploy start`")
    echo("  crmsync check                            confirms every field is there and fits")


def _options_text(need) -> str:
    if not need.options:
        return ""
    def shown(option) -> str:
        text = json.dumps(option.value, ensure_ascii=False)
        return text if option.label == option.value else f"{text} ({option.label})"
    written = [shown(o) for o in need.options if o.written]
    read = [shown(o) for o in need.options if not o.written]
    if need.kind == "checkbox" or not written:
        return "options: " + ", ".join(shown(o) for o in need.options)
    text = "writes: " + ", ".join(written)
    return text + ("; also reads: " + ", ".join(read) if read else "")


# ---- Salesforce metadata ------------------------------------------------------------------------


def _write_metadata(needs, folder: Path, api_version: str, as_json: bool) -> dict:
    from connector.exceptions import ConfigurationError  # noqa: PLC0415
    from connector.salesforce_metadata import PERMISSION_SET, write_salesforce_metadata  # noqa: PLC0415

    try:
        written = write_salesforce_metadata(needs, folder, api_version=api_version)
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None
    except OSError as error:
        raise fail(f"could not write {folder}: {error} (nothing was written there)", 2) from None
    if not as_json:
        typer.echo(f"Wrote {len(written)} file(s) to {folder}:")
        for path in written:
            typer.echo(f"  {path}")
        typer.echo(
            "\nDeploy them, then give the permission set to the user crmsync's connected app "
            f"runs as:\n  cd {folder}\n  sf project deploy start --source-dir force-app "
            "--target-org YOUR_ORG\n"
            f"  sf org assign permset --name {PERMISSION_SET} --on-behalf-of "
            "INTEGRATION_USERNAME --target-org YOUR_ORG")
    return {"folder": str(folder), "files": [str(p) for p in written],
            "permission_set": PERMISSION_SET}


# ---- creating HubSpot properties ------------------------------------------------------------


def _create_hubspot(settings, needs, *, yes: bool, as_json: bool) -> tuple[list[dict], int]:
    """Show the plan, confirm, create; (a result per property, the exit code)."""
    from connector.exceptions import ConfigurationError, FatalApiError  # noqa: PLC0415
    from connector.fields import hubspot_plan, hubspot_property_body  # noqa: PLC0415
    from connector.systems.factory import build_hubspot  # noqa: PLC0415

    say = (lambda text: None) if as_json else typer.echo
    try:
        adapter = build_hubspot(settings)
        objects = sorted({n.object for n in needs if n.system == "hubspot"})
        described = {obj: adapter.describe_fields(obj) for obj in objects}
    except ConfigurationError as error:
        raise fail(f"configuration error: {error}", 2) from None
    plan = hubspot_plan(needs, described)
    to_create = [step for step in plan if step.step == "create"]
    results = [_result(step) for step in plan if step.step != "create"]
    _show_plan(say, plan, adapter.base_url)
    if to_create and not _confirmed(len(to_create), adapter.base_url, yes=yes,
                                    as_json=as_json):
        say("Nothing was created.")
        return results, 0
    for step in to_create:
        need = step.need
        try:
            outcome = adapter.create_property(need.object, hubspot_property_body(need))
        except ConfigurationError as error:  # a missing scope, a refused token: stop here
            results.append(_result(step, "failed", str(error)))
            _show_results(say, results)
            raise fail(f"configuration error: {error}", 2) from None
        except FatalApiError as error:  # HubSpot refused this one property: say so, go on
            results.append(_result(step, "failed", str(error)))
            say(f"  failed   {need.object}.{need.name}: {error}")
            continue
        result = "created" if outcome.created else "exists"
        results.append(_result(step, result, "" if outcome.created else
                               "made by someone else meanwhile: left as it is"))
        say(f"  {result:8} {need.object}.{need.name}")
    _show_results(say, results)
    bad = [r for r in results if r["result"] in ("failed", "wrong", "missing-standard")]
    return results, 1 if bad else 0


def _show_plan(say, plan, base_url: str) -> None:
    counts = {kind: sum(1 for s in plan if s.step == kind)
              for kind in ("create", "ok", "wrong", "missing-standard")}
    say(f"HubSpot portal at {base_url}: {_properties(counts['create'])} to create, "
        f"{counts['ok']} already there, {counts['wrong']} there with the wrong type or "
        f"options (not changed), {counts['missing-standard']} standard missing")
    for step in plan:
        need = step.need
        where = f"{need.object}.{need.name}"
        if step.step == "create":
            options = _options_text(need)
            say(f"  create   {where}  {need.type_text}, group "
                f"{_group(need)}{', ' + options if options else ''}")
        elif step.step == "wrong":
            say(f"  WRONG    {where} {step.detail}: not changed; fix it in HubSpot (Settings > "
                f"Data Management > Properties > {need.object} > {need.name}), or map "
                "another property")
        elif step.step == "missing-standard":
            say(f"  MISSING  {where} is a standard property this portal lacks; crmsync does "
                "not create it (the salesforce*id ones come with HubSpot's Salesforce "
                "integration)")


def _group(need) -> str:
    from connector.catalog import HUBSPOT_DEFAULT_GROUPS  # noqa: PLC0415

    return HUBSPOT_DEFAULT_GROUPS[need.object]


def _confirmed(count: int, base_url: str, *, yes: bool, as_json: bool) -> bool:
    """--yes, or a person said yes on the terminal; refused (exit 2) where nobody can answer."""
    if yes:
        return True
    if as_json or not sys.stdin.isatty():
        why = "--json prints no questions" if as_json else "not on a terminal"
        raise fail(f"refusing to create {_properties(count)} in HubSpot without confirmation "
                   f"({why}): pass --yes. Nothing was created.", 2)
    return typer.confirm(f"Create {_properties(count)} in the HubSpot portal at {base_url}?",
                         default=False)


def _properties(count: int) -> str:
    return f"{count} property" if count == 1 else f"{count} properties"


def _result(step, result: str | None = None, detail: str | None = None) -> dict:
    need = step.need
    return {"object": need.object, "field": need.name, "result": result or step.step,
            "detail": step.detail if detail is None else detail}


def _show_results(say, results: list[dict]) -> None:
    counts: dict[str, int] = {}
    for result in results:
        counts[result["result"]] = counts.get(result["result"], 0) + 1
    order = ("created", "exists", "ok", "wrong", "missing-standard", "failed")
    words = {"ok": "already there", "exists": "made meanwhile", "wrong": "wrong type/options "
             "(not changed)", "missing-standard": "standard missing", "created": "created",
             "failed": "failed"}
    say("Done: " + ", ".join(f"{counts[k]} {words[k]}" for k in order if counts.get(k))
        + ". Run `crmsync check` to confirm.")
