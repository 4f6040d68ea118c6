"""EvaluateModel: the spec's metrics on the held-out test set (evaluation.json), and the gate's verdict on them."""

from __future__ import annotations

import tempfile
from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, step

from churn.artifacts import ChampionScore
from churn.bundle import ModelBundle
from churn.evaluation import EvaluationReport, check_quality
from churn.metrics import summary_line
from churn.plots import write_evaluation_pngs
from churn.training import evaluate_bundle
from materializers.evaluation_materializer import EvaluationReportMaterializer
from stacks.contracts import EXPERIMENT_TRACKER
from steps.caching import TRAINING_CACHE


@step(
    experiment_tracker=EXPERIMENT_TRACKER,
    cache_policy=TRAINING_CACHE,
    output_materializers=EvaluationReportMaterializer,
)
def evaluate(
    model_bundle: ModelBundle,
    test_set: pd.DataFrame,
    gate_metric: str,
    threshold: float,
    champion: ChampionScore | None = None,
) -> Annotated[EvaluationReport, "evaluation_report"]:
    """The metrics of ``churn.metrics``, curves and the confusion matrix on the test split, with the gate's verdict.

    The verdict is computed here, once (``churn.evaluation.check_quality``), so the report shows it;
    CheckModelQuality publishes it.

    Args:
        model_bundle: The trained model with its preprocessing.
        test_set: The held-out rows (features + target).
        gate_metric: The gate's metric (the config's ``gate_metric``).
        threshold: The value it must reach (the config's ``accuracy_threshold``).
        champion: The champion's score on the same test set (``compare_to_champion``), or None.

    Returns:
        The report (the spec's evaluation.json keys, ``gate`` and ``feature_importances``).

    Raises:
        ValueError: ``gate_metric`` is not a gate metric.
    """
    report = EvaluationReport(evaluate_bundle(model_bundle, test_set))
    report["feature_importances"] = model_bundle.info.get("feature_importances") or {}
    report["gate"] = check_quality(report, gate_metric, threshold, champion).model_dump(mode="json")
    scalar = {k: v for k, v in report.items() if isinstance(v, float)}
    mlflow.log_metrics(scalar)
    mlflow.log_dict({k: v for k, v in report.items() if k != "curves"}, "evaluation/evaluation.json")
    with tempfile.TemporaryDirectory() as charts:  # ROC, precision-recall, confusion matrix; drawn once, the
        write_evaluation_pngs(report, charts)  # report keeps the PNGs for its materializer (the dashboard)
        mlflow.log_artifacts(charts, "evaluation")
    log_metadata(metadata={"metrics": scalar})
    print("Evaluation: " + summary_line(report))
    return report
