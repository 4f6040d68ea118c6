"""Objectives: the spec's objective_metric_name as a score we compute and as a FLAML metric."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from churn.automl.settings import AutoMLError


def positive_proba(estimator: Any, X: np.ndarray) -> np.ndarray:
    proba = estimator.predict_proba(X)
    return proba[:, list(estimator.classes_).index(1)] if hasattr(estimator, "classes_") else proba[:, 1]


def _custom_metric(score: Callable[[np.ndarray, np.ndarray], float], name: str) -> Callable:
    """A FLAML metric function (loss = 1 - score) for a metric FLAML has no name for."""

    def metric(X_val, y_val, estimator, labels, X_train, y_train, weight_val=None, weight_train=None, *args, **kwargs):
        y_pred = (positive_proba(estimator, X_val) > 0.5).astype(int)
        value = float(score(np.asarray(y_val, dtype=int), y_pred))
        return 1.0 - value, {name: value}

    metric.__name__ = f"flaml_{name}"
    return metric


def flaml_metric(objective: str) -> Any:
    """The FLAML metric (a name, or a function) that optimizes the spec's objective."""
    from sklearn import metrics

    builtin = {"Accuracy": "accuracy", "AUC": "roc_auc", "F1": "f1", "LogLoss": "log_loss"}
    if objective in builtin:
        return builtin[objective]
    custom = {
        "Precision": lambda y, p: metrics.precision_score(y, p, zero_division=0),
        "Recall": lambda y, p: metrics.recall_score(y, p, zero_division=0),
        "BalancedAccuracy": metrics.balanced_accuracy_score,
    }
    if objective not in custom:
        raise AutoMLError(f"objective {objective!r} has no FLAML metric")
    return _custom_metric(custom[objective], objective)


def objective_score(objective: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    """The objective's value (higher is better; LogLoss is negated) for positive-class probabilities."""
    from sklearn import metrics

    y_true = np.asarray(y_true, dtype=int)
    y_pred = (np.asarray(proba) > 0.5).astype(int)
    if objective == "AUC":
        return float(metrics.roc_auc_score(y_true, proba))
    if objective == "LogLoss":
        return -float(metrics.log_loss(y_true, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1]))
    scorer = {
        "Accuracy": metrics.accuracy_score,
        "F1": lambda y, p: metrics.f1_score(y, p, zero_division=0),
        "Precision": lambda y, p: metrics.precision_score(y, p, zero_division=0),
        "Recall": lambda y, p: metrics.recall_score(y, p, zero_division=0),
        "BalancedAccuracy": metrics.balanced_accuracy_score,
    }[objective]
    return float(scorer(y_true, y_pred))


def loss_to_score(objective: str, loss: float) -> float | None:
    """FLAML's loss (1 - score, or LogLoss) as the objective's score (higher is better)."""
    if loss is None or not np.isfinite(loss):
        return None
    return round(-float(loss) if objective == "LogLoss" else 1.0 - float(loss), 6)
