"""The evaluation report's charts: ROC curve, precision-recall curve and confusion matrix.

One drawing for every place that shows them: the MLflow run (``steps/evaluate.py`` logs them as
PNG images) and the dashboard's evaluation report (``churn/report_html.py``, through the report's
materializer). Figures are made with matplotlib's object API on its Agg canvas (no pyplot, no
display, no global figure state), so drawing is safe in a server or a step thread.

Drawing and PNG-encoding the three charts costs about a second of CPU, so it is done once per report:
:func:`evaluation_pngs` keeps the bytes on the report object it drew (an ``EvaluationReport``), and the
step's MLflow logging and the materializer's dashboard files reuse them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported when a chart is drawn, not with this module
    from matplotlib.figure import Figure

CHARTS = ("roc_curve", "precision_recall_curve", "confusion_matrix")


def new_figure(width: float = 4.0, height: float = 3.2) -> Figure:
    """An empty figure on the Agg canvas, with one axis (``figure.axes[0]``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    figure.subplots()
    return figure


def evaluation_figures(report: Mapping[str, Any]) -> dict[str, Figure]:
    """The report's charts by name (``CHARTS`` order), each drawn only when the report holds its data.

    Args:
        report: An evaluation report (``churn.evaluation.classification_metrics``): ``curves`` with
            ``roc`` (fpr, tpr) and ``pr`` (recall, precision), ``confusion_matrix`` (tn, fp, fn, tp),
            ``roc_auc`` and ``positive_rate``.

    Returns:
        ``{"roc_curve": Figure, "precision_recall_curve": Figure, "confusion_matrix": Figure}``;
        the curves are absent when the test set held a single class (no curves in the report).
    """
    figures: dict[str, Figure] = {}
    curves = report.get("curves") or {}
    if curves.get("roc"):
        figure = new_figure()
        axis = figure.axes[0]
        auc = report.get("roc_auc")
        axis.plot(curves["roc"]["fpr"], curves["roc"]["tpr"], label=f"ROC-AUC {auc:.3f}" if auc is not None else "ROC")
        axis.plot([0, 1], [0, 1], "--", color="grey")
        axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
        axis.legend(loc="lower right")
        figures["roc_curve"] = figure
    if curves.get("pr"):
        figure = new_figure()
        axis = figure.axes[0]
        axis.plot(curves["pr"]["recall"], curves["pr"]["precision"])
        axis.axhline(report.get("positive_rate", 0), ls="--", color="grey")
        axis.set(xlabel="recall", ylabel="precision", title="Precision-recall curve")
        figures["precision_recall_curve"] = figure
    matrix = report.get("confusion_matrix")
    if matrix:
        figure = new_figure(3.2, 3.0)
        axis = figure.axes[0]
        cells = [[matrix["tn"], matrix["fp"]], [matrix["fn"], matrix["tp"]]]
        axis.imshow(cells, cmap="Blues")
        for i in range(2):
            for j in range(2):
                axis.text(j, i, str(cells[i][j]), ha="center", va="center", fontsize=13)
        axis.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xticklabels=["pred 0", "pred 1"],
            yticklabels=["true 0", "true 1"],
            title="Confusion matrix",
        )
        figures["confusion_matrix"] = figure
    return figures


def png_bytes(figure: Figure, dpi: int = 90) -> bytes:
    """The figure as a PNG file's bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _drawn_from(report: Mapping[str, Any]) -> str:
    """What the charts are drawn from, as text (a report changed since it was drawn gets new charts)."""
    keys = ("curves", "confusion_matrix", "roc_auc", "positive_rate")
    return repr([report.get(key) for key in keys])


def evaluation_pngs(report: Mapping[str, Any]) -> dict[str, bytes]:
    """``evaluation_figures`` as PNG files' bytes, by chart name, drawn once per report.

    The bytes are kept on ``report`` when it takes attributes (``EvaluationReport`` does, a plain dict
    does not), with what they were drawn from: the next call for the same, unchanged report returns them.
    """
    drawn_from = _drawn_from(report)
    kept = getattr(report, "_chart_pngs", None)
    if kept is not None and kept[0] == drawn_from:
        return dict(kept[1])
    pngs = {name: png_bytes(figure) for name, figure in evaluation_figures(report).items()}
    try:
        report._chart_pngs = (drawn_from, pngs)  # type: ignore[attr-defined]
    except AttributeError:  # a plain dict: nothing to keep them on
        pass
    return dict(pngs)


def write_evaluation_pngs(report: Mapping[str, Any], directory: str | Path) -> list[Path]:
    """Write :func:`evaluation_pngs` as ``<directory>/<chart name>.png``; return the files written."""
    files = []
    for name, png in evaluation_pngs(report).items():
        path = Path(directory) / f"{name}.png"
        path.write_bytes(png)
        files.append(path)
    return files
