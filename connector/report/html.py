"""A report's data (data.py) drawn with plotly into one HTML file that opens offline.

plotly writes the charts (figure JSON and the code that draws them); this module only lays
the page out: a heading, and per chart a one-line caption, the chart and a table of its
numbers, so the page also reads printed. plotly.js is inlined once, in the head: no CDN, no
network, whatever the number of charts. Every text from the state DB (reasons, record ids,
picklist values) is escaped, for tables and for chart labels alike: plotly draws a subset of
HTML in labels.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from connector.reporting import dumps

__all__ = ["CHARTS", "render", "write_html", "write_report"]

# The charts a report draws, by the id of their element: the browser test checks each.
CHARTS = ("chart-funnel", "chart-agreement", "chart-organizations", "chart-changes",
          "chart-stuck", "chart-history")

SYSTEM_NAMES = {"hubspot": "HubSpot", "salesforce": "Salesforce", "reconciled": "Reconciled"}
COLORS = {"hubspot": "#e8643f", "salesforce": "#1b87c9", "reconciled": "#3d8c40",
          "before": "#c9ced6", "downgrade": "#c0392b", "clear": "#8e44ad", "change": "#1b87c9"}
STATUS_COLORS = {"ok": "#3d8c40", "rejects": "#e0a200", "stopped": "#7f8c8d",
                 "config_error": "#c0392b", "failed": "#c0392b", "interrupted": "#7f8c8d",
                 "running": "#1b87c9"}
PRIORITY_COLORS = {"trigger_fit": "#3d8c40", "fit": "#8bc34a", "nonfit_lead": "#e0a200",
                   "other": "#c9ced6"}
TABLE_ROWS = 25  # rows a table shows; `crmsync report --json` has them all
CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["select2d", "lasso2d"]}

STYLE = """
:root { --ink: #1f2933; --muted: #5f6b7a; --line: #dde2e8; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); margin: 0; background: #f6f7f9; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 2px; }
.meta, .caption, footer { color: var(--muted); }
.caption { margin: 0 0 8px; }
.note { background: #fff8e1; border-left: 4px solid #e0a200; padding: 6px 10px; }
section, .tiles { background: #fff; border: 1px solid var(--line); border-radius: 8px;
                  padding: 16px 18px; margin: 16px 0; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px 28px; }
.tile b { display: block; font-size: 22px; }
.tile span { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left;
         vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { word-break: break-word; }
.mark { font-size: 12px; border-radius: 3px; padding: 0 4px; color: #fff; }
.down { background: #c0392b; } .clear { background: #8e44ad; }
.more { color: var(--muted); font-size: 13px; }
@media print {
  body { background: #fff; font-size: 12px; }
  main { max-width: none; padding: 0; }
  section, .tiles { break-inside: avoid; border: none; padding: 8px 0; }
  .modebar { display: none !important; }
}
"""


def render(data: dict[str, Any]) -> str:
    """The whole report as one HTML document."""
    run = data["run"]
    title = f"crmsync report: run {run['id']} ({run['kind']})"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body><main>",
        _heading(data),
        _funnel_section(data),
        _agreement_section(data),
        _organizations_section(data),
        _changes_section(data),
        _stuck_section(data),
        _history_section(data),
        "<footer>Written by <code>crmsync report</code> from the state DB alone (no API "
        "calls); it loads nothing from the network. The same numbers: <code>crmsync report "
        "--json</code>.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


def write_report(data: dict[str, Any], path: Path) -> int:
    """Draw `data` (`report_data`) into the HTML file `path`, every text in it scrubbed of
    secrets first; returns the bytes written."""
    return write_html(path, render(json.loads(dumps(data))))


def write_html(path: Path, text: str) -> int:
    """Write the report whole or not at all (a temporary file renamed over `path`), readable
    by its owner only, as plan files are: it names records and quotes their values."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = text.encode("utf-8")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return len(data)


# ---- the page ------------------------------------------------------------------------------


def _heading(data: dict[str, Any]) -> str:
    run = data["run"]
    funnel, agreement = data["funnel"], data["agreement"]
    after, before = agreement["after"], agreement["before"]
    people = sum(funnel["after"]["reconciled"].values()) if funnel["after"] else None
    tiles = [
        (_n(people), "people (reconciled)"),
        (_n(after["linked_people"]) if after else "–", "people in both systems"),
        (f"{_pct(before)} → {_pct(after)}", "of them at the same stage"),
        (_n(data["changes"]["changes"]), "fields written by the run"),
        (_n(data["stuck"]["open_rejects"]), "open rejects now"),
        (_n(data["stuck"]["duplicate_groups"]), "duplicate groups now"),
    ]
    status = run["status"] + (", dry run" if run["dry_run"] else "")
    lines = [
        "<header><h1>crmsync report</h1>",
        f'<p class="meta">Run {run["id"]} ({_e(run["kind"])}, {_e(status)}), started '
        f'{_e(_when(run["started_at"]))}; state DB <code>{_e(data["state_db"])}</code>; '
        f'written {_e(_when(data["generated_at"]))}.</p>',
    ]
    if run.get("message"):
        lines.append(f'<p class="meta">Run message: {_e(run["message"])}</p>')
    if data.get("totals_note"):
        lines.append(f'<p class="note">{_e(data["totals_note"])}</p>')
    lines.append("</header>")
    lines.append('<div class="tiles">' + "".join(
        f'<div class="tile"><b>{_e(value)}</b><span>{_e(label)}</span></div>'
        for value, label in tiles) + "</div>")
    return "\n".join(lines)


def _section(number: int, anchor: str, title: str, caption: str, figure: go.Figure,
             *after: str) -> str:
    chart = figure.to_html(full_html=False, include_plotlyjs=False, div_id=anchor,
                           config=CONFIG)
    return (f'<section id="{anchor.removeprefix("chart-")}"><h2>{number}. {_e(title)}</h2>'
            f'<p class="caption">{_e(caption)}</p>{chart}{"".join(after)}</section>')


# ---- 1. funnel ---------------------------------------------------------------------------


def _funnel_section(data: dict[str, Any]) -> str:
    funnel = data["funnel"]
    before, after = funnel["before"] or {}, funnel["after"] or {}
    sides = ("hubspot", "salesforce", "reconciled")

    def present(stage: str) -> bool:
        return any((side.get(name) or {}).get(stage) for side in (before, after)
                   for name in sides)

    stages = [s for s in funnel["stages"] if present(s)] or list(funnel["stages"][:7])
    figure = make_subplots(rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.04,
                           subplot_titles=[SYSTEM_NAMES[s] for s in sides])
    for column, name in enumerate(sides, start=1):
        was = [(before.get(name) or {}).get(s, 0) for s in stages]
        now = [(after.get(name) or {}).get(s, 0) for s in stages]
        has_before = before.get(name) is not None
        if has_before:
            figure.add_bar(
                y=stages, x=was, orientation="h", name="before the run",
                marker_color=COLORS["before"], legendgroup="before", showlegend=column == 1,
                hovertemplate=f"{SYSTEM_NAMES[name]} · %{{y}}<br>before: %{{x}}<extra></extra>",
                row=1, col=column)
        figure.add_bar(
            y=stages, x=now, orientation="h", name="after the run",
            marker_color=COLORS[name], legendgroup="after", showlegend=column == 1,
            customdata=[[b if has_before else "–", (n - b) if has_before else 0]
                        for b, n in zip(was, now, strict=True)],
            hovertemplate=(f"{SYSTEM_NAMES[name]} · %{{y}}<br>after: %{{x}}<br>before: "
                           "%{customdata[0]}<br>change: %{customdata[1]:+d}<extra></extra>"),
            row=1, col=column)
    figure.update_yaxes(autorange="reversed", row=1, col=1)
    figure.update_layout(**_layout(height=70 + 34 * len(stages)), barmode="group",
                         bargap=0.25)
    if not before and not after:
        _empty(figure, "this run kept no totals")
        return _section(1, "chart-funnel", "Funnel per system", "No totals were kept for this "
                        "run: see the note above.", figure)
    table = _table(
        ["stage", *(f"{SYSTEM_NAMES[s]} {when}" for s in sides for when in ("before", "after"))],
        [[stage, *(_n((side.get(s) or {}).get(stage)) if side.get(s) is not None else "–"
                   for s in sides for side in (before, after))] for stage in stages],
        numeric_from=1)
    caption = ("People at each lifecycle stage: per system, each person record by the stage it "
               "holds (before = as the run found them, after = as it left them); reconciled, "
               "each person once, by the stage crmsync decided.")
    return _section(1, "chart-funnel", "Funnel per system", caption, figure, table)


# ---- 2. agreement --------------------------------------------------------------------------


def _agreement_section(data: dict[str, Any]) -> str:
    before, after = data["agreement"]["before"], data["agreement"]["after"]
    sides = [(label, side) for label, side in (("before the run (as found)", before),
                                               ("after the run", after)) if side is not None]
    figure = make_subplots(rows=1, cols=max(1, len(sides)), horizontal_spacing=0.12,
                           subplot_titles=[label for label, _ in sides] or ["no totals"])
    caption = "No totals were kept for this run."
    if sides:
        stages = sides[0][1]["stages"]
        used = [i for i in range(len(stages))
                if any(side["matrix"][i][j] or side["matrix"][j][i]
                       for _, side in sides for j in range(len(stages)))] or [0]
        names = [stages[i] for i in used]
        top = max(max(side["matrix"][i][j] for i in used for j in used) for _, side in sides)
        for column, (_, side) in enumerate(sides, start=1):
            z = [[side["matrix"][i][j] for j in used] for i in used]
            figure.add_heatmap(
                z=z, x=names, y=names, zmin=0, zmax=max(top, 1), colorscale="Blues",
                showscale=column == len(sides), text=[[str(v) if v else "" for v in row]
                                                      for row in z],
                texttemplate="%{text}", xgap=1, ygap=1,
                hovertemplate=("HubSpot %{y} × Salesforce %{x}: %{z} people<extra></extra>"),
                row=1, col=column)
            figure.update_xaxes(title_text="Salesforce stage", row=1, col=column)
            figure.update_yaxes(title_text="HubSpot stage", autorange="reversed", row=1,
                                col=column)
        figure.update_layout(**_layout(height=140 + 34 * len(names)))
        caption = (f"People with a record in both systems, by the stage each system holds: "
                   f"the diagonal is where they agree. Same stage: {_pct(before)} before, "
                   f"{_pct(after)} after ({_n(after['agreeing'] if after else None)} of "
                   f"{_n(after['linked_people'] if after else None)}).")
    else:
        figure.update_layout(**_layout(height=160))
        _empty(figure, "this run kept no totals")
    return _section(2, "chart-agreement", "Where HubSpot and Salesforce agree", caption,
                    figure)


# ---- 3. organisations ----------------------------------------------------------------------


def _organizations_section(data: dict[str, Any]) -> str:
    rows = data["organizations"]
    runs = [f"run {row['run_id']}" for row in rows]
    figure = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                           subplot_titles=["ICP fit (organisations)",
                                           "Active triggers by type (organisations)",
                                           "Priority (people)"])
    for key, label, color in (("fit", "fit", "#3d8c40"), ("not_fit", "not fit", "#c9ced6"),
                              ("unknown_fit", "unknown", "#e0a200")):
        figure.add_bar(x=runs, y=[row["organizations"][key] for row in rows], name=label,
                       marker_color=color, legend="legend",
                       hovertemplate=f"%{{x}}: %{{y}} {label}<extra></extra>", row=1, col=1)
    types = sorted({t for row in rows for t in row["organizations"]["triggers"]})
    for kind in types:
        figure.add_bar(x=runs, y=[row["organizations"]["triggers"].get(kind, 0) for row in rows],
                       name=_e(kind), legend="legend2",
                       hovertemplate=f"%{{x}}: %{{y}} with an active {_e(kind)} trigger"
                                     "<extra></extra>", row=1, col=2)
    for priority, color in PRIORITY_COLORS.items():
        figure.add_bar(x=runs, y=[row["people_priority"].get(priority, 0) for row in rows],
                       name=priority, marker_color=color, legend="legend3",
                       hovertemplate=f"%{{x}}: %{{y}} people {priority}<extra></extra>",
                       row=1, col=3)
    figure.update_layout(**_layout(height=460), barmode="stack")
    # one legend under each chart: three charts, three sets of names
    figure.update_layout({name: {"orientation": "v", "x": x, "y": -0.08, "xanchor": "left",
                                 "yanchor": "top", "traceorder": "normal"}
                          for name, x in (("legend", 0.0), ("legend2", 0.36), ("legend3", 0.72))})
    figure.update_layout(margin={"b": 20 + 22 * max(3, len(types), len(PRIORITY_COLORS))})
    if not rows:
        _empty(figure, "no run kept totals yet")
    latest = rows[-1] if rows else None
    table = ""
    if latest:
        orgs = latest["organizations"]
        table = _table(
            ["run", "organisations", "fit", "not fit", "unknown", "active triggers by type",
             *PRIORITY_COLORS],
            [[row["run_id"], _n(row["organizations"]["total"]), _n(row["organizations"]["fit"]),
              _n(row["organizations"]["not_fit"]), _n(row["organizations"]["unknown_fit"]),
              ", ".join(f"{k} {v}" for k, v in sorted(row["organizations"]["triggers"].items()))
              or "–", *(_n(row["people_priority"].get(p, 0)) for p in PRIORITY_COLORS)]
             for row in rows[-TABLE_ROWS:]], numeric_from=1, text_columns=(5,))
        caption = (f"Organisations that fit the ICP, those with an active trigger, and people by "
                   f"priority, at the end of each run shown: now {_n(orgs['fit'])} of "
                   f"{_n(orgs['total'])} organisations fit.")
    else:
        caption = "Organisations and people by priority, at the end of each run: none kept yet."
    return _section(3, "chart-organizations", "Organisations and priority over the runs", caption,
                    figure, table)


# ---- 4. changes ------------------------------------------------------------------------------


def _changes_section(data: dict[str, Any]) -> str:
    changes = data["changes"]
    fields = changes["by_field"][:TABLE_ROWS][::-1]
    labels = [_e(f"{f['system']} {f['object']}.{f['field']}") for f in fields]
    figure = go.Figure()
    for key, name, color in (("plain", "changed", COLORS["change"]),
                             ("downgrades", "downgraded", COLORS["downgrade"]),
                             ("clears", "cleared", COLORS["clear"])):
        values = [f["changes"] - f["downgrades"] - f["clears"] if key == "plain" else f[key]
                  for f in fields]
        figure.add_bar(y=labels, x=values, orientation="h", name=name, marker_color=color,
                       hovertemplate=f"%{{y}}: %{{x}} {name}<extra></extra>")
    figure.update_layout(**_layout(height=110 + 26 * max(len(fields), 3)), barmode="stack")
    _whole_numbers(figure, "x", max((f["changes"] for f in fields), default=0))
    if not fields:
        _empty(figure, "this run wrote nothing" + (" (a dry run)" if data["run"]["dry_run"]
                                                   else ""))
    rows = [[_n(t["changes"]), t["system"], f"{t['object']}.{t['field']}", t["before"],
             t["after"], _marks(t)] for t in changes["transitions"][:TABLE_ROWS]]
    table = _table(["changes", "system", "field", "before", "after", ""], rows,
                   numeric_until=1, raw_columns=(5,),
                   more=len(changes["transitions"]) - TABLE_ROWS)
    not_written = changes["not_written"]
    caption = (f"Fields the run wrote, by system, object and field: {_n(changes['changes'])} "
               f"changes, {_n(changes['downgrades'])} downgrades (a stage or priority moved "
               f"down), {_n(changes['clears'])} clears; not written: "
               f"{_n(not_written['rejected'])} rejected, {_n(not_written['retry_later'])} "
               "left for a retry.")
    return _section(4, "chart-changes", "What the run changed", caption, figure, table)


def _marks(transition: dict[str, Any]) -> str:
    marks = []
    if transition["downgrade"]:
        marks.append('<span class="mark down">downgrade</span>')
    if transition["clear"]:
        marks.append('<span class="mark clear">clear</span>')
    return " ".join(marks)


# ---- 5. stuck --------------------------------------------------------------------------------


def _stuck_section(data: dict[str, Any]) -> str:
    stuck = data["stuck"]
    causes = stuck["causes"][:TABLE_ROWS][::-1]
    labels = [_e(_short(f"{c['stage']} · {c['field'] or '-'}: {c['reason']}", 70))
              for c in causes]
    figure = go.Figure()
    figure.add_bar(y=labels, x=[c["records"] for c in causes], orientation="h",
                   marker_color=COLORS["downgrade"], name="open rejects",
                   customdata=[[_e(_short(c["reason"], 300)), _e(_fix(c["fix"]) or "–")]
                               for c in causes],
                   hovertemplate=("%{x} record(s)<br>%{customdata[0]}<br>fix: %{customdata[1]}"
                                  "<extra></extra>"))
    figure.update_layout(**_layout(height=110 + 30 * max(len(causes), 2)), showlegend=False)
    _whole_numbers(figure, "x", max((c["records"] for c in causes), default=0))
    if not causes:
        _empty(figure, "no open rejects")
    table = _table(["records", "stage", "field", "reason", "fix in the mapping", "e.g."],
                   [[_n(c["records"]), c["stage"], c["field"] or "–", c["reason"],
                     _fix(c["fix"]) or "–", " ".join(c["examples"])]
                    for c in stuck["causes"][:TABLE_ROWS]],
                   numeric_until=1, text_columns=(3, 5), more=len(stuck["causes"]) - TABLE_ROWS)
    duplicates = _table(["entity", "system", "records", "linked by"],
                        [[d["entity"], d["system"], " ".join(d["records"]),
                          ", ".join(d["linked_by"])] for d in stuck["duplicates"]],
                        text_columns=(2,),
                        more=stuck["duplicate_groups"] - len(stuck["duplicates"]))
    caption = (f"Open rejects now, grouped by cause, with the mapping rule to fix where one "
               f"is to blame: {_n(stuck['open_rejects'])} records. They are retried on every "
               "run.")
    dup_title = (f"<h3>Duplicate groups: {_n(stuck['duplicate_groups'])}</h3>"
                 '<p class="caption">Two or more records of one system linked into one person or '
                 "organisation: crmsync writes each the same values; people should merge them."
                 "</p>")
    return _section(5, "chart-stuck", "What is stuck", caption, figure, table, dup_title,
                    duplicates if stuck["duplicates"] else "")


def _fix(fix: dict[str, str] | None) -> str | None:
    return f"{fix['file']}:{fix['line']} {fix['rule']}" if fix else None


# ---- 6. history --------------------------------------------------------------------------------


def _history_section(data: dict[str, Any]) -> str:
    history = data["history"]
    runs = [f"run {row['run_id']}" for row in history]
    systems = sorted({s for row in history for s in row["api_calls"]})
    figure = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=["duration (s), coloured by status",
                                           "records read and changes written",
                                           "API calls", "share of the daily API allocation used"])
    figure.add_bar(x=runs, y=[row["duration_seconds"] for row in history], name="duration",
                   marker_color=[STATUS_COLORS.get(row["status"], "#7f8c8d") for row in history],
                   customdata=[[row["kind"], row["status"]] for row in history],
                   hovertemplate="%{x} (%{customdata[0]}, %{customdata[1]}): %{y} s"
                                 "<extra></extra>", showlegend=False, row=1, col=1)
    figure.add_bar(x=runs, y=[row["records_read"] for row in history], name="records read",
                   marker_color="#7fa7c9", row=2, col=1,
                   hovertemplate="%{x}: %{y} records read<extra></extra>")
    figure.add_bar(x=runs, y=[row["changes_written"] for row in history],
                   name="changes written", marker_color=COLORS["reconciled"], row=2, col=1,
                   hovertemplate="%{x}: %{y} changes written<extra></extra>")
    for system in systems:
        color = COLORS.get(system, "#7f8c8d")
        name = SYSTEM_NAMES.get(system, system)
        figure.add_bar(x=runs, y=[row["api_calls"].get(system, 0) for row in history],
                       name=f"{name} calls", marker_color=color, row=3, col=1,
                       hovertemplate=f"%{{x}}: %{{y}} {name} calls<extra></extra>")
        figure.add_scatter(x=runs, y=[row["budget_share"].get(system) for row in history],
                           name=f"{name} allocation used", mode="lines+markers",
                           line_color=color, row=4, col=1,
                           hovertemplate=f"%{{x}}: %{{y:.4%}} of {name}'s daily allocation"
                                         "<extra></extra>")
    figure.update_yaxes(tickformat=".3~%", rangemode="tozero", row=4, col=1)
    figure.update_layout(**_layout(height=720), barmode="group")
    if not history:
        _empty(figure, "no runs")
    table = _table(
        ["run", "kind", "status", "started", "duration s", "read", "written",
         *(f"{SYSTEM_NAMES.get(s, s)} calls" for s in systems)],
        [[row["run_id"], row["kind"] + (" (dry)" if row["dry_run"] else ""), row["status"],
          _when(row["started_at"]), _n(row["duration_seconds"]), _n(row["records_read"]),
          _n(row["changes_written"]), *(_n(row["api_calls"].get(s)) for s in systems)]
         for row in history[-TABLE_ROWS:][::-1]], numeric_from=4)
    since = f"since {data['since']}" if data["since"] else "the latest runs"
    caption = (f"Each run ({since}, up to run {data['run']['id']}): how long it took, what it "
               "read and wrote, its API calls and the share of each CRM's daily API "
               "allocation used when it ended.")
    return _section(6, "chart-history", "Run history", caption, figure, table)


# ---- helpers --------------------------------------------------------------------------------


def _layout(*, height: int) -> dict[str, Any]:
    return {"height": height, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
            "template": "plotly_white", "font": {"size": 12},
            "legend": {"orientation": "h", "y": -0.12 if height < 300 else -0.06,
                       "traceorder": "normal"},
            "hoverlabel": {"align": "left"}}


def _whole_numbers(figure: go.Figure, axis: str, largest: int) -> None:
    """Counts are whole: no tick at 0.5 on a short axis."""
    settings = {"rangemode": "tozero", "tickformat": ",d"}
    if largest <= 10:
        settings.update(tick0=0, dtick=1)
    (figure.update_xaxes if axis == "x" else figure.update_yaxes)(**settings)


def _empty(figure: go.Figure, text: str) -> None:
    """A chart with nothing to draw still says so where the chart would be."""
    figure.add_annotation(text=_e(text), xref="paper", yref="paper", x=0.5, y=0.5,
                          showarrow=False, font={"size": 15, "color": "#5f6b7a"})
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(showlegend=False)


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], *,
           numeric_from: int | None = None, numeric_until: int = 0,
           text_columns: Sequence[int] = (), raw_columns: Sequence[int] = (),
           more: int = 0) -> str:
    """A table of numbers; every cell escaped but those in `raw_columns` (our own markup).
    No rows, no table: the chart above says there is nothing."""
    rows = list(rows)
    if not rows:
        return ""

    def numeric(column: int) -> bool:
        return column < numeric_until or (numeric_from is not None and column >= numeric_from
                                          and column not in text_columns)

    cells = ["<table><thead><tr>" + "".join(
        f'<th{" class=n" if numeric(i) else ""}>{_e(h)}</th>' for i, h in enumerate(head))
        + "</tr></thead><tbody>"]
    for row in rows:
        cells.append("<tr>" + "".join(
            f'<td class="{"n" if numeric(i) else "wrap" if i in text_columns else ""}">'
            f'{value if i in raw_columns else _e(value)}</td>' for i, value in enumerate(row))
            + "</tr>")
    cells.append("</tbody></table>")
    if more > 0:
        cells.append(f'<p class="more">… and {_n(more)} more: <code>crmsync report --json</code> '
                     "lists them all.</p>")
    return "".join(cells)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _n(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(side: dict[str, Any] | None) -> str:
    if not side or not side["linked_people"]:
        return "–"
    return f"{side['agreeing'] / side['linked_people']:.0%}"


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ") + (" UTC" if iso else "")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
