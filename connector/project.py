"""The project file, `crmsync.toml`: which mapping, state DB and settings file the runs in a
directory use, so scheduled runs need no flags (as dbt_project.yml or meltano.yml do).

    # crmsync.toml
    mapping = "mappings/acme.yaml"   # paths are relative to this file
    state = "var/crmsync.db"
    env_file = "/etc/crmsync/crmsync.env"

Every `crmsync` command started in the directory reads it; a flag given on the command line
beats it (`--mapping`, `--state`, `--env-file`), and it beats the settings
`CRMSYNC_MAPPING_PATH` and `CRMSYNC_STATE_PATH`. A forgotten flag then changes nothing:
the runs use what the file names, and the state DB's pinned mapping catches the rest.
A file crmsync cannot use is an error naming the file, the line and the key.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.exceptions import ProjectFileError

__all__ = ["KEYS", "PROJECT_FILE", "Project", "find_project", "load_project", "project_text"]

PROJECT_FILE = "crmsync.toml"
KEYS = {
    "mapping": "the mapping YAML",
    "state": "the state DB",
    "env_file": "the settings file",
}


@dataclass(frozen=True)
class Project:
    """A project file's paths, resolved against the file's folder; None where it names none."""

    file: Path
    mapping: Path | None = None
    state: Path | None = None
    env_file: Path | None = None


def find_project(folder: Path | None = None) -> Project | None:
    """The project file in `folder` (the working directory), if there is one."""
    path = (folder or Path.cwd()) / PROJECT_FILE
    return load_project(path) if path.is_file() else None


def load_project(path: Path) -> Project:
    """Read and check a project file; ProjectFileError (exit 2) says what is wrong where."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ProjectFileError(f"cannot read the project file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ProjectFileError(f"{path}: line {line}: not UTF-8 (byte offset {exc.start}); "
                               "save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProjectFileError(f"{path}: not valid TOML: {_line_first(str(exc), text)}"
                               ) from None
    problems = [_problem(path, text, key, value) for key, value in data.items()]
    problems = [p for p in problems if p]
    if problems:
        raise ProjectFileError("\n".join(problems))
    folder = path.parent
    return Project(path, **{key: folder / Path(data[key]).expanduser() for key in KEYS
                            if key in data})


def project_text(mapping: str | None, state: str, env_file: str | None) -> str:
    """A project file for `crmsync init`, each key with what it is for."""
    lines = ["# crmsync project file: what every crmsync command started in this directory uses,",
             "# so scheduled runs need no flags. Flags (--mapping, --state, --env-file) beat it.",
             "# Paths are relative to this file.", ""]
    if mapping:
        lines.append(f"mapping = {_toml_string(mapping)}")
    else:
        lines.append('# mapping = "my-mapping.yaml"   # unset: the shipped mappings/default.yaml')
    lines.append(f"state = {_toml_string(state)}")
    if env_file:
        lines.append(f"env_file = {_toml_string(env_file)}")
    else:
        lines.append('# env_file = "crmsync.env"      # unset: ./.env when it exists')
    return "\n".join(lines) + "\n"


def _problem(path: Path, text: str, key: str, value: Any) -> str | None:
    where = f"{path}: line {_line_of(text, key)}"
    if key not in KEYS:
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        known = ", ".join(f"{k} ({what})" for k, what in KEYS.items())
        return f"{where}: unknown key '{key}'{hint} Known keys: {known}."
    if not isinstance(value, str) or not value.strip():
        shown = repr(value) if not isinstance(value, str) else "an empty string"
        return f"{where}: {key} must be a path (a string), not {shown}"
    return None


def _line_of(text: str, key: str) -> int | str:
    """The line that sets `key`, or opens it as a table (tomllib does not say)."""
    name = rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
    pattern = re.compile(rf"^\s*(?:{name}\s*=|\[\s*{name}\s*[\].])")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return "?"


def _line_first(message: str, text: str) -> str:
    """tomllib's "Invalid value (at line 3, column 9)" as "line 3, column 9: Invalid value"."""
    found = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if found:
        return f"line {found[1]}, column {found[2]}: {message[:found.start()].strip()}"
    if "(at end of document)" in message:
        last = max(1, len(text.splitlines()))
        return f"line {last}, at the end: {message.replace('(at end of document)', '').strip()}"
    return message


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
