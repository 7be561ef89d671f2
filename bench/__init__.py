"""crmsync benchmarks: API calls against the minimum, local overhead, core throughput, memory
and rate-limit use, all measured against the local sandbox.

Run `python -m bench` (see `--help`); `python -m bench --smoke` is the tiny size CI runs so the
benchmarks cannot rot. Figures are reported as ratios measured within one run, so they compare
across machines; absolute times are shown only for context.
"""
