"""The set-up a new admin follows: README, config/example.env and `check` name ONE list of
HubSpot scopes (the one the code needs), README links only inside the repo, says to activate
the venv before typing `crmsync`, and the demo leaves nothing in the working directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from connector.catalog import HUBSPOT_FIELD_CREATION_SCOPES, HUBSPOT_SCOPES
from connector.fields import hubspot_scopes
from tests.runs import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE_ENV = (ROOT / "config" / "example.env").read_text(encoding="utf-8")
SCOPE = re.compile(r"\bcrm\.[a-z_]+\.[a-z_]+\.(?:read|write)\b")


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    following = re.search(r"^## ", text[start + 3:], re.MULTILINE)
    return text[start:start + 3 + following.start()] if following else text[start:]


def test_the_scope_list_is_what_the_code_needs_with_the_shipped_mapping(mapping) -> None:
    assert hubspot_scopes(mapping) == (list(HUBSPOT_SCOPES), list(HUBSPOT_FIELD_CREATION_SCOPES))
    assert not any(s.startswith("crm.objects.deals.write") for s in HUBSPOT_SCOPES)


def test_readme_lists_exactly_the_needed_scopes_and_the_optional_ones_apart() -> None:
    section = _section(README, "Configuring real credentials")
    block = re.search(r"grant exactly these.*?```\n(.*?)```", section, re.DOTALL).group(1)
    assert SCOPE.findall(block) == list(HUBSPOT_SCOPES)
    optional = re.search(r"Optional, only for `crmsync fields --create hubspot`.*?\n\n",
                         section, re.DOTALL).group(0)
    assert SCOPE.findall(optional) == list(HUBSPOT_FIELD_CREATION_SCOPES)


def test_example_env_lists_the_same_scopes() -> None:
    needed = re.search(r"# Scopes to grant.*?\n((?:#   .*\n)+)", EXAMPLE_ENV).group(1)
    optional = re.search(r"# Optional, only .*?\n((?:#   .*\n)+)", EXAMPLE_ENV).group(1)
    assert SCOPE.findall(needed) == list(HUBSPOT_SCOPES)
    assert SCOPE.findall(optional) == list(HUBSPOT_FIELD_CREATION_SCOPES)
    assert set(SCOPE.findall(EXAMPLE_ENV)) == set(HUBSPOT_SCOPES) | set(
        HUBSPOT_FIELD_CREATION_SCOPES)


def test_readme_names_the_salesforce_connected_app_steps() -> None:
    section = _section(README, "Configuring real credentials")
    for step in ("Enable Client Credentials Flow", "Run As", "API Enabled",
                 "Crmsync_Integration", "sf project deploy start", "CRMSYNC_SALESFORCE_CLIENT_ID"):
        assert step in section, step


def test_readme_points_only_inside_the_repository() -> None:
    assert "../" not in README
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target
    for named in re.findall(r"`((?:docs|config|mappings|bench|connector|tests)/[^`*]+)`",
                            README):
        assert (ROOT / named.split(" ")[0]).exists(), named


def test_readme_activates_the_venv_before_the_first_bare_crmsync() -> None:
    activate = README.index(". .venv/bin/activate")
    commands = [block for block in re.finditer(r"```sh\n(.*?)```", README, re.DOTALL)
                if re.search(r"(?m)^crmsync ", block.group(1))]
    assert commands and activate < commands[0].start()
    # the two set-up commands still come first, before anything else is explained
    first_blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)[:2]
    assert first_blocks[0].startswith("python3 -m venv .venv")
    assert first_blocks[1].startswith("python3 -m venv .venv")


def test_the_demo_keeps_its_state_db_out_of_the_working_directory(tmp_path) -> None:
    work, temporary = tmp_path / "checkout", tmp_path / "tmp"
    work.mkdir()
    temporary.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")}
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str(temporary))
    result = subprocess.run([sys.executable, "-m", "connector", "demo", "--seed", "5"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == []
    kept = list(temporary.rglob("crmsync-demo.db"))
    assert len(kept) == 1
    assert str(kept[0]) in "".join(result.stdout.split())  # the demo says where it is
