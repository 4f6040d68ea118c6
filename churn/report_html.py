"""HTML pages for the dashboard: the evaluation report, the training-data profile, the model card.

Self-contained HTML (charts as inline PNG from matplotlib, drawn by ``churn.plots``), so the ZenML
dashboard shows them as they are, with no external assets and no network.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

from churn.artifacts import FeatureLineage, GateVerdict, Registration
from churn.metrics import metric_rows
from churn.plots import evaluation_pngs, new_figure, png_bytes

STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:16px;color:#1f2933}
h1{font-size:20px;margin:0 0 12px} h2{font-size:16px;margin:18px 0 8px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #d9e2ec;padding:4px 8px;text-align:right}
th{background:#f0f4f8} td.l,th.l{text-align:left}
.pass{background:#e3f9e5;border:1px solid #31b237;padding:8px;border-radius:6px}
.fail{background:#ffe3e3;border:1px solid #e12d39;padding:8px;border-radius:6px}
.grid{display:flex;flex-wrap:wrap;gap:12px}
</style>"""


def _png(figure) -> str:
    return _img(png_bytes(figure))


def _img(png: bytes) -> str:
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def _table(rows, header) -> str:
    head = "".join(
        f'<th class="l">{html.escape(str(h))}</th>' if i == 0 else f"<th>{html.escape(str(h))}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="l">{html.escape(str(c))}</td>' if i == 0 else f"<td>{html.escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def evaluation_html(
    report: dict[str, Any], importances: dict[str, float] | None = None, charts: Mapping[str, bytes] | None = None
) -> str:
    """ROC and PR curves, confusion matrix, metrics table, feature importances and the gate verdict.

    ``charts``: the report's charts as PNG bytes (``churn.plots.evaluation_pngs``), when the caller has them already.
    """
    parts = [STYLE, "<h1>Evaluation report</h1>"]
    gate = report.get("gate")
    if gate:
        parts.append(
            f'<div class="{"pass" if gate["passed"] else "fail"}">'
            f"<b>Gate verdict:</b> {html.escape(gate['message'])}</div>"
        )
    parts.append(
        "<h2>Metrics (test set)</h2>"
        + _table(
            metric_rows(report)
            + [("test rows", report.get("n_test")), ("positive rate", f"{report.get('positive_rate', 0):.3f}")],
            ["metric", "value"],
        )
    )
    images = [_img(png) for png in (evaluation_pngs(report) if charts is None else charts).values()]  # ROC, PR, matrix
    if importances:
        ranked = sorted(importances.items(), key=lambda kv: kv[1])[-15:]
        figure = new_figure(4.5, 0.3 * len(ranked) + 1)
        axis = figure.axes[0]
        axis.barh([k for k, _ in ranked], [v for _, v in ranked])
        axis.set(title="Feature importances")
        images.append(_png(figure))
    parts.append('<div class="grid">' + "".join(images) + "</div>")
    if report.get("unseen_categories"):
        parts.append(
            "<h2>Categories unseen in training (mapped to the first class)</h2>"
            + _table([(k, ", ".join(v)) for k, v in report["unseen_categories"].items()], ["column", "values"])
        )
    return "\n".join(parts)


def data_profile_html(frame: pd.DataFrame, target: str, title: str = "Training data profile") -> str:
    """Per-column type, missing values, range or top categories, and churn rate by category."""
    rows = []
    for column in frame.columns:
        series = frame[column]
        missing = int(series.isna().sum())
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            summary = f"min {series.min():.4g} / median {series.median():.4g} / max {series.max():.4g}"
            kind = "numeric"
        else:
            top = series.value_counts().head(4)
            summary = ", ".join(f"{k} ({v})" for k, v in top.items())
            kind = f"categorical ({series.nunique()} values)"
        rows.append((column, kind, missing, summary))
    parts = [
        STYLE,
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(frame)} rows, {len(frame.columns)} columns; target <b>{html.escape(target)}</b> positive rate "
        f"{frame[target].mean():.3f}</p>"
        if target in frame
        else "",
        _table(rows, ["column", "type", "missing", "summary"]),
    ]
    if target in frame:
        for column in frame.columns:
            series = frame[column]
            if column != target and not pd.api.types.is_numeric_dtype(series) and series.nunique() <= 12:
                rates = frame.groupby(series.fillna("(missing)"))[target].agg(["mean", "size"]).sort_values("mean")
                parts.append(
                    f"<h2>{html.escape(target)} rate by {html.escape(column)}</h2>"
                    + _table(
                        [(k, f"{r['mean']:.3f}", int(r["size"])) for k, r in rates.iterrows()], [column, "rate", "rows"]
                    )
                )
    return "\n".join(parts)


def model_card_html(
    registration: Registration,
    report: dict[str, Any],
    verdict: GateVerdict,
    lineage: FeatureLineage,
    model_info: dict[str, Any],
    mlflow_tracking_uri: str | None = None,
) -> str:
    """What was trained on which data, its metrics, the gate, and links to MLflow and the registry."""
    rows = [
        ("feature group", lineage.feature_group),
        ("customer ids", f"{lineage.customer_id_start}-{lineage.customer_id_end}"),
        ("as of", lineage.as_of or "latest"),
        ("rows read", lineage.rows),
        ("data fingerprint", lineage.data_fingerprint),
        (
            "registry",
            f"{registration.model_name} v{registration.version} ({registration.approval_status})"
            if registration.registered
            else f"not registered: {registration.reason}",
        ),
        ("bundle sha256", registration.sha256 or "-"),
        ("MLflow run", registration.mlflow_run_id or "-"),
        ("trained in MLflow run", registration.trained_in_mlflow_run_id or "-"),
        ("ZenML run", registration.zenml_run_id or "-"),
    ]
    link = ""
    if mlflow_tracking_uri and registration.mlflow_run_id:
        link = (
            f"<p>Open in MLflow: <code>mlflow ui --backend-store-uri {html.escape(mlflow_tracking_uri)} "
            "--host 127.0.0.1</code>, "
            f"then Models &rarr; {html.escape(str(registration.model_name))} &rarr; version "
            f"{html.escape(str(registration.version))}, or run {html.escape(str(registration.mlflow_run_id))}</p>"
        )
    params = ", ".join(f"{k}={v}" for k, v in sorted((model_info.get("hyperparameters") or {}).items()))
    return "\n".join(
        [
            STYLE,
            f"<h1>Model card: {html.escape(str(model_info.get('model_type', 'model')))}</h1>",
            f'<div class="{"pass" if verdict.passed else "fail"}">{html.escape(verdict.message)}</div>',
            f"<p>Trained on {model_info.get('train_rows')} rows; {html.escape(params)}</p>",
            "<h2>Metrics</h2>" + _table(metric_rows(report), ["metric", "value"]),
            "<h2>Lineage</h2>" + _table(rows, ["what", "value"]),
            link,
            "<h2>Feature query</h2><pre>" + html.escape(lineage.sql) + "</pre>",
        ]
    )
