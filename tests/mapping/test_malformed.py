"""Every malformed mapping names the exact file, line, column, YAML path and a usable fix.

Each file in `malformed/` breaks one rule. The expected text was written down after reading
each message and checking its location by hand in the file: it is the contract with admins,
so a change to wording or location must be deliberate.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.exceptions import MappingError
from connector.mapping import load_mapping

MALFORMED = Path(__file__).parent / "malformed"

EXPECTED: dict[str, list[str]] = {
    "too_many_aliases": [
        'too_many_aliases.yaml:30:6: more than 500 alias references (*name); a mapping file may use at most 500',
    ],
    "too_deep": [
        'too_deep.yaml:3:70: nested more than 64 levels deep; a mapping file may nest at most 64',
    ],
    "recursive_alias": [
        'recursive_alias.yaml:5:7: alias *loop refers to the anchor &loop that contains it, so it never ends',
    ],
    "long_integer": [
        'long_integer.yaml:3:14: a number of 5,000 digits; numbers may have at most 100 digits (quote it if it is text) (at description)',
    ],
    "billion_laughs": [
        "billion_laughs.yaml:8:8: aliases expand this file to more than 100,000 values (a 'billion laughs' file?); a mapping file may hold at most 100,000",
    ],
    "deal_effect_unknown_status": [
        "deal_effect_unknown_status.yaml:2:3: unknown key 'wonn'; allowed: 'open', 'won' or 'lost'. Did you mean 'won'? (at deal_effects.wonn)",
    ],
    "duplicate_picklist_value": [
        "duplicate_picklist_value.yaml:9:11: duplicate key 'Open - Not Contacted' (first defined at line 7); YAML would silently keep only the last one (at picklists.salesforce.Lead.Status.values['Open - Not Contacted'])",
    ],
    "duplicate_top_key": [
        "duplicate_top_key.yaml:9:1: duplicate key 'version' (first defined at line 1); YAML would silently keep only the last one (at version)",
    ],
    "effect_not_for_person": [
        "effect_not_for_person.yaml:6:34: 'fit' cannot be set from a person field; allowed here: 'stage'. (at picklists.salesforce.Lead.Status.values['Open - Not Contacted'].fit)",
    ],
    "empty_file": [
        'empty_file.yaml:1:1: a mapping file must be a YAML mapping (key: value) at the top level',
    ],
    "fit_as_text": [
        "fit_as_text.yaml:6:27: fit must be true or false, got str 'yes' (at picklists.salesforce.Account.Type.values.Prospect.fit)",
    ],
    "icp_bad_operator": [
        "icp_bad_operator.yaml:6:7: unknown key 'greater_than'; allowed keys: 'name', 'fact', 'in', 'not_in', 'between', 'at_least', 'at_most', 'all', 'any'. Did you mean 'at_least'? (at icp.all[0].greater_than)",
    ],
    "icp_between_reversed": [
        'icp_between_reversed.yaml:6:16: `between` takes [min, max] with min <= max, got [5000, 50] (at icp.all[0].between)',
    ],
    "icp_between_three_items": [
        'icp_between_three_items.yaml:6:16: `between` takes [min, max] with min <= max, got [1, 2, 3] (at icp.all[0].between)',
    ],
    "icp_numeric_op_on_text": [
        "icp_numeric_op_on_text.yaml:6:17: `at_least` compares numbers, but fact 'industry' is text; use `in` or `not_in` (at icp.any[0].at_least)",
    ],
    "icp_two_operators": [
        "icp_two_operators.yaml:5:7: a rule needs exactly one operator of 'in', 'not_in', 'between', 'at_least', 'at_most', found 2 (at icp.all[0])",
    ],
    "icp_unknown_fact": [
        "icp_unknown_fact.yaml:5:13: unknown fact 'employes'; defined in organization_facts: 'employees'. Did you mean 'employees'? (at icp.all[0].fact)",
    ],
    "label_pack_bad_stage": [
        "labels/broken.yaml:2:10: unknown canonical stage 'leed'; allowed stages: 'subscriber', 'lead', 'mql', 'sql', 'opportunity', 'customer', 'evangelist', 'other', 'disqualified'. Did you mean 'lead'? (at person_stage.Liidi)",
    ],
    "label_pack_unknown_role": [
        "labels/broken_role.yaml:3:1: unknown key 'unknown_role'; allowed keys: 'description', 'person_stage', 'organization_type', 'deal_status', 'trigger_type'. (at unknown_role)",
    ],
    "label_role_mismatch": [
        "label_role_mismatch.yaml:5:17: label role 'organization_type' does not fit a person object; use 'person_stage' (at picklists.salesforce.Lead.Status.labels)",
    ],
    "merge_key": [
        "merge_key.yaml:4:5: YAML merge keys (<<) are not supported (at precedence['person.stage'])",
    ],
    "missing_reverse_entry": [
        "missing_reverse_entry.yaml:13:17: reverse map has no entry for 'mql', which picklists.salesforce.Lead.Status.values['Working - Contacted'] (missing_reverse_entry.yaml:7) can produce; add `mql: <salesforce value>`, or `mql: ~` to leave the field alone for it (at write_back.salesforce.Lead.Status.values)",
    ],
    "norway_problem": [
        'norway_problem.yaml:1:19: expected a text value, got the boolean false; YAML reads bare yes/no/on/off and numbers as such: put it in quotes (at label_packs[1])',
    ],
    "organization_stage_shorthand": [
        "organization_stage_shorthand.yaml:6:21: an organization value needs a mapping such as {relationship: customer}, not the stage shorthand 'sql' (at picklists.salesforce.Account.Type.values.Prospect)",
    ],
    "precedence_most_advanced_relationship": [
        "precedence_most_advanced_relationship.yaml:2:39: `most_advanced` only applies to person.stage; choose 'hubspot' or 'salesforce' for organization.relationship (at precedence['organization.relationship'].winner)",
    ],
    "precedence_unknown_field": [
        "precedence_unknown_field.yaml:2:3: unknown key 'person.stages'; allowed keys: 'person.stage', 'organization.relationship', 'organization.facts'. Did you mean 'person.stage'? (at precedence['person.stages'])",
    ],
    "precedence_unknown_winner": [
        "precedence_unknown_winner.yaml:2:26: unknown value 'salesfroce'; allowed: 'most_advanced', 'hubspot' or 'salesforce'. Did you mean 'salesforce'? (at precedence['person.stage'].winner)",
    ],
    "round_trip_mismatch": [
        "round_trip_mismatch.yaml:13:46: mql is written as 'Open - Not Contacted', which reads back as 'lead' (picklists.salesforce.Lead.Status.values['Open - Not Contacted'] (round_trip_mismatch.yaml:6)); the two systems would never agree. Write a value that reads back as mql, or `mql: ~` to leave the field alone (at write_back.salesforce.Lead.Status.values.mql)",
    ],
    "rule_reads_modification_time": [
        "rule_reads_modification_time.yaml:2:25: 'SystemModstamp' is the record's modification time, which every write changes (crmsync's own too); a rule cannot read it. Use a field that holds the event itself (at organization_facts.touched.salesforce)",
        "rule_reads_modification_time.yaml:6:7: 'LastModifiedDate' is the record's modification time, which every write changes (crmsync's own too); a rule cannot read it. Use a field that holds the event itself (at picklists.salesforce.Lead.LastModifiedDate)",
        "rule_reads_modification_time.yaml:13:53: 'hs_lastmodifieddate' is the record's modification time, which every write changes (crmsync's own too); a rule cannot read it. Use a field that holds the event itself (at triggers.funding.sources[0].field)",
    ],
    "stage_target_without_values": [
        "stage_target_without_values.yaml:12:9: writing person.stage needs `values`: the reverse map from canonical stage to this field's values (at write_back.salesforce.Lead.Status)",
    ],
    "syntax_bad_indent": [
        'syntax_bad_indent.yaml:5:4: invalid YAML: while parsing a block mapping, did not find expected key',
    ],
    "syntax_tab_indent": [
        'syntax_tab_indent.yaml:3:1: invalid YAML: while scanning for the next token, found character that cannot start any token',
    ],
    "syntax_unclosed_bracket": [
        "syntax_unclosed_bracket.yaml:3:10: invalid YAML: while parsing a flow sequence, did not find expected ',' or ']'",
    ],
    "top_level_list": [
        'top_level_list.yaml:1:1: a mapping file must be a YAML mapping (key: value) at the top level',
    ],
    "trigger_on_person_object": [
        "trigger_on_person_object.yaml:6:38: triggers are organisation events: object must be 'Account' for salesforce, got 'Lead'. (at triggers.funding.sources[0].object)",
    ],
    "trigger_picklist_without_date": [
        'trigger_picklist_without_date.yaml:6:9: a picklist trigger (`values`/`labels`) needs `date_field`, the field that holds the event date (at triggers.sales_trigger.sources[0])',
    ],
    "trigger_unknown_polarity": [
        "trigger_unknown_polarity.yaml:3:15: unknown value 'negative'; allowed: 'positive' or 'suppressing'. (at triggers.savings.polarity)",
    ],
    "trigger_zero_days": [
        'trigger_zero_days.yaml:4:18: must be greater than 0, got the number 0 (at triggers.funding.active_days)',
    ],
    "unknown_label_pack": [
        "unknown_label_pack.yaml:1:19: unknown label pack 'fr'; available: 'broken', 'broken_role', 'fi', 'nl', 'no'. (at label_packs[1])",
    ],
    "unknown_object": [
        "unknown_object.yaml:3:5: unknown salesforce object 'Leads'; allowed: 'Lead', 'Contact', 'Account', 'Opportunity'. Did you mean 'Lead'? (at picklists.salesforce.Leads)",
    ],
    "unknown_relationship": [
        "unknown_relationship.yaml:6:35: unknown relationship 'partnr'; allowed: 'none', 'customer', 'partner', 'other'. Did you mean 'partner'? (at picklists.hubspot.companies.type.values.PARTNER.relationship)",
    ],
    "unknown_stage_in_picklist": [
        "unknown_stage_in_picklist.yaml:7:32: unknown canonical stage 'sqll'; allowed stages: 'subscriber', 'lead', 'mql', 'sql', 'opportunity', 'customer', 'evangelist', 'other', 'disqualified'. Did you mean 'sql'? (at picklists.salesforce.Lead.Status.values['Working - Contacted'])",
    ],
    "unknown_stage_reverse_key": [
        "unknown_stage_reverse_key.yaml:13:17: reverse map has no entry for 'mql', which picklists.salesforce.Lead.Status.values['Working - Contacted'] (unknown_stage_reverse_key.yaml:7) can produce; add `mql: <salesforce value>`, or `mql: ~` to leave the field alone for it (at write_back.salesforce.Lead.Status.values)",
        "unknown_stage_reverse_key.yaml:13:46: unknown canonical value 'mqll' for person.stage; allowed: 'subscriber', 'lead', 'mql', 'sql', 'opportunity', 'customer', 'evangelist', 'other', 'disqualified'. Did you mean 'mql'? (at write_back.salesforce.Lead.Status.values.mqll)",
    ],
    "unknown_system": [
        "unknown_system.yaml:2:3: unknown system 'hubspott'; allowed: 'hubspot', 'salesforce'. Did you mean 'hubspot'? (at picklists.hubspott)",
    ],
    "unknown_top_key": [
        "unknown_top_key.yaml:2:1: unknown key 'picklist'; allowed keys: 'version', 'description', 'label_packs', 'picklists', 'organization_facts', 'icp', 'triggers', 'precedence', 'deal_effects', 'write_back'. Did you mean 'picklists'? (at picklist)",
    ],
    "unknown_write_source": [
        "unknown_write_source.yaml:4:32: unknown value 'person.priorty'; allowed: 'person.stage', 'person.fit', 'person.priority', 'organization.fit', 'organization.priority', 'organization.relationship', 'organization.trigger_active', 'organization.trigger_type' or 'organization.trigger_date'. Did you mean 'person.priority'? (at write_back.hubspot.contacts.crmsync_priority.from)",
    ],
    "unknown_write_target_key": [
        "unknown_write_target_key.yaml:13:9: missing required key 'from' (at write_back.salesforce.Lead.Status)",
        "unknown_write_target_key.yaml:13:9: unknown key 'form'; allowed keys: 'from', 'values', 'confirm'. Did you mean 'from'? (at write_back.salesforce.Lead.Status.form)",
    ],
    "values_is_list": [
        'values_is_list.yaml:6:17: expected a mapping (key: value), got a list (at picklists.salesforce.Lead.Status.values)',
    ],
    "version_wrong_type": [
        "version_wrong_type.yaml:1:10: unknown value '1'; allowed: 1. Write 1 without quotes: it is a number here. (at version)",
    ],
    "write_person_value_to_account": [
        "write_person_value_to_account.yaml:4:28: 'person.stage' is a person value and cannot be written to salesforce Account, which holds organizations (at write_back.salesforce.Account.Lifecycle__c.from)",
    ],
    "written_value_not_readable": [
        "written_value_not_readable.yaml:13:46: mql is written as 'Working', which picklists.salesforce.Lead.Status (written_value_not_readable.yaml:4) does not list, so it would be rejected when read back (at write_back.salesforce.Lead.Status.values.mql)",
    ],
}


def test_every_malformed_file_has_an_expectation():
    files = {p.stem for p in MALFORMED.glob("*.yaml")}
    assert files == set(EXPECTED)
    assert len(files) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_mapping_reports_exact_location_and_message(name: str):
    with pytest.raises(MappingError) as caught:
        load_mapping(MALFORMED / f"{name}.yaml")
    prefix = f"{MALFORMED}/"
    got = [str(problem).replace(prefix, "") for problem in caught.value.problems]
    assert got == EXPECTED[name]


def test_a_mapping_file_over_1_mb_is_refused_before_parsing(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    path.write_text("version: 1\n" + "#" * 1_000_000 + "\n", encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems] == [
        "huge.yaml:1:1: file is 1,000,012 bytes; a mapping file may be at most 1,000,000 "
        "bytes (1 MB)"]
