"""`python -m bench`: see bench/cli.py."""

from __future__ import annotations

from bench.cli import main

if __name__ == "__main__":  # the sandbox's spawned process imports this module too
    raise SystemExit(main())
