"""The one registry of evaluation metrics: what is computed, how it is shown, what can gate.

Every place that names metrics reads :data:`METRICS`: the evaluation report
(``churn.evaluation.classification_metrics`` computes each entry), config validation
(``gate_metric`` must be a gate metric here), the quality gate (the direction of the
comparison), the report and model card tables (``churn.report_html``) and the CLI summary
(``run.py``). Adding a metric is adding one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# (y_true, y_pred, proba) -> the value, or None when it does not apply (e.g. ROC-AUC on one class)
Compute = Callable[[np.ndarray, np.ndarray, np.ndarray], float | None]


@dataclass(frozen=True)
class Metric:
    """One metric of the evaluation report.

    Attributes:
        name: Its key in the report (evaluation.json), in MLflow and in the config's ``gate_metric``.
        compute: ``(y_true, y_pred, proba) -> value`` (None: not applicable to this test set).
        higher_is_better: The gate passes at ``value >= threshold`` (else ``value <= threshold``).
        fmt: Format spec for showing the value (report, model card, CLI).
        gate: Whether the quality gate may use it (``gate_metric``).
    """

    name: str
    compute: Compute
    higher_is_better: bool = True
    fmt: str = ".4f"
    gate: bool = True

    def show(self, value: float | None) -> str:
        """The value as the report and the CLI show it ("n/a" when not applicable)."""
        return "n/a" if value is None else format(value, self.fmt)

    def passes(self, value: float | None, threshold: float) -> bool:
        """Whether ``value`` meets ``threshold`` in this metric's direction; a missing value never does."""
        if value is None:
            return False
        return value >= threshold if self.higher_is_better else value <= threshold


def _sk(name: str, **kwargs: Any) -> Compute:
    def compute(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> float:
        from sklearn import metrics

        return float(getattr(metrics, name)(y_true, y_pred, **kwargs))

    return compute


def _roc_auc(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> float | None:
    from sklearn import metrics

    return float(metrics.roc_auc_score(y_true, proba)) if len(np.unique(y_true)) == 2 else None


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", _sk("accuracy_score")),
    Metric("precision", _sk("precision_score", zero_division=0)),
    Metric("recall", _sk("recall_score", zero_division=0)),
    Metric("f1_score", _sk("f1_score", zero_division=0)),
    Metric("roc_auc", _roc_auc),
)


def all_metrics() -> tuple[Metric, ...]:
    """The registry, read at call time (so an added entry is seen everywhere)."""
    return METRICS


def gate_metric_names() -> list[str]:
    """Names the config's ``gate_metric`` may take."""
    return [m.name for m in all_metrics() if m.gate]


def gate_metric(name: str) -> Metric:
    """The gate metric called ``name``.

    Raises:
        ValueError: ``name`` is not a gate metric of the registry (the message lists the choices).
    """
    for metric in all_metrics():
        if metric.name == name and metric.gate:
            return metric
    raise ValueError(f"gate metric must be one of {', '.join(gate_metric_names())}, got {name!r}")


def compute_all(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    """Every registered metric on one test set, by name."""
    return {m.name: m.compute(y_true, y_pred, proba) for m in all_metrics()}


def metric_rows(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, shown value) of every registered metric in ``report``: the report's and model card's table."""
    return [(m.name, m.show(report.get(m.name))) for m in all_metrics()]


def summary_line(report: Mapping[str, Any]) -> str:
    """``accuracy=0.8123  precision=...`` over the metrics the report has a value for (the CLI summary)."""
    return "  ".join(f"{m.name}={m.show(report[m.name])}" for m in all_metrics() if report.get(m.name) is not None)
