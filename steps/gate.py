"""CheckModelQuality: the gate's verdict on the configured metric and threshold."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from churn.artifacts import GateVerdict
from churn.evaluation import EvaluationReport
from materializers.artifact_materializer import TypedArtifactMaterializer
from steps.caching import TRAINING_CACHE


@step(cache_policy=TRAINING_CACHE, output_materializers=TypedArtifactMaterializer)
def gate(evaluation_report: EvaluationReport) -> Annotated[GateVerdict, "gate_verdict"]:
    """Pass when the gate metric reaches its threshold (spec default: accuracy >= 0.5): only then register/deploy.

    The verdict was computed once, by EvaluateModel on the same report (``churn.evaluation.check_quality``);
    this step publishes it as the run's gate artifact.

    Args:
        evaluation_report: The report EvaluateModel made with the gate's metric and threshold.

    Returns:
        The verdict.

    Raises:
        ValueError: The report carries no verdict.
    """
    verdict = evaluation_report.verdict()
    log_metadata(metadata={"gate": verdict.model_dump(mode="json", exclude_none=True)})
    print(verdict.message)
    return verdict
