"""EvaluateModel: the spec's metrics on the held-out test set (evaluation.json)."""

from __future__ import annotations

from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, step

from churn.bundle import ModelBundle
from churn.training import evaluate_bundle
from stacks.local import EXPERIMENT_TRACKER


@step(experiment_tracker=EXPERIMENT_TRACKER)
def evaluate(model_bundle: ModelBundle, test_set: pd.DataFrame) -> Annotated[dict, "evaluation_report"]:
    """Accuracy, precision, recall, F1, ROC-AUC and the confusion matrix on the test split."""
    report = evaluate_bundle(model_bundle, test_set)
    scalar = {k: v for k, v in report.items() if isinstance(v, float)}
    mlflow.log_metrics(scalar)
    mlflow.log_dict(report, "evaluation/evaluation.json")
    log_metadata(metadata={"metrics": scalar})
    print("Evaluation: " + ", ".join(f"{k}={v:.4f}" for k, v in scalar.items() if k != "positive_rate"))
    return report
