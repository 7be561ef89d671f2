"""Turn pydantic's structural errors into problems an admin can act on.

Pydantic reports a location as a tuple of keys; we map it back onto the YAML node that
caused it and rewrite the message to name the bad value, the allowed values and the closest
match.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from connector.exceptions import MappingProblem
from connector.mapping._located import Located, Path_

_TYPE_NAMES = {
    "string_type": "a text value",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "list_type": "a list",
}


# Words admins reach for that mean an allowed one (ICP operators, mostly).
_SYNONYMS = {
    "greater_than": "at_least", "gt": "at_least", "gte": "at_least", "min": "at_least",
    "minimum": "at_least", "less_than": "at_most", "lt": "at_most", "lte": "at_most",
    "max": "at_most", "maximum": "at_most", "range": "between", "one_of": "in",
    "none_of": "not_in", "not": "not_in", "and": "all", "or": "any", "to": "from",
}


def suggest(value: object, allowed: typing.Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest allowed value, or ''."""
    choices = [str(a) for a in allowed]
    text = str(value)
    if _SYNONYMS.get(text) in choices:
        return f" Did you mean {_SYNONYMS[text]!r}?"
    matches = difflib.get_close_matches(text, choices, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.casefold(): c for c in choices}
        if text.casefold() in lowered:
            matches = [lowered[text.casefold()]]
    return f" Did you mean {matches[0]!r}?" if matches else ""


def allowed_list(allowed: typing.Iterable[str]) -> str:
    return ", ".join(repr(a) for a in allowed)


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return f"the number {value:g}"
    return f"{type(value).__name__} {value!r}"


def problems_from_validation(
    error: ValidationError, doc: Located, root: type[BaseModel]
) -> list[MappingProblem]:
    return [_problem(err, doc, root) for err in error.errors(include_url=False)]


def _problem(err: Any, doc: Located, root: type[BaseModel]) -> MappingProblem:
    loc, is_key = _document_path(tuple(err["loc"]), doc)
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        name = loc[-1]
        allowed = _allowed_keys(root, loc[:-1])
        message = f"unknown key {name!r}; allowed keys: {allowed_list(allowed)}." + suggest(
            name, allowed
        )
        return doc.problem(loc, message, key=True)
    if kind == "missing":
        missing = err["loc"][-1]
        return doc.problem(loc, f"missing required key {missing!r}")
    if kind in ("literal_error", "enum"):
        expected = err["ctx"]["expected"]
        allowed = [item.strip("'") for item in re.split(r", | or ", expected)]
        what = "key" if is_key else "value"
        message = f"unknown {what} {value!r}; allowed: {expected}."
        if isinstance(value, str) and value in allowed and f"'{value}'" not in expected:
            message += f" Write {value} without quotes: it is a number here."
        else:
            message += suggest(value, allowed)
        return doc.problem(loc, message, key=is_key)
    if kind in _TYPE_NAMES:
        message = f"expected {_TYPE_NAMES[kind]}, got {describe(value)}"
        if kind == "string_type" and isinstance(value, (bool, int, float)):
            message += "; YAML reads bare yes/no/on/off and numbers as such: put it in quotes"
        return doc.problem(loc, message)
    message = err["msg"].replace("Input should be", "must be").replace("List should", "must")
    return doc.problem(loc, f"{message}, got {describe(value)}")


def _document_path(loc: tuple[Any, ...], doc: Located) -> tuple[Path_, bool]:
    """Keep the parts of pydantic's loc that exist in the document (drops union branches)."""
    path: list[str | int] = []
    is_key = False
    for part in loc:
        if part == "[key]":
            is_key = True
            continue
        candidate = (*path, part)
        if candidate in doc.value_marks or candidate in doc.key_marks:
            path.append(part)
        elif isinstance(part, str) and part.endswith("_") and (*path, part[:-1]) in doc.value_marks:
            path.append(part[:-1])
    # the final part of a missing key is not in the document; callers locate its parent
    return tuple(path), is_key


def _allowed_keys(root: type[BaseModel], path: Path_) -> list[str]:
    """The keys the model accepts at `path` (aliases where they exist)."""
    current: Any = root
    for part in path:
        current = _step(current, part)
        if current is None:
            return []
    model = _as_model(current)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _step(annotation: Any, part: str | int) -> Any:
    model = _as_model(annotation)
    if model is not None:
        for name, info in model.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is not type(None):
                return _step(arg, part)
    if origin is dict:
        return args[1]
    if origin is list:
        return args[0]
    return None


def _as_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _as_model(arg)
            if found is not None:
                return found
    return None
