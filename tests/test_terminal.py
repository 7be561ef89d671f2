"""What a person sees in a real terminal: `crmsync` run inside tmux, its screen (with the
scrollback) captured once it is done.

Progress bars redraw themselves by moving the cursor up over what they drew. Text printed
past them, or bars stacked from run to run, are then overwritten or repeated: the end of
`crmsync demo` was lost under three copies of its bars, and log lines landed inside them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from connector.sandbox import Sandbox
from tests.runs import ROOT, write_env

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

DONE = "CRMSYNC-EXITED"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) crmsync\.\w+: ")
BAR = "━"


def on_screen(command: list[str], cwd: Path, *, width: int = 120, height: int = 40,
              timeout: float = 150) -> list[str]:
    """Run `command` in a tmux pane of `width` x `height`; every line it left on the screen
    and in the scrollback, once it exited (its exit code last, as DONE=code)."""
    socket = f"crmsync-test-{uuid.uuid4().hex[:8]}"  # a tmux server of our own
    config = cwd / "tmux.conf"
    config.write_text("set -g history-limit 100000\nset -g remain-on-exit on\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMSYNC_", "TMUX"))}
    env["PYTHONPATH"] = str(ROOT)
    shell = f"cd {shlex.quote(str(cwd))} && {shlex.join(command)}; echo {DONE}=$?"
    tmux = ["tmux", "-L", socket, "-f", str(config)]
    subprocess.run([*tmux, "new-session", "-d", "-x", str(width), "-y", str(height),
                    "bash", "-c", shell], env=env, check=True, timeout=30)
    try:
        deadline = time.monotonic() + timeout
        while True:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-", "-E", "-"],
                                    capture_output=True, text=True, check=True,
                                    timeout=30).stdout
            if f"{DONE}=" in screen:
                return [line.rstrip() for line in screen.splitlines()]
            assert time.monotonic() < deadline, screen[-3000:]
            time.sleep(0.3)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, timeout=30)


def crmsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "connector", *args]


def assert_log_lines_whole(screen: list[str]) -> None:
    """A log line starts a line of its own and shares it with no bar."""
    for line in screen:
        if re.search(r" (INFO|WARNING) crmsync\.", line):
            assert LOG_LINE.match(line), line
            assert BAR not in line, line
        if BAR in line and not line.startswith(("┏", "┡", "└", "┃")):  # a bar, not a table
            assert re.match(r"^\w+\.\w+ +━+.* \d+/\d+ ", line), line


def bars_of(screen: list[str], key: str) -> list[str]:
    return [line for line in screen if line.startswith(key + " ") and BAR in line]


def test_the_demo_ends_on_screen_with_each_run_s_bars_drawn_once(tmp_path):
    screen = on_screen(crmsync("demo", "--seed", "30", "--state", "demo.db"), tmp_path)
    text = "\n".join(screen)
    assert f"{DONE}=0" in text, text[-3000:]
    # every step of the story is there, in order, and the last ones are the last lines
    steps = ["1. Backfill", "2. People change things", "3. Incremental sync",
             "unknown Lead.Status 'Nurturing'", "4. One more sync", "State kept in",
             "5. The report"]
    positions = [next((i for i, line in enumerate(screen) if step in line), None)
                 for step in steps]
    assert None not in positions, (steps, text[-3000:])
    assert positions == sorted(positions), positions
    last = [line for line in screen if line.strip() and not line.startswith("Pane is dead")]
    assert last[-1].startswith(f"{DONE}=") and last[-2].endswith("demo.html"), last[-5:]
    # three runs read each object once: three bars per object, never copies of them
    for key in ("hubspot.companies", "hubspot.contacts", "salesforce.Lead",
                "salesforce.Opportunity"):
        assert len(bars_of(screen, key)) == 3, (key, bars_of(screen, key))
    assert_log_lines_whole(screen)
    assert sum(bool(LOG_LINE.match(line)) for line in screen) >= 3 * 7  # a line per object read


def test_a_backfill_s_retry_warnings_land_above_its_bars(tmp_path):
    """Retries are logged while a bar is drawn: each must be a whole line of its own."""
    with Sandbox(seed=40) as sandbox:
        env_file = write_env(sandbox, tmp_path)
        # retried reads: the next object's first page is read (and retried) on the reader
        # thread while the main thread finishes the bar before it
        sandbox.set_faults("hubspot.*:503=0.5, salesforce.query:503=0.5, seed=5")
        screen = on_screen(crmsync("backfill", "--env-file", str(env_file), "--state",
                                   str(tmp_path / "state.db")), tmp_path, width=100)
    text = "\n".join(screen)
    assert f"{DONE}=0" in text, text[-3000:]
    warnings = [line for line in screen if " WARNING crmsync.retry: " in line]
    assert warnings, text[-3000:]
    # longer than the terminal is wide, each stays one line (the terminal wraps it; the
    # capture joins it again): a line broken in two is no longer one log record
    assert all(len(line) > 100 and re.search(r"; retrying in [\d.]+ s$", line)
               for line in warnings), warnings
    assert_log_lines_whole(screen)
    last_bar = 0
    for key in ("hubspot.companies", "hubspot.contacts", "hubspot.deals", "salesforce.Account",
                "salesforce.Lead", "salesforce.Contact", "salesforce.Opportunity"):
        [bar] = bars_of(screen, key)
        assert re.search(r" (\d+)/\1 ", bar), bar  # finished: read all it said it would
        last_bar = max(last_bar, screen.index(bar))
    report = next(i for i, line in enumerate(screen) if line.startswith("backfill run 1: ok"))
    assert report > last_bar
