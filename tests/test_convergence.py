"""The acceptance gate for live reads, CI-sized: syncs against a sandbox that changes under
them (churn in both systems, search lag, Salesforce cursors that go stale, associations in
small pages) lose nothing and end where one full run on the quiet data would.

The large version is `python -m bench.convergence` (bench/RESULTS.md has its figures).
"""

from __future__ import annotations

import time

from bench.convergence import compare_mirror, fields_written_twice
from connector.mapping import load_mapping
from connector.sandbox import Sandbox
from tests.helpers import engine_for

SEED = 40
SAFETY_LAG = 2.0  # seconds (the default is 10 minutes; time-scaled with the search lag)
SEARCH_LAG = 0.5


def busy_sandbox() -> Sandbox:
    return Sandbox(seed=SEED, search_lag_seconds=SEARCH_LAG, salesforce_query_batch=25,
                   cursor_idle_seconds=0.2, association_page_size=3)


def test_syncs_under_churn_converge_to_the_truth(tmp_path):
    state = tmp_path / "state.db"
    lags = {"hubspot_safety_lag_seconds": SAFETY_LAG,
            "salesforce_safety_lag_seconds": SAFETY_LAG}
    with busy_sandbox() as sandbox:
        with engine_for(sandbox, state, **lags) as engine:
            assert engine.backfill().status == "ok"
            with sandbox.churn(25, seed=5) as churn:
                statuses = [engine.sync().status for _ in range(6)]
            time.sleep(SAFETY_LAG + SEARCH_LAG)  # churn stopped: let the lags pass
            quiet = None
            for _ in range(5):
                report = engine.sync()
                if report.planned == report.deleted == report.merged == 0:
                    quiet = report
                    break
        truth = sandbox.dump()
        with engine_for(sandbox, tmp_path / "fresh.db") as fresh:
            single = fresh.backfill(dry_run=True)

    assert set(statuses) <= {"ok", "rejects"}, statuses
    assert sum(churn.counts.values()) > 60, churn.counts  # the sandbox really was busy
    assert {"hubspot.delete", "hubspot.merge", "salesforce.delete",
            "salesforce.merge"} <= set(churn.counts), churn.counts
    assert quiet is not None, "the syncs never went quiet after churn stopped"
    divergence = compare_mirror(truth, state, load_mapping())
    assert divergence.ok, (divergence.summary(), divergence.missing[:5], divergence.stale[:5],
                           divergence.ghosts[:5])
    assert divergence.tombstoned > 0
    assert single.planned == 0, single.changes[:5]  # what one full run would write is there
    assert not fields_written_twice(state)
