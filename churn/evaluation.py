"""Evaluation metrics (spec: evaluation.json) and the quality gate.

Which metrics there are, and how each is computed, shown and compared, is ``churn.metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from churn import metrics as registry
from churn.artifacts import GateVerdict


def classification_metrics(y_true: Sequence[int], proba: Sequence[float]) -> dict[str, Any]:
    """The spec's evaluation.json: every metric of ``churn.metrics`` (+ confusion matrix and curves).

    ``roc_auc`` is None when the test set holds a single class ("if applicable").

    Args:
        y_true: The 0/1 labels of the test rows.
        proba: The model's churn probability per row (predicted class: ``proba > 0.5``).

    Returns:
        The report: metric name -> value, ``confusion_matrix``, ``n_test``, ``positive_rate``, ``curves``.
    """
    from sklearn import metrics

    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    y_pred = (proba > 0.5).astype(int)
    both_classes = len(np.unique(y_true)) == 2
    tn, fp, fn, tp = metrics.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    curves = {}
    if both_classes:
        fpr, tpr, _ = metrics.roc_curve(y_true, proba)
        precision, recall, _ = metrics.precision_recall_curve(y_true, proba)
        curves = {
            "roc": {"fpr": _thin(fpr), "tpr": _thin(tpr)},
            "pr": {"recall": _thin(recall), "precision": _thin(precision)},
        }
    return {
        **registry.compute_all(y_true, y_pred, proba),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "n_test": int(len(y_true)),
        "positive_rate": float(y_true.mean()) if len(y_true) else 0.0,
        "curves": curves,
    }


def _thin(values: np.ndarray, points: int = 200) -> list:
    """At most ``points`` evenly spaced samples of a curve (keeps the report small)."""
    if len(values) > points:
        values = values[np.linspace(0, len(values) - 1, points).round().astype(int)]
    return [round(float(v), 6) for v in values]


def check_quality(metrics: Mapping[str, Any], metric: str, threshold: float) -> GateVerdict:
    """The quality gate: compare ``metrics[metric]`` with ``threshold`` in the metric's direction.

    Args:
        metrics: The evaluation report (metric name -> value); a missing or None value fails the gate.
        metric: The gate metric (a ``churn.metrics`` entry with ``gate=True``).
        threshold: The value it must reach (``>=`` when higher is better, else ``<=``).

    Returns:
        The verdict.

    Raises:
        ValueError: ``metric`` is not a gate metric (the message lists the choices).
    """
    spec = registry.gate_metric(metric)
    value = metrics.get(metric)
    value = None if value is None else float(value)
    return GateVerdict(
        passed=spec.passes(value, threshold),
        metric=metric,
        value=value,
        threshold=threshold,
        higher_is_better=spec.higher_is_better,
    )


class EvaluationReport(dict):
    """The evaluation report (the spec's evaluation.json keys and more) as its own artifact type.

    A plain dict to every consumer; its own type so its materializer can draw it. EvaluateModel
    puts the gate's verdict under ``"gate"`` (the one place it is computed); CheckModelQuality
    publishes it (:meth:`verdict`).
    """

    def verdict(self) -> GateVerdict:
        """The gate verdict the report carries.

        Raises:
            ValueError: The report was made without the gate's metric and threshold.
        """
        if not self.get("gate"):
            raise ValueError("the evaluation report carries no gate verdict (evaluated without gate_metric/threshold)")
        return GateVerdict.model_validate(self["gate"])
