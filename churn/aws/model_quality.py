"""A model package's ModelQuality statistics in the format SageMaker Studio reads.

Studio's model-quality view of a model package version reads ``ModelMetrics.ModelQuality.Statistics``
as SageMaker Model Monitor's model-quality document (docs: "Model quality metrics and Amazon
CloudWatch monitoring", binary classification)::

    {"version": 0.0,
     "binary_classification_metrics": {
        "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}},   # actual -> predicted
        "recall": {"value": v, "standard_deviation": s}, "precision": ..., "accuracy": ...,
        "true_positive_rate": ..., "true_negative_rate": ..., "false_positive_rate": ..., "false_negative_rate": ...,
        "auc": ..., "f0_5": ..., "f1": ..., "f2": ...,
        "recall_best_constant_classifier": ..., "precision_best_constant_classifier": ...,
        "accuracy_best_constant_classifier": ..., "f0_5_best_constant_classifier": ..., (f1_, f2_)
        "receiver_operating_characteristic_curve": {"false_positive_rates": [...], "true_positive_rates": [...]},
        "precision_recall_curve": {"precisions": [...], "recalls": [...]}}}

The documented example fixes the conventions used here: the confusion matrix is keyed by the
actual label, then the predicted one; the "best constant classifier" predicts the positive class
for every row (its recall is 1, its precision and accuracy the positive rate); a standard deviation
that is not known is the string ``"NaN"``.

Standard deviations: the report's ``standard_deviations``
(``churn.evaluation.bootstrap_standard_deviations``: a seeded bootstrap on the test set, 300 resamples
of the rows with replacement; Model Monitor itself takes five 80 % subsamples), keyed by these names.

No boto here: plain JSON from our evaluation report (``churn.evaluation.classification_metrics``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from churn.evaluation import threshold_metrics

VERSION = 0.0
SECTION = "binary_classification_metrics"
NAN = "NaN"  # Model Monitor's unknown standard deviation
# Model Monitor's metric name -> our report's (churn.metrics), where we have one
REPORT_NAMES = {
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "f1_score",
    "auc": "roc_auc",
}


def _entry(value: Any, deviation: Any) -> dict[str, Any]:
    def number(x: Any) -> Any:
        return NAN if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    return {"value": number(value), "standard_deviation": number(deviation)}


def model_quality_document(report: Mapping[str, Any]) -> dict[str, Any]:
    """The Model Monitor model-quality document (``ModelQuality.Statistics``) for an evaluation report.

    Args:
        report: ``churn.evaluation.classification_metrics``'s report, optionally with ``standard_deviations``
            (``bootstrap_standard_deviations``). With a ``confusion_matrix`` every threshold metric is computed
            from it; without (e.g. only the ``metric_*`` values a registration carries) the report's own
            accuracy, precision, recall, f1_score and roc_auc are used and the rest left out. Curves come from
            ``curves`` when present.

    Returns:
        ``{"version": 0.0, "binary_classification_metrics": {...}}``; unknown standard deviations are "NaN".

    Raises:
        ValueError: the report holds none of the metrics (nothing Studio could show).
    """
    deviations = report.get("standard_deviations") or {}
    metrics: dict[str, Any] = {}
    matrix = report.get("confusion_matrix")
    if isinstance(matrix, Mapping) and {"tn", "fp", "fn", "tp"} <= set(matrix):
        counts = {k: int(matrix[k]) for k in ("tn", "fp", "fn", "tp")}
        metrics["confusion_matrix"] = {
            "0": {"0": counts["tn"], "1": counts["fp"]},
            "1": {"0": counts["fn"], "1": counts["tp"]},
        }
        for name, value in threshold_metrics(**counts).items():
            metrics[name] = _entry(value, deviations.get(name))
    else:
        for name, ours in REPORT_NAMES.items():
            if name != "auc" and _is_number(report.get(ours)):
                metrics[name] = _entry(report[ours], deviations.get(name))
    if _is_number(report.get("roc_auc")):
        metrics["auc"] = _entry(report["roc_auc"], deviations.get("auc"))
    if not metrics:
        raise ValueError(
            "the evaluation report holds no metric Studio can show (accuracy, precision, recall, f1_score, "
            "roc_auc or a confusion_matrix)"
        )
    curves = report.get("curves") or {}
    roc, pr = curves.get("roc") or {}, curves.get("pr") or {}
    if roc.get("fpr") and roc.get("tpr"):
        metrics["receiver_operating_characteristic_curve"] = {
            "false_positive_rates": [float(v) for v in roc["fpr"]],
            "true_positive_rates": [float(v) for v in roc["tpr"]],
        }
    if pr.get("precision") and pr.get("recall"):  # recall ascending, as in the documented example
        metrics["precision_recall_curve"] = {
            "precisions": [float(v) for v in reversed(pr["precision"])],
            "recalls": [float(v) for v in reversed(pr["recall"])],
        }
    return {"version": VERSION, SECTION: metrics}


def model_quality_statistics(y_true: Sequence[int], proba: Sequence[float]) -> dict[str, Any]:
    """The document for a test set: ``model_quality_document`` of its evaluation report.

    Args:
        y_true: The 0/1 labels of the test rows.
        proba: The churn probability per row.

    Returns:
        ``model_quality_document(classification_metrics(y_true, proba))`` (with its bootstrap deviations).
    """
    from churn.evaluation import classification_metrics

    return model_quality_document(classification_metrics(y_true, proba))


def _is_number(value: Any) -> bool:
    try:
        return value is not None and not math.isnan(float(value))
    except (TypeError, ValueError):
        return False
