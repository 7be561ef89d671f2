"""`crmsync report`: a self-contained HTML report with charts, from the state DB alone.

- numbers.py: the figures, pure (no I/O): the tally a run keeps while it plans, the totals
  it ends with, and what each chart shows;
- tally.py: keeping the tally as runs go (the planner and the run frame call it);
- data.py: a report's data from the state DB and the mapping, as `crmsync report --json`
  prints it;
- html.py: that data drawn with plotly into one HTML file that opens offline.

Only html.py imports plotly, and nothing here imports html.py: runs never pay for it.
"""
