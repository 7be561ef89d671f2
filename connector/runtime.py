"""Wire settings, mapping, state and adapters into an Engine; set up logging and progress.

Kept apart from the CLI so that scripts, orchestrators and tests build an engine the same
way the `crmsync` command does. The engine's modules (and with them both CRM SDKs) are
imported only by `open_engine`: every command sets up logging here, and `mappings validate`
or `sandbox serve` should not pay for SDKs they never use.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from connector.mapping import Mapping
    from connector.settings import Settings
    from connector.sync import Engine, Progress

__all__ = ["JsonLogFormatter", "RichProgress", "configure_logging", "open_engine"]


@contextmanager
def open_engine(
    *,
    env_file: Path | None = Path(".env"),
    mapping_path: Path | None = None,
    state_path: Path | str | None = None,
    progress: Progress | None = None,
    settings: Settings | None = None,
    mapping: Mapping | None = None,
    tenant: str | None = None,
) -> Iterator[Engine]:
    """An Engine from settings. The mapping is loaded first: a bad one stops before any read.

    `mapping` is one already loaded (tests and benchmarks that vary it); `mapping_path` and
    the settings' own are then not read. The state store is `state_path` (a path or URL),
    else the settings' (CRMSYNC_STATE_URL, else CRMSYNC_STATE_PATH): SQLite or PostgreSQL,
    chosen by its form; `tenant` (else CRMSYNC_TENANT) names the pair's rows in a shared
    PostgreSQL store."""
    from connector.mapping import load_mapping  # noqa: PLC0415 - see the module docstring
    from connector.settings import load_settings  # noqa: PLC0415
    from connector.state import StateStore  # noqa: PLC0415
    from connector.sync import Engine, EngineOptions  # noqa: PLC0415
    from connector.systems.factory import build_adapters  # noqa: PLC0415

    settings = settings or load_settings(env_file=env_file)
    mapping = mapping or load_mapping(mapping_path or settings.mapping_path)
    adapters = build_adapters(settings)
    with StateStore(state_path or settings.state_location(),
                    tenant=tenant or settings.tenant) as store:
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
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = scrub(value) if isinstance(value, str) else value
        return json.dumps(entry, default=lambda value: scrub(str(value)))


class _ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each record (as logging's own
    last-resort handler does), so a test runner swapping stderr never leaves a closed stream.

    While progress bars are drawn, a record goes through the bars' console instead, which
    prints it above them: written past the bars, a line would land inside them and the next
    redraw would overwrite it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        # Under the lock the bars start and stop by: a retry logged by the reader thread
        # while the main thread stops the bars would otherwise be drawn into their last frame.
        with _live_lock:
            console = _live_console
            if console is None:
                super().emit(record)
                return
            try:
                console.print(Text(self.format(record)), soft_wrap=True, highlight=False)
            except Exception:  # as StreamHandler does: a log line never stops a run
                self.handleError(record)


def log_format() -> str | None:
    """The format `configure_logging` set ("text" or "json"), or None before it ran: an
    error a command prints goes out in the same format as its logs."""
    handlers = logging.getLogger(LOGGER_ROOTS[0]).handlers
    if not handlers or not isinstance(handlers[0], _StderrHandler):
        return None
    return "json" if isinstance(handlers[0].formatter, JsonLogFormatter) else "text"


# Our own loggers are `crmsync.*`; modules that log under their import path (`connector.*`)
# are shown the same way, so no message is lost for want of a handler.
LOGGER_ROOTS = ("crmsync", "connector")
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR}


def configure_logging(log_format: str = "text", level: str = "info") -> None:
    """Logs go to stderr (stdout is for reports), as text or JSON lines, from `level` up."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {log_format!r}")
    handler = _StderrHandler()
    handler.setFormatter(
        JsonLogFormatter() if log_format == "json"
        else _ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    for name in LOGGER_ROOTS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(LOG_LEVELS[level])


class RateColumn(ProgressColumn):
    """Records per second, whether or not the total is known."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "", style="progress.data.speed")


# The console of the progress bars now drawn, if any: log lines go through it (`_StderrHandler`).
# Set and cleared under `_live_lock`, which a log line also holds while it is written.
_live_console: Console | None = None
_live_lock = threading.RLock()


class RichProgress:
    """A bar per object with count, rate and ETA (when the total is known), on stderr.

    One rich Progress at a time, drawn only while an object is being read: it starts with
    the first bar and stops (leaving the bars on screen, finished) once every bar it holds
    is finished. So nothing else is ever printed while bars are live but log lines, which go
    through the bars' console and land above them, and a report or a demo's story printed
    between reads never has bars redrawn over it. Each run's bars are its own: a second run
    draws new bars below the first run's, never copies of them.

    Implements `connector.sync.Progress` (start, advance, finish, note, status,
    wants_totals) without subclassing it, so that importing this module does not import the
    engine."""

    wants_totals = True

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bars: Bars | None = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, key: str, total: int | None = None) -> None:
        if self.bars is None:
            self._draw()
        self.tasks[key] = self.bars.add_task(key, total=total)

    def advance(self, key: str, count: int) -> None:
        if self.bars is not None and key in self.tasks:
            self.bars.advance(self.tasks[key], count)

    def finish(self, key: str) -> None:
        if self.bars is None or key not in self.tasks:
            return
        task_id = self.tasks[key]
        done = next(t.completed for t in self.bars.tasks if t.id == task_id)
        self.bars.update(task_id, total=done, completed=done)
        if all(task.finished for task in self.bars.tasks):
            self.stop()

    def note(self, message: str) -> None:
        self.console.print(Text(message), soft_wrap=True, highlight=False)

    def status(self, key: str, text: str) -> None:
        """The bar's label with where the task stands, e.g. a Bulk job's state."""
        if self.bars is not None and key in self.tasks:
            self.bars.update(self.tasks[key], description=f"{key}: {text}")

    def stop(self) -> None:
        """Stop drawing: the bars stay on screen as they are, and the next start draws anew."""
        global _live_console  # noqa: PLW0603 - one terminal, one live display at a time
        with _live_lock:
            if self.bars is None:
                return
            try:
                self.bars.stop()
            finally:
                self.bars, self.tasks = None, {}
                _live_console = None

    def _draw(self) -> None:
        global _live_console  # noqa: PLW0603
        self.bars = Bars(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        with _live_lock:
            self.bars.start()
            _live_console = self.console
