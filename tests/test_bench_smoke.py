"""The benchmarks still run: `python -m bench --smoke` end to end, plus their arithmetic.

The real figures come from a hand-run `python -m bench` (see bench/RESULTS.md); CI only keeps
the code from rotting, so this asserts that every section ran, not what it measured.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench._sizes import parse_size, show_size
from bench.api_calls import calls_by_system
from bench.rate import sustained_rate

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = (
    "## API calls per system against the minimum",
    "### Incremental run with nothing to do",
    "## Local overhead: wall time against the I/O floor",
    "## Core throughput",
    "## Peak RSS, each run in a fresh process",
    "## Rate-limit use under a time-scaled HubSpot window",
    "## HubSpot writes against a misconfigured portal (calls, not time)",
)


def test_smoke_run_prints_every_table(tmp_path):
    """Every benchmark still runs. How long it takes is a benchmark's business, not a unit
    test's: the machine is shared (the 120 s timeout only guards against a hang)."""
    markdown = tmp_path / "results.md"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--markdown", str(markdown)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for heading in SECTIONS:
        assert heading in completed.stdout
    assert markdown.read_text(encoding="utf-8") == completed.stdout.rstrip("\n") + "\n"


def test_convergence_smoke_converges():
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "convergence"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "## Convergence under churn" in completed.stdout
    assert "| verdict | converged |" in completed.stdout, completed.stdout


def test_help_describes_the_entry_point():
    completed = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0
    assert "--smoke" in completed.stdout and "--sizes" in completed.stdout


@pytest.mark.parametrize(("text", "value"), [("1k", 1_000), ("100k", 100_000), ("1M", 10**6),
                                             ("250", 250), ("2.5k", 2_500)])
def test_sizes_read_as_people_write_them(text, value):
    assert parse_size(text) == value
    assert parse_size(show_size(value)) == value


def test_minimum_uses_each_endpoints_largest_page():
    delta = {
        "requests": {"hubspot.list": 11, "hubspot.batch_update": 3, "salesforce.query": 2,
                     "salesforce.token": 1},
        "records_returned": {"hubspot.list": 1_001, "hubspot.batch_update": 250,
                             "salesforce.query": 2_001},
        "records_written": {"hubspot.batch_update": 250},
    }
    calls = calls_by_system(delta)
    assert (calls["hubspot"].calls, calls["hubspot"].minimum) == (14, 11 + 3)
    assert (calls["salesforce"].calls, calls["salesforce"].minimum) == (3, 2)
    assert calls["salesforce"].extras() == "token 1"


def test_sustained_rate_leaves_out_the_first_burst():
    # A limiter letting 10 requests through per 1.05 s: bursts at 0, 1.05, 2.10, ...
    samples = []
    for burst in range(8):
        start = burst * 1.05
        samples += [(start + i * 0.001, burst * 10 + i + 1) for i in range(10)]
    samples.insert(0, (-0.01, 0))
    rate, counted, seconds = sustained_rate(samples, window=1.0)
    assert counted == 60 and seconds == pytest.approx(6 * 1.05)
    assert rate == pytest.approx(10 / 1.05)
