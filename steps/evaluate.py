"""EvaluateModel: the spec's metrics on the held-out test set (evaluation.json)."""

from __future__ import annotations

from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import log_metadata, step

from churn.bundle import ModelBundle
from churn.evaluation import EvaluationReport, check_quality
from churn.training import evaluate_bundle
from materializers.evaluation_materializer import EvaluationReportMaterializer
from stacks.contracts import EXPERIMENT_TRACKER
from steps.caching import TRAINING_CACHE


@step(experiment_tracker=EXPERIMENT_TRACKER, cache_policy=TRAINING_CACHE, output_materializers=EvaluationReportMaterializer)
def evaluate(
    model_bundle: ModelBundle, test_set: pd.DataFrame, gate_metric: Optional[str] = None, threshold: Optional[float] = None,
) -> Annotated[EvaluationReport, "evaluation_report"]:
    """Accuracy, precision, recall, F1, ROC-AUC, curves and the confusion matrix on the test split.

    With the gate's metric and threshold, the report also shows the verdict the gate step will reach.
    """
    report = EvaluationReport(evaluate_bundle(model_bundle, test_set))
    report["feature_importances"] = model_bundle.info.get("feature_importances") or {}
    if gate_metric is not None and threshold is not None:
        report["gate"] = check_quality(report, gate_metric, threshold).to_dict()
    scalar = {k: v for k, v in report.items() if isinstance(v, float)}
    mlflow.log_metrics(scalar)
    mlflow.log_dict({k: v for k, v in report.items() if k != "curves"}, "evaluation/evaluation.json")
    log_metadata(metadata={"metrics": scalar})
    print("Evaluation: " + ", ".join(f"{k}={v:.4f}" for k, v in scalar.items() if k != "positive_rate"))
    return report
