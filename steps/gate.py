"""CheckModelQuality: compare the configured metric with its threshold."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from churn.evaluation import check_quality
from steps.caching import TRAINING_CACHE


@step(cache_policy=TRAINING_CACHE)
def gate(evaluation_report: dict, metric: str, threshold: float) -> Annotated[dict, "gate_verdict"]:
    """Pass when ``metric >= threshold`` (spec default: accuracy >= 0.5); register/deploy follow only then."""
    verdict = check_quality(evaluation_report, metric, threshold)
    log_metadata(metadata={"gate": verdict.to_dict()})
    print(verdict.message)
    return verdict.to_dict()
