"""Wire settings, mapping, state and adapters into an Engine; set up logging and progress.

Kept apart from the CLI so that scripts, orchestrators and tests build an engine the same
way the `crmsync` command does.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as Bars
from rich.text import Text

from connector.exceptions import scrub
from connector.mapping import load_mapping
from connector.settings import Settings, load_settings
from connector.state import StateStore
from connector.sync import Engine, EngineOptions, Progress
from connector.systems.factory import build_adapters

__all__ = ["JsonLogFormatter", "RichProgress", "configure_logging", "open_engine"]


@contextmanager
def open_engine(
    *,
    env_file: Path | None = Path(".env"),
    mapping_path: Path | None = None,
    state_path: Path | None = None,
    progress: Progress | None = None,
    settings: Settings | None = None,
) -> Iterator[Engine]:
    """An Engine from settings. The mapping is loaded first: a bad one stops before any read."""
    settings = settings or load_settings(env_file=env_file)
    mapping = load_mapping(mapping_path or settings.mapping_path)
    adapters = build_adapters(settings)
    with StateStore(state_path or settings.state_path) as store:
        yield Engine(store, mapping, adapters, progress=progress,
                     options=EngineOptions.from_settings(settings))


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, for log shippers; messages are scrubbed of tokens."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, default=str)


class _ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure_logging(log_format: str = "text", verbose: bool = False) -> None:
    """Logs go to stderr (stdout is for reports), as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter() if log_format == "json"
        else _ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("crmsync")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


class RateColumn(ProgressColumn):
    """Records per second, whether or not the total is known."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "", style="progress.data.speed")


class RichProgress(Progress):
    """A bar per object with count, rate and ETA (when the total is known), on stderr."""

    wants_totals = True

    def __init__(self) -> None:
        self.bars = Bars(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def start(self, key: str, total: int | None = None) -> None:
        self.tasks[key] = self.bars.add_task(key, total=total)

    def advance(self, key: str, count: int) -> None:
        self.bars.advance(self.tasks[key], count)

    def finish(self, key: str) -> None:
        task_id = self.tasks[key]
        done = next(t.completed for t in self.bars.tasks if t.id == task_id)
        self.bars.update(task_id, total=done or 1, completed=done or 1)

    def note(self, message: str) -> None:
        self.bars.console.print(message)
