"""Tests that need PostgreSQL skip, visibly, where it is missing, and fail in CI (CI=true),
so CI can never pass by skipping them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ONE_TEST = "tests/test_state_repos.py::test_the_store_implements_the_store_protocol"


def _pytest_without_postgres(ci: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": ci,
           "CRMSYNC_TEST_POSTGRES_URL": "postgresql://root@127.0.0.1:1/test?connect_timeout=2"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                           "-p", "no:xdist", "-p", "no:cacheprovider", ONE_TEST],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.parametrize(("ci", "code", "summary"), [
    ("", 0, "1 passed, 1 skipped"),
    ("true", 1, "1 passed, 1 error"),
])
def test_postgresql_tests_skip_with_the_reason_or_fail_under_ci(ci, code, summary):
    run = _pytest_without_postgres(ci)
    assert run.returncode == code, run.stdout[-2000:]
    assert summary in run.stdout, run.stdout[-2000:]
    reason = "PostgreSQL at postgresql://root@127.0.0.1:1/test"
    assert reason in run.stdout, run.stdout[-2000:]
    if ci == "true":
        assert "PostgreSQL is required in CI" in run.stdout
    else:
        assert "SKIPPED" in run.stdout and "PostgreSQL not available" in run.stdout
