"""`--html REPORT.html`: the report with its charts, drawn by Plotly, whose JavaScript is
written into the file (`include_plotlyjs=True`), so it opens offline."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from . import text

CHARTS = ("throughput", "latency", "instances")


def _chart(title: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=title,
        xaxis_title="seconds into the run",
        yaxis_title=y_title,
        height=340,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        template="plotly_white",
    )
    return fig


def figures(reports: Sequence[dict[str, Any]]) -> dict[str, go.Figure]:
    throughput = _chart("Throughput", "answers per second")
    latency = _chart("Latency (by second of answer)", "ms")
    instances = _chart("Instances running", "instances")
    for r in reports:
        tl, name = r["timeline"], r["label"]
        throughput.add_trace(
            go.Scatter(x=tl["t"], y=tl["rps"], name=f"{name}: all", mode="lines+markers")
        )
        throughput.add_trace(
            go.Scatter(
                x=tl["t"],
                y=tl["errors"],
                name=f"{name}: 5xx / none",
                mode="lines",
                line={"dash": "dot"},
            )
        )
        latency.add_trace(
            go.Scatter(x=tl["t"], y=tl["p50_ms"], name=f"{name}: p50", mode="lines+markers")
        )
        latency.add_trace(
            go.Scatter(
                x=tl["t"], y=tl["p99_ms"], name=f"{name}: p99", mode="lines", line={"dash": "dash"}
            )
        )
        instances.add_trace(
            go.Scatter(
                x=tl["instances_t"],
                y=tl["instances"],
                name=name,
                mode="lines+markers",
                line={"shape": "hv"},
            )
        )
    return {"throughput": throughput, "latency": latency, "instances": instances}


def document(reports: Sequence[dict[str, Any]]) -> str:
    parts = []
    for k, (key, fig) in enumerate(figures(reports).items()):
        body = fig.to_html(full_html=False, include_plotlyjs=k == 0, div_id=f"chart-{key}")
        parts.append(f'<section class="chart" id="{key}">{body}</section>')
    summary = [f"<pre>{html.escape(text.one(r))}</pre>" for r in reports]
    if len(reports) > 1:
        summary.insert(0, f"<pre>{html.escape(text.side_by_side(reports))}</pre>")
    title = "emu load: " + " vs ".join(r["label"] for r in reports)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}pre{font-size:12px;background:#f6f6f6;"
        "padding:1em;overflow-x:auto}.chart{margin:1em 0}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>" + "".join(parts) + "".join(summary) + "</body></html>"
    )


def write(path: Path, reports: Sequence[dict[str, Any]]) -> None:
    path.write_text(document(reports))
