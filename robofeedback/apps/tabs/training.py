"""The Training tab: the training runs' status table, the latest run's curves and its latest evaluation video."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

import gradio as gr

from robofeedback.apps.charts import line_chart
from robofeedback.apps.shell import Shell

COLUMNS = (
    "run",
    "env",
    "state",
    "steps",
    "success",
    "env return",
    "labels",
    "pending",
    "reward agrees",
    "decided at (HERON)",
)


def _run_charts(status: dict[str, Any]) -> str:
    """A run's curves as charts: success rate and env return against env steps, and the learned reward's agreement
    with each annotator against the labels it has learned from (HTML with inline SVG; empty without curves)."""
    curve, agreement = status.get("curve") or [], status.get("agreement_curve") or []
    if not curve and not agreement:
        return ""
    charts = []
    if any(point[1] is not None for point in curve):
        charts.append(line_chart({"success": [(p[0], p[1]) for p in curve]}, "success rate", "env steps", (0, 1)))
    if curve:
        charts.append(
            line_chart({"env return": [(p[0], p[2]) for p in curve]}, "return (the env's reward)", "env steps")
        )
    if agreement:
        sources = sorted({k for point in agreement for k in point if k != "labels"})
        series = {s: [(p["labels"], p[s]) for p in agreement if s in p] for s in sources}
        charts.append(line_chart(series, "learned reward agrees with", "labels", (0, 1)))
    return (
        f"<p>Run <code>{html.escape(status['run'])}</code></p><div class='rf-charts' "
        f"style='display:flex;flex-wrap:wrap;gap:8px'>{''.join(charts)}</div>"
    )


def _runs_table(rows: list[dict[str, Any]]) -> str:
    """The runs' status as an HTML table, one row per run."""
    cells = []
    for row in rows:
        evaluation = row.get("eval") or {}
        success = evaluation.get("success_rate")
        cells.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    row["run"],
                    row.get("env", ""),
                    row.get("state", ""),
                    f"{row.get('steps', 0)} / {row.get('total_steps', '?')}",
                    "" if success is None else f"{success:.2f}",
                    "" if not evaluation else f"{evaluation.get('mean_env_return', 0):.1f}",
                    f"{row.get('labels', 0)}" + (f" / {row['budget']}" if row.get("budget") else ""),
                    row.get("pending", 0),
                    ", ".join(f"{k} {v:.0%}" for k, v in (row.get("agreement") or {}).items()),
                    ", ".join(f"{k} {v:.2f}" for k, v in (row.get("levels") or {}).items()),
                )
            )
            + "</tr>"
        )
    header = "".join(f"<th>{h}</th>" for h in COLUMNS)
    return f'<div class="rf-runs"><table><tr>{header}</tr>{"".join(cells)}</table></div>'


def _eval_video(rows: list[dict[str, Any]]) -> str:
    """The latest evaluation video of the first run that has one (HTML; empty when none has)."""
    latest = next((r for r in rows if r.get("eval_video")), None)
    if latest is None:
        return ""
    url = f"/media/run/{quote(latest['run'], safe='')}/eval?s={latest.get('eval_steps')}"
    return (
        f"<p>Latest evaluation of <code>{html.escape(latest['run'])}</code> at step "
        f"{latest.get('eval_steps')}:</p><div class='rf-videos' style='grid-template-columns: 1fr 1fr'>"
        f"<figure><video src='{url}' autoplay loop muted playsinline></video></figure></div>"
    )


def build_tab(shell: Shell) -> None:
    """The Training tab: its components and the ``/training`` endpoint, which its timer polls and which runs when
    the app loads and when the tab is selected."""
    service = shell.service
    with gr.Tab("Training", id="training") as train_tab:
        train_table = gr.HTML(elem_id="train-table")
        train_charts = gr.HTML(elem_id="train-charts")
        train_video = gr.HTML(elem_id="train-video")
        train_timer = gr.Timer(3.0)

    def training():
        rows = service.training()
        if not rows:
            return "<p>No training runs in this store yet.</p>", "", ""
        return _runs_table(rows), _run_charts(rows[0]), _eval_video(rows)

    outputs = [train_table, train_charts, train_video]
    train_timer.tick(training, None, outputs, api_name="training", show_progress="hidden")
    train_tab.select(training, None, outputs, api_visibility="private")
    shell.blocks.load(training, None, outputs, api_visibility="private")
