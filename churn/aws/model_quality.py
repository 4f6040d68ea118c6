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

Standard deviations (``bootstrap_standard_deviations``): a seeded bootstrap on the test set. Model
Monitor itself takes five 80 % subsamples; here ``resamples`` (default 300) resamples of the test
rows with replacement, each metric computed on each, their standard deviation (ddof 1) reported.
The threshold metrics depend on a resample only through its four confusion-matrix counts, so a
resample is drawn as those counts (multinomial on the cell frequencies: the same distribution as
resampling rows); AUC is computed per resample on the rows' (score, label) cells the same way,
in chunks. Both are plain numpy, a few milliseconds for a few thousand rows. A metric undefined in
a resample (e.g. precision with no positive prediction) counts as 0 there, as in the report
(``zero_division=0``); AUC on a one-class resample is left out.

No boto here: plain JSON from our evaluation report (``churn.evaluation.classification_metrics``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

VERSION = 0.0
SECTION = "binary_classification_metrics"
NAN = "NaN"  # Model Monitor's unknown standard deviation
RESAMPLES = 300
SEED = 0
CHUNK = 50  # AUC resamples per numpy batch
# Model Monitor's metric name -> our report's (churn.metrics), where we have one
REPORT_NAMES = {
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "f1_score",
    "auc": "roc_auc",
}
THRESHOLD_METRICS = (
    "recall",
    "precision",
    "accuracy",
    "recall_best_constant_classifier",
    "precision_best_constant_classifier",
    "accuracy_best_constant_classifier",
    "true_positive_rate",
    "true_negative_rate",
    "false_positive_rate",
    "false_negative_rate",
    "f0_5",
    "f1",
    "f2",
    "f0_5_best_constant_classifier",
    "f1_best_constant_classifier",
    "f2_best_constant_classifier",
)
SCALAR_METRICS = (*THRESHOLD_METRICS, "auc")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _f_beta(precision: np.ndarray, recall: np.ndarray, beta: float) -> np.ndarray:
    b2 = beta * beta
    return _ratio((1 + b2) * precision * recall, b2 * precision + recall)


def threshold_metrics(tn: Any, fp: Any, fn: Any, tp: Any) -> dict[str, np.ndarray]:
    """Every threshold metric of the document from confusion-matrix counts (scalars or arrays, elementwise)."""
    tn, fp, fn, tp = (np.asarray(x, dtype=float) for x in (tn, fp, fn, tp))
    positives, negatives = tp + fn, tn + fp
    total = positives + negatives
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, positives)
    positive_rate = _ratio(positives, total)
    constant_recall = np.where(positives > 0, 1.0, 0.0)  # always "1": every positive is found
    out = {
        "recall": recall,
        "precision": precision,
        "accuracy": _ratio(tp + tn, total),
        "recall_best_constant_classifier": constant_recall,
        "precision_best_constant_classifier": positive_rate,
        "accuracy_best_constant_classifier": positive_rate,
        "true_positive_rate": recall,
        "true_negative_rate": _ratio(tn, negatives),
        "false_positive_rate": _ratio(fp, negatives),
        "false_negative_rate": _ratio(fn, positives),
    }
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        out[name] = _f_beta(precision, recall, beta)
        out[f"{name}_best_constant_classifier"] = _f_beta(positive_rate, constant_recall, beta)
    return out


def bootstrap_standard_deviations(
    y_true: Sequence[int], proba: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED, threshold: float = 0.5
) -> dict[str, float | None]:
    """Standard deviation of each scalar metric of the document over a seeded bootstrap of the test rows.

    Args:
        y_true: The 0/1 labels of the test rows.
        proba: The churn probability per row (predicted class: ``proba > threshold``).
        resamples: How many bootstrap resamples (at least 2).
        seed: The generator's seed: the same rows give the same numbers.
        threshold: The decision threshold (the report's is 0.5).

    Returns:
        Model Monitor metric name -> standard deviation; None where it cannot be estimated (fewer than two
        rows, or AUC with fewer than two resamples holding both classes).

    Raises:
        ValueError: labels and probabilities differ in length, a label is not 0/1, or ``resamples`` < 2.
    """
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(proba, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels and probabilities must be two equally long lists, got {y.shape} and {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if resamples < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples}")
    n = len(y)
    if n < 2:
        return dict.fromkeys(SCALAR_METRICS)
    rng = np.random.default_rng(seed)
    predicted = p > threshold
    cells = np.array(
        [
            np.sum(~predicted & (y == 0)),
            np.sum(predicted & (y == 0)),
            np.sum(~predicted & (y == 1)),
            np.sum(predicted & (y == 1)),
        ]
    )
    counts = rng.multinomial(n, cells / n, size=resamples)  # tn, fp, fn, tp per resample
    spread: dict[str, float | None] = {
        name: float(np.std(values, ddof=1)) for name, values in threshold_metrics(*counts.T).items()
    }
    spread["auc"] = _auc_spread(y, p, resamples, rng)
    return spread


def _auc_spread(y: np.ndarray, p: np.ndarray, resamples: int, rng: np.random.Generator) -> float | None:
    """AUC's bootstrap standard deviation: rows grouped into (score, label) cells, each resample a multinomial draw."""
    scores, inverse = np.unique(p, return_inverse=True)
    cells = np.zeros((len(scores), 2))
    np.add.at(cells, (inverse, y), 1)
    flat = cells.ravel() / len(y)  # [score0 neg, score0 pos, score1 neg, ...], scores ascending
    values = []
    for start in range(0, resamples, CHUNK):
        drawn = rng.multinomial(len(y), flat, size=min(CHUNK, resamples - start)).reshape(-1, len(scores), 2)
        negatives, positives = drawn[..., 0].astype(float), drawn[..., 1].astype(float)
        below = np.cumsum(negatives, axis=1) - negatives  # negatives with a lower score
        wins = np.sum(positives * (below + 0.5 * negatives), axis=1)  # ties count half, as roc_auc_score
        pairs = positives.sum(axis=1) * negatives.sum(axis=1)
        values.extend((wins[pairs > 0] / pairs[pairs > 0]).tolist())
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


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


def model_quality_statistics(
    y_true: Sequence[int], proba: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, Any]:
    """The document for a test set: our evaluation report plus its bootstrap standard deviations.

    Args:
        y_true: The 0/1 labels of the test rows.
        proba: The churn probability per row.
        resamples: Bootstrap resamples for the standard deviations.
        seed: The bootstrap's seed.

    Returns:
        ``model_quality_document`` of ``classification_metrics(y_true, proba)`` with standard deviations.
    """
    from churn.evaluation import classification_metrics

    report = classification_metrics(y_true, proba)
    report["standard_deviations"] = bootstrap_standard_deviations(y_true, proba, resamples, seed)
    return model_quality_document(report)


def _is_number(value: Any) -> bool:
    try:
        return value is not None and not math.isnan(float(value))
    except (TypeError, ValueError):
        return False
