from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from connector.cli import app

runner = CliRunner()
MALFORMED = Path(__file__).parent / "mapping" / "malformed"
GOLDEN = Path(__file__).parent / "golden"


def test_validate_default_is_ok():
    result = runner.invoke(app, ["mappings", "validate"])
    assert result.exit_code == 0
    assert "default.yaml: ok (label packs: nl, no, fi)" in result.output


def test_validate_prints_every_problem_and_exits_2():
    bad = [MALFORMED / "unknown_stage_reverse_key.yaml", MALFORMED / "unknown_system.yaml"]
    result = runner.invoke(app, ["mappings", "validate", *map(str, bad)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 3
    assert lines[0].startswith(f"{bad[0]}:13:17: reverse map has no entry for 'mql'")
    assert lines[2].startswith(f"{bad[1]}:2:3: unknown system 'hubspott'")


def test_validate_mixes_good_and_bad_files(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\n")
    result = runner.invoke(app, ["mappings", "validate", str(good),
                                 str(MALFORMED / "empty_file.yaml")])
    assert result.exit_code == 2
    assert f"{good}: ok" in result.stdout
    assert "empty_file.yaml:1:1: a mapping file must be" in result.stderr


def test_schema_is_json_schema():
    result = runner.invoke(app, ["mappings", "schema"])
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "picklists" in schema["properties"]


def test_explain_prints_values_with_their_rules():
    result = runner.invoke(app, [
        "mappings", "explain", "--today", "2026-11-23",
        "--hubspot", str(GOLDEN / "hubspot.json"), "--salesforce", str(GOLDEN / "salesforce.json"),
    ])
    assert result.exit_code == 0, result.output
    assert "Person hubspot:contacts:201 + salesforce:Contact:003KARI + salesforce:Lead:00QCONV" \
        in result.stdout
    assert "stage: sql  <- salesforce:Lead:00QNO Status='Salgskvalifisert lead'" in result.stdout
    assert "(no.yaml:" in result.stdout
    assert "converted leads (never written): salesforce:Lead:00QCONV" in result.stdout


def test_explain_json_and_bad_inputs(tmp_path):
    record = tmp_path / "lead.json"
    record.write_text('{"attributes": {"type": "Lead"}, "Id": "00Q1", "Status": "Liidi"}')
    result = runner.invoke(app, ["mappings", "explain", "--json", "--salesforce", str(record)])
    assert json.loads(result.stdout)["persons"][0]["stage"]["value"] == "lead"

    broken = tmp_path / "broken.json"
    broken.write_text('{"id": 1,')
    result = runner.invoke(app, ["mappings", "explain", "--hubspot", str(broken)])
    assert result.exit_code == 2
    assert f"{broken}:1:10: invalid JSON" in result.stderr

    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"id": "1", "properties": {"foo": "bar"}}')
    result = runner.invoke(app, ["mappings", "explain", "--hubspot", str(unknown)])
    assert result.exit_code == 2
    assert "cannot tell the object type" in result.stderr

    result = runner.invoke(app, ["mappings", "explain"])
    assert result.exit_code == 2
    assert "give at least one --hubspot or --salesforce" in result.output


def test_explain_rejects_bad_date():
    result = runner.invoke(app, ["mappings", "explain", "--today", "tomorrow",
                                 "--hubspot", str(GOLDEN / "hubspot.json")])
    assert result.exit_code == 2
    assert "is not a date" in result.output


def test_validate_and_explain_use_the_project_file_s_mapping(tmp_path, monkeypatch):
    """In a directory with crmsync.toml, the admin's mapping is the one checked and used,
    not the shipped one: what the runs there use."""
    bad = tmp_path / "acme.yaml"
    bad.write_text((MALFORMED / "unknown_system.yaml").read_text())
    (tmp_path / "crmsync.toml").write_text('mapping = "acme.yaml"\n')
    monkeypatch.chdir(tmp_path)
    validated = runner.invoke(app, ["mappings", "validate"])
    assert validated.exit_code == 2
    assert f"{bad}:2:3: unknown system 'hubspott'" in validated.stderr
    explained = runner.invoke(app, ["mappings", "explain", "--hubspot",
                                    str(GOLDEN / "hubspot.json")])
    assert explained.exit_code == 2
    assert "unknown system 'hubspott'" in explained.stderr
