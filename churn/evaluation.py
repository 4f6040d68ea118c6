"""Evaluation metrics (spec: evaluation.json) and the quality gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Sequence

import numpy as np

HIGHER_IS_BETTER = ("accuracy", "precision", "recall", "f1_score", "roc_auc")


def classification_metrics(y_true: Sequence[int], proba: Sequence[float]) -> Dict[str, Any]:
    """The spec's evaluation.json: accuracy, precision, recall, f1_score, roc_auc (+ confusion matrix).

    ``roc_auc`` is None when the test set holds a single class ("if applicable").
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
        curves = {"roc": {"fpr": _thin(fpr), "tpr": _thin(tpr)},
                  "pr": {"recall": _thin(recall), "precision": _thin(precision)}}
    return {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "precision": float(metrics.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(metrics.recall_score(y_true, y_pred, zero_division=0)),
        "f1_score": float(metrics.f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(metrics.roc_auc_score(y_true, proba)) if both_classes else None,
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


@dataclass(frozen=True)
class GateVerdict:
    """Outcome of CheckModelQuality: register and deploy only when ``passed``."""

    passed: bool
    metric: str
    value: float | None
    threshold: float

    @property
    def message(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.4f}"
        if self.passed:
            return f"quality gate passed: {self.metric} {shown} >= {self.threshold}"
        return (
            f"quality gate FAILED: {self.metric} {shown} < {self.threshold}; "
            "the model is not registered and not deployed"
        )

    def to_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "message": self.message}


def check_quality(metrics: Dict[str, Any], metric: str, threshold: float) -> GateVerdict:
    """Compare ``metrics[metric]`` with ``threshold`` (>=); a missing value fails the gate."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"gate metric must be one of {', '.join(HIGHER_IS_BETTER)}, got {metric!r}")
    value = metrics.get(metric)
    passed = value is not None and float(value) >= threshold
    return GateVerdict(passed=passed, metric=metric, value=None if value is None else float(value), threshold=threshold)


class EvaluationReport(dict):
    """The evaluation report (the spec's evaluation.json keys and more) as its own artifact type.

    A plain dict to every consumer; its own type so its materializer can draw it.
    """
