"""Parse YAML into plain Python while remembering where every key and value stood.

PyYAML's composed node graph carries a start mark for every key and value, which the
constructed Python objects lose. We walk the nodes ourselves so that (a) every error can name
`file:line:column`, and (b) duplicate keys, which PyYAML's constructor silently overwrites, are
reported instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connector.exceptions import MappingProblem

Path_ = tuple[str | int, ...]

try:  # the C composer is ~10x faster; the pure one gives the same marks
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


@dataclass
class Located:
    """A parsed document plus the (line, column) of every value and key, by YAML path."""

    file: str
    data: Any
    value_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    problems: list[MappingProblem] = field(default_factory=list)

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Best location for `path`: the key itself if asked, else the value, else its parent."""
        marks = (self.key_marks, self.value_marks) if key else (self.value_marks, self.key_marks)
        probe = tuple(path)
        while True:
            for table in marks:
                if probe in table:
                    return table[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]

    def problem(self, path: Path_, message: str, *, key: bool = False) -> MappingProblem:
        line, column = self.where(path, key=key)
        return MappingProblem(self.file, line, column, message, format_path(path))


def format_path(path: Path_) -> str:
    """`stages.hubspot.contacts[0]` style, quoting keys that are not plain words."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def load_located(path: Path, display: str | None = None) -> Located:
    """Read and parse one YAML file; syntax errors become problems, never exceptions."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Located(name, None, problems=[MappingProblem(name, 1, 1, "file not found")])
    except (OSError, UnicodeDecodeError) as exc:
        return Located(name, None, problems=[MappingProblem(name, 1, 1, f"cannot read: {exc}")])
    return parse_located(text, name)


def parse_located(text: str, file: str) -> Located:
    doc = Located(file, None)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        detail = exc.problem or str(exc)
        if exc.context:
            detail = f"{exc.context}, {detail}"
        doc.problems.append(MappingProblem(file, line, column, f"invalid YAML: {detail}"))
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(MappingProblem(file, 1, 1, f"invalid YAML: {exc}"))
        return doc
    if node is not None:
        doc.data = _convert(node, (), doc)
    return doc


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(node: yaml.Node, path: Path_, doc: Located) -> Any:
    doc.value_marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        return _convert_mapping(node, path, doc)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc) for i, item in enumerate(node.value)]
    return _scalar(node)


def _convert_mapping(node: yaml.MappingNode, path: Path_, doc: Located) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            doc.problems.append(
                doc.problem(path, "keys must be plain scalars, not lists or mappings")
            )
            continue
        if key_node.tag == "tag:yaml.org,2002:merge":
            doc.problems.append(
                MappingProblem(doc.file, *_mark(key_node), "YAML merge keys (<<) are not supported",
                               format_path(path))
            )
            continue
        # Keys stay as written: `true`, `1001` and `01` are picklist values, not bool/int.
        key = str(key_node.value)
        child = (*path, key)
        if key in out:
            first = doc.key_marks[child]
            doc.problems.append(
                MappingProblem(
                    doc.file, *_mark(key_node),
                    f"duplicate key {key!r} (first defined at line {first[0]}); "
                    "YAML would silently keep only the last one",
                    format_path(child),
                )
            )
            continue
        doc.key_marks[child] = _mark(key_node)
        out[key] = _convert(value_node, child, doc)
    return out


_constructor = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.ScalarNode) -> Any:
    """Resolve a scalar the way PyYAML would (ints, floats, bools, dates, null)."""
    return _constructor.construct_object(node, deep=True)
