"""Parse YAML into plain Python while remembering where every key and value stood.

PyYAML's composed node graph carries a start mark for every key and value, which the
constructed Python objects lose. We walk the nodes ourselves so that (a) every error can name
`file:line:column`, and (b) duplicate keys, which PyYAML's constructor silently overwrites, are
reported instead.

A mapping file is admin-edited, maybe copied from elsewhere, so its size is bounded before
anything is built from it: at most 1 MB, 64 levels of nesting, 500 alias references and
100,000 values once aliases are expanded (a "billion laughs" file of 500 bytes expands to
10^9 values), no alias inside the node it names (an infinite document), and numbers of at
most 100 digits (Python refuses to read ints past 4,300). Each is a problem with its
location, like any other mistake in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connector.exceptions import MappingProblem

Path_ = tuple[str | int, ...]

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_ALIASES = 500
MAX_VALUES = 100_000
MAX_INT_DIGITS = 100

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
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return Located(name, None, problems=[_too_large(name, size)])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Located(name, None, problems=[MappingProblem(name, 1, 1, "file not found")])
    except (OSError, UnicodeDecodeError) as exc:
        return Located(name, None, problems=[MappingProblem(name, 1, 1, f"cannot read: {exc}")])
    return parse_located(text, name)


def _too_large(file: str, size: int) -> MappingProblem:
    return MappingProblem(file, 1, 1, f"file is {size:,} bytes; a mapping file may be at most "
                                      f"{MAX_FILE_BYTES:,} bytes (1 MB)")


def parse_located(text: str, file: str) -> Located:
    doc = Located(file, None)
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        doc.problems.append(_too_large(file, size))
        return doc
    try:
        bounded = _bounds_problem(text, file)
        if bounded is not None:
            doc.problems.append(bounded)
            return doc
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


def _bounds_problem(text: str, file: str) -> MappingProblem | None:
    """The first place the document passes a bound, from its event stream: before composing,
    which would follow a recursive alias forever, and before expanding aliases.

    Values are counted as expanded: a scalar is one, a list or mapping one plus its contents,
    an alias as many as its anchor holds. An alias to an anchor still open is recursive.
    """
    sizes: dict[str, int] = {}  # anchor -> values it holds, once closed
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, total when it opened)
    total = aliases = 0
    for event in yaml.parse(text, Loader=_Loader):
        message = None
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if event.anchor not in sizes and any(a == event.anchor for a, _ in open_nodes):
                message = (f"alias *{event.anchor} refers to the anchor &{event.anchor} that "
                           "contains it, so it never ends")
            elif aliases > MAX_ALIASES:
                message = (f"more than {MAX_ALIASES} alias references (*name); a mapping file "
                           f"may use at most {MAX_ALIASES}")
            total += sizes.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append((event.anchor, total))
            total += 1
            if len(open_nodes) > MAX_DEPTH:
                message = (f"nested more than {MAX_DEPTH} levels deep; a mapping file may nest "
                           f"at most {MAX_DEPTH}")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, opened_at = open_nodes.pop()
            if anchor:
                sizes[anchor] = total - opened_at
        if message is None and total > MAX_VALUES:
            message = (f"aliases expand this file to more than {MAX_VALUES:,} values (a "
                       f"'billion laughs' file?); a mapping file may hold at most {MAX_VALUES:,}")
        if message is not None:
            mark = event.start_mark
            return MappingProblem(file, mark.line + 1, mark.column + 1, message)
    return None


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(node: yaml.Node, path: Path_, doc: Located) -> Any:
    doc.value_marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        return _convert_mapping(node, path, doc)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc) for i, item in enumerate(node.value)]
    if node.tag == "tag:yaml.org,2002:int":
        digits = sum(char.isdigit() for char in node.value)
        if digits > MAX_INT_DIGITS:
            doc.problems.append(doc.problem(
                path, f"a number of {digits:,} digits; numbers may have at most "
                      f"{MAX_INT_DIGITS} digits (quote it if it is text)"))
            return None
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
