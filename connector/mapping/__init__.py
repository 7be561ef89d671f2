"""Mapping YAML: load, validate and compile the admin-edited rules.

`load_mapping` either returns a complete `Mapping` or raises `MappingError` listing every
problem with `file:line:column`; nothing is ever partially loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from connector.exceptions import MappingError, MappingProblem
from connector.identity import email_key, normalise_domain, normalise_email
from connector.mapping._check import Checker, Pack
from connector.mapping._compiled import (
    Fact,
    FieldMap,
    IcpNode,
    Mapping,
    Meaning,
    PrecedenceRule,
    TriggerSourceRule,
    WriteRule,
)
from connector.mapping._errors import problems_from_validation
from connector.mapping._located import load_located
from connector.mapping._spec import LabelPackSpec, MappingSpec

__all__ = [
    "DEFAULT_MAPPING",
    "Fact",
    "FieldMap",
    "IcpNode",
    "Mapping",
    "Meaning",
    "PrecedenceRule",
    "TriggerSourceRule",
    "WriteRule",
    "email_key",
    "json_schema",
    "load_mapping",
    "normalise_domain",
    "normalise_email",
]

MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "mappings"
DEFAULT_MAPPING = MAPPINGS_DIR / "default.yaml"
SCHEMA_ID = "https://crmsync.dev/schema/mapping-v1.json"


def load_mapping(path: Path | str | None = None) -> Mapping:
    """Load and check a mapping file and the label packs it selects."""
    file = Path(path) if path is not None else DEFAULT_MAPPING
    display = str(path) if path is not None else _display(DEFAULT_MAPPING)
    doc = load_located(file, display)
    problems = list(doc.problems)
    if problems:
        raise MappingError(problems)
    if not isinstance(doc.data, dict):
        raise MappingError([doc.problem((), "a mapping file must be a YAML mapping (key: value) "
                                        "at the top level")])
    try:
        spec = MappingSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise MappingError(problems_from_validation(exc, doc, MappingSpec)) from None
    available = _available_packs(file)
    packs, pack_problems = _load_packs(spec, available, file, display)
    checker = Checker(doc, spec, packs, sorted(available), problems=pack_problems)
    mapping = checker.compile()
    if checker.problems:
        raise MappingError(checker.problems)
    return mapping


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _pack_display(path: Path, main_file: Path, main_display: str) -> str:
    """Name a pack the way the admin named the main file, so paths in errors line up."""
    try:
        return str(Path(main_display).parent / path.relative_to(main_file.parent))
    except ValueError:
        return _display(path)


def _available_packs(main_file: Path) -> dict[str, Path]:
    """Packs in `labels/` beside the mapping file, then the shipped ones (beside wins)."""
    found: dict[str, Path] = {}
    for folder in (main_file.parent / "labels", MAPPINGS_DIR / "labels"):
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
            found.setdefault(path.stem, path)
    return found


def _load_packs(
    spec: MappingSpec, available: dict[str, Path], main_file: Path, main_display: str
) -> tuple[dict[str, Pack], list[MappingProblem]]:
    packs: dict[str, Pack] = {}
    problems: list[MappingProblem] = []
    for name in spec.label_packs:
        if name not in available:
            continue  # reported by the checker with the list of available packs
        path = available[name]
        doc = load_located(path, _pack_display(path, main_file, main_display))
        problems.extend(doc.problems)
        if doc.problems:
            continue
        if not isinstance(doc.data, dict):
            problems.append(doc.problem((), "a label pack must be a YAML mapping"))
            continue
        try:
            pack_spec = LabelPackSpec.model_validate(doc.data)
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, doc, LabelPackSpec))
            continue
        packs[name] = Pack(name, doc, pack_spec)
    return packs, problems


def json_schema() -> dict[str, Any]:
    """JSON Schema of the mapping format, for editors (yaml-language-server) and CI."""
    schema = MappingSpec.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
